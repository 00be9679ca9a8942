// gemm.h — batched matrix products on cuBLASLt (cuBLAS for f64): the GEMMs
// that Backend::matmul (cuda/matmul.cu) and the fused Lory merge
// (cuda/merged_linear.cu) run on; not a Backend method itself.
//
// One GemmContext per device holds the library handles, a 32 MiB workspace
// from the caching allocator, and the algorithm cuBLASLt's heuristic picked
// for each problem seen so far (asking the heuristic costs microseconds; a
// training step repeats the same few hundred GEMM shapes).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "tensor/tensor.h"

namespace lory::cuda {

class CachingAllocator;

class GemmContext {
 public:
  GemmContext(int device, CachingAllocator& allocator);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // out[b] = a[b] @ b[b], for operands that meet Backend::matmul's contract
  // (check_matmul_args, tensor/kernel_args.h: each a gemm_operand), with
  // out.numel() > 0 and K > 0; cuda/matmul.cu checks both before calling.
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream) {
    gemm(a, b, out, 0.0, stream);
  }

  // out[b] = a[b] @ b[b] + beta * out[b]: matmul with two freedoms the fused
  // Lory merge needs (cuda/merged_linear.cu): out may be f32 when a and b are
  // bf16/f16 (the f32 accumulator is stored, not rounded), and beta may be
  // nonzero (out then accumulates; it must hold values). Otherwise as matmul:
  // a and b meet check_matmul_args's layout rules, out is contiguous, K > 0.
  void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream);

  // f32 GEMMs may use TF32 tensor cores (10-bit mantissa inputs, f32
  // accumulate): ~8x faster, but results then differ from the CPU's at the
  // 1e-3 level. Off by default so f32 on CUDA checks against the CPU exactly.
  void set_allow_tf32(bool allow) { allow_tf32_ = allow; }
  bool allow_tf32() const { return allow_tf32_; }

  // Everything that decides cuBLASLt's choice of algorithm.
  struct Key {
    int data_type = 0, out_type = 0, compute_type = 0, trans_a = 0, trans_b = 0;
    int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0, stride_a = 0, stride_b = 0, stride_c = 0, batch = 0;
    uint32_t align_a = 0, align_b = 0, align_c = 0;
    auto operator<=>(const Key&) const = default;
  };

 private:
  // a, b, out, beta: as for gemm.
  void dgemm(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream);
  // False when cuBLASLt has no algorithm for the operands' layout and alignment.
  bool lt_matmul(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream);

  int device_;
  CachingAllocator& allocator_;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* workspace_ = nullptr;
  std::atomic<bool> allow_tf32_{false};
  std::mutex mutex_;
  std::map<Key, std::optional<cublasLtMatmulAlgo_t>> algos_;  // nullopt: none exists
};

}  // namespace lory::cuda
