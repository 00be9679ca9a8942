// kernel_error.h — bad input found inside a kernel, reported as a lory::Error.
//
// Some checks can only be made on the device: an embedding index or a
// cross-entropy target lives in GPU memory, and copying it to the host to
// check it would stall the stream at every step. So kernels check as they
// go: an out-of-range index is skipped (the kernel writes 0 or adds nothing,
// never reads or writes out of bounds) and the first one is recorded in a
// small slot of pinned host memory that the GPU writes directly. The host
// reads the slot the next time it waits for the stream anyway
// (CudaBackend::synchronize and copy_to_host, e.g. when the loss is printed)
// and throws there:
//   index_select: index 50257 (position 17) is out of range for dim 0 of size 50257 (found by a kernel on cuda:0)
// This is how CUDA's own kernel errors surface (at the next synchronising
// call), without the device-side assert that would poison the context.
#pragma once

#include <cstdint>

namespace lory::cuda {

// Which kernel found the problem (host side turns it into the message).
enum class KernelCheck : int32_t { none = 0, index_select = 1, index_add = 2, cross_entropy = 3 };

struct KernelError {
  int32_t check;  // KernelCheck; 0 while no error has been recorded
  int32_t dim;
  int64_t value, position, bound;
};

#ifdef __CUDACC__
// Records the first error only: later ones race for nothing and are dropped.
__device__ __forceinline__ void report_out_of_range(KernelError* slot, KernelCheck check, int64_t value,
                                                    int64_t position, int64_t bound, int32_t dim) {
  if (slot == nullptr) return;
  // A plain read first: once an error is recorded, the many threads that hit
  // the same bad index do not each send an atomic across PCIe.
  if (*reinterpret_cast<volatile int32_t*>(&slot->check) != 0) return;
  if (atomicCAS(&slot->check, 0, -1) != 0) return;  // -1: being written
  slot->dim = dim;
  slot->value = value;
  slot->position = position;
  slot->bound = bound;
  __threadfence_system();
  atomicExch(&slot->check, static_cast<int32_t>(check));
}
#endif

// The device's slot (pinned, mapped; created on first use), as the pointer
// kernels write through.
KernelError* kernel_error_slot(int device);
// Throws the recorded error, if any, and clears the slot. Call only after
// the stream has been synchronised.
void throw_if_kernel_error(int device);

}  // namespace lory::cuda
