// check.h — turn CUDA and cuBLAS status codes into lory::Error.
//
// Every runtime and library call in cuda/ goes through one of these, so a
// failure names the call, the file:line and the library's own explanation:
//   CUDA error: an illegal memory access was encountered (cudaErrorIllegalAddress) in
//   cudaStreamSynchronize(stream_) at cuda/cuda_backend.cu:123
// Kernel launches report configuration errors through cudaGetLastError, which
// CUDA_CHECK_LAUNCH() checks right after the launch; errors raised while a
// kernel runs surface at the next synchronising call (copy_to_host,
// synchronize), as they do in every CUDA program.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "tensor/error.h"

namespace lory::cuda {

[[noreturn]] inline void fail_cuda(cudaError_t err, const char* expr, const char* file, int line) {
  fail("CUDA error: ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ") in ", expr, " at ", file, ":", line);
}

[[noreturn]] inline void fail_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  fail("cuBLAS error: ", cublasGetStatusString(status), " (status ", static_cast<int>(status), ") in ", expr, " at ",
       file, ":", line);
}

}  // namespace lory::cuda

#define CUDA_CHECK(expr)                                                                                   \
  do {                                                                                                     \
    const cudaError_t lory_cuda_err_ = (expr);                                                             \
    if (lory_cuda_err_ != cudaSuccess) ::lory::cuda::fail_cuda(lory_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// Also used for cuBLASLt calls: they return the same cublasStatus_t.
#define CUBLAS_CHECK(expr)                                                       \
  do {                                                                           \
    const cublasStatus_t lory_cublas_status_ = (expr);                           \
    if (lory_cublas_status_ != CUBLAS_STATUS_SUCCESS)                            \
      ::lory::cuda::fail_cublas(lory_cublas_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: catches bad launch configurations immediately.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
