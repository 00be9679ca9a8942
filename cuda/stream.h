// stream.h — the stream every kernel of a device runs on, and the current device.
//
// Each device has one non-default stream, created on first use and kept for
// the life of the process. All kernels, cuBLAS calls and copies of the CUDA
// backend are queued on it, so work on one device runs in the order it was
// issued and the caching allocator can hand a freed block to the next op
// without events (cuda/caching_allocator.h). It is created with
// cudaStreamNonBlocking: it does not serialise with the legacy default
// stream, so code outside the backend must use current_stream() too rather
// than the default stream.
#pragma once

#include <cuda_runtime_api.h>

namespace lory::cuda {

// The stream of device `device` (created on first call).
cudaStream_t stream_for(int device);
// The stream of the calling thread's current device.
cudaStream_t current_stream();
// Makes `device` the calling thread's current device if it is not already
// (cudaSetDevice is per host thread; a backend call may come from any thread).
void ensure_device(int device);

}  // namespace lory::cuda
