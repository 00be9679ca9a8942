// stream.cu — one lazily created stream per device.
#include <mutex>
#include <vector>

#include "cuda/check.h"
#include "cuda/stream.h"

namespace lory::cuda {

void ensure_device(int device) {
  int current = -1;
  CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) CUDA_CHECK(cudaSetDevice(device));
}

cudaStream_t stream_for(int device) {
  static std::mutex mutex;
  // Never destroyed: streams live until the process exits, and destroying
  // them from a static destructor can run after the CUDA runtime is gone.
  static std::vector<cudaStream_t>* streams = new std::vector<cudaStream_t>();
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<int>(streams->size()) <= device) streams->resize(device + 1, nullptr);
  cudaStream_t& stream = (*streams)[device];
  if (stream == nullptr) {
    ensure_device(device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  }
  return stream;
}

cudaStream_t current_stream() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return stream_for(device);
}

}  // namespace lory::cuda
