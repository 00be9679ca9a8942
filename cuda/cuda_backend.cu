// cuda_backend.cu — CudaBackend's memory methods and enter(), and the
// per-device registry behind cuda_backend(index) and cuda_device_count(),
// which this file registers with the tensor layer (tensor/backend.h) when the
// program loads. The kernel methods live with their kernels (see
// cuda/cuda_backend.h for which file has which).
#include <string>
#include <vector>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/gemm.h"
#include "cuda/kernel_error.h"
#include "cuda/stream.h"
#include "tensor/tensor.h"

namespace lory {

namespace {

// The device count, or 0 with the reason when CUDA cannot be used (no GPU, no
// driver, a driver older than the toolkit). Asked once: the answer does not
// change while the process runs, and the failing call is slow on machines
// without a driver.
struct DeviceCount {
  int count = 0;
  std::string why;
};
const DeviceCount& device_count() {
  static const DeviceCount result = [] {
    DeviceCount r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // leave no error behind for later checks
      r.count = 0;
      r.why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    } else if (r.count == 0) {
      r.why = "cudaGetDeviceCount found 0 devices";
    }
    return r;
  }();
  return result;
}

int count_devices() { return device_count().count; }

Backend& backend_of(int index) {
  const DeviceCount& devices = device_count();
  LORY_CHECK(devices.count > 0, "cuda:", index, ": no CUDA device is available (", devices.why, ")");
  LORY_CHECK(index >= 0 && index < devices.count, "cuda:", index, ": device index out of range: this machine has ",
             devices.count, " CUDA device(s), cuda:0 to cuda:", devices.count - 1);
  static std::mutex mutex;
  // Never destroyed: tensors held in static objects may free their memory
  // during exit, after a static registry would be gone, and CUDA calls from
  // static destructors can run after the runtime has shut down.
  static auto* backends = new std::vector<std::unique_ptr<CudaBackend>>(devices.count);
  std::lock_guard<std::mutex> lock(mutex);
  auto& backend = (*backends)[index];
  if (!backend) backend = std::make_unique<CudaBackend>(index);
  return *backend;
}

// Runs when the program loads. CMake links this library whole (WHOLE_ARCHIVE),
// so the linker keeps this object although nothing names it.
const bool registered = [] {
  register_cuda_backend({&backend_of, &count_devices});
  return true;
}();

}  // namespace

CudaBackend::CudaBackend(int index) : index_(index), allocator_(index) {
  cuda::ensure_device(index_);
  stream_ = cuda::stream_for(index_);
}

CudaBackend::~CudaBackend() = default;

cudaStream_t CudaBackend::enter(const char* op, std::initializer_list<const Tensor*> tensors) const {
  for (const Tensor* t : tensors)
    LORY_CHECK(t->device() == device(), op, ": tensor ", t->describe(), " is not on ", device().str());
  cuda::ensure_device(index_);
  return stream_;
}

cuda::GemmContext& CudaBackend::gemm() {
  std::call_once(gemm_once_, [this] { gemm_ = std::make_unique<cuda::GemmContext>(index_, allocator_); });
  return *gemm_;
}

void CudaBackend::set_allow_tf32(bool allow) {
  cuda::ensure_device(index_);
  gemm().set_allow_tf32(allow);
}

// ---- memory ----

void* CudaBackend::allocate(size_t nbytes) { return allocator_.allocate(nbytes); }

void CudaBackend::deallocate(void* ptr, size_t) { allocator_.deallocate(ptr); }

// From pageable host memory (what the CPU backend allocates), cudaMemcpyAsync
// returns once the source has been staged, so the caller may free or reuse
// it immediately; the device-side write is ordered on the stream before any
// kernel that reads it.
void CudaBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  cuda::ensure_device(index_);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream_));
}

// Queued behind every kernel that produces src, then waited for: the host
// reads dst as soon as this returns.
void CudaBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  cuda::ensure_device(index_);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  cuda::throw_if_kernel_error(index_);
}

void CudaBackend::synchronize() {
  cuda::ensure_device(index_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  cuda::throw_if_kernel_error(index_);
}

}  // namespace lory
