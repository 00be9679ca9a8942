// cuda_backend.h — the CUDA implementation of the kernel interface (tensor/backend.h).
//
// One CudaBackend per GPU, created on first use by cuda_backend(index) and
// kept for the life of the process. It owns
//   * a caching allocator (cuda/caching_allocator.h): tensor memory is
//     recycled, so a training step does not call cudaMalloc after the first;
//   * one stream (cuda/stream.h): every kernel, cuBLAS call and copy of the
//     device runs on it in issue order; copy_to_host and synchronize wait for it;
//   * the GEMM context (cuda/gemm.h): cuBLASLt handle, workspace, algorithm cache.
// Each kernel method is defined next to its kernels: the method X is in X.cu,
// the twin of tensor/cpu/X.cpp, and a few files hold a family, as on the CPU:
//   copy.cu          copy, fill, arange        random.cu        random
//   unary.cu         unary                     binary.cu        binary
//   where.cu         where                     reduce.cu        reduce
//   softmax.cu       softmax                   matmul.cu        matmul (on gemm.cu)
//   index.cu         index_select, index_add   swiglu.cu        swiglu, swiglu_backward
//   cross_entropy.cu cross_entropy_forward, cross_entropy_backward
//   rms_norm.cu      rms_norm_forward, add_rms_norm_forward, rms_norm_backward
//   rope.cu          rope                      segment_mean.cu  segment_mean
//   attention.cu     attention_forward, attention_backward (picks flash_attention.cu or its own kernels)
//   merged_linear.cu merged_linear, merged_linear_backward_weights (Lory's fused merge)
//   optimizer.cu     adamw_step, sum_squares
// Helpers that are not a Backend method keep descriptive names: gemm.h/.cu
// (the cuBLASLt wrapper), flash_attention.cu, caching_allocator.h/.cu,
// stream.h/.cu, kernel_error.h/.cu, and the device headers (*.cuh). Every
// Backend kernel is pure virtual, so each one has a CUDA version here, and
// adding a CUDA op is one method definition in one .cu file plus its
// declaration below. Each method starts with enter(), which checks the
// operands' devices and returns the stream to launch on, then the argument
// check the CPU kernel makes too (tensor/kernel_args.h), in the method or
// first thing in its launcher. cuda_backend.cu holds the memory methods and
// the per-device registry.
// Bad indices found inside kernels surface at the next synchronisation
// (cuda/kernel_error.h).
//
// Numerics follow the CPU backend: bf16/f16 compute in f32 and round once,
// softmax accumulates in f32 (f64 for f64), random numbers come from the same
// Philox functions, and every reduction is deterministic. One difference:
// f32 sums accumulate in f32 here (in f64 on the CPU), so large f32 sums
// agree to f32 rounding, not bit for bit.
//
// This header includes no CUDA header, so plain C++ (the tests) can include
// it to reach the allocator statistics: dynamic_cast<CudaBackend&>(cuda_backend(0)).
// A stream is named by the struct cudaStream_t points to, declared below.
#pragma once

#include <atomic>
#include <initializer_list>
#include <memory>
#include <mutex>

#include "cuda/caching_allocator.h"
#include "tensor/backend.h"

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime_api.h)

namespace lory {

namespace cuda {
class GemmContext;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return cuda_device(index_); }

  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  void random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) override;

  void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override;
  void softmax(const Tensor& x, Tensor& out, bool log) override;

  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;

  void index_select(const Tensor& x, int64_t dim, const Tensor& idx, Tensor& out) override;
  void index_add(Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) override;
  void topk(const Tensor& x, int64_t k, Tensor& indices) override;

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, Tensor& row_loss,
                             Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                              const Tensor& scale, Tensor& dlogits) override;
  void rms_norm_forward(const Tensor& x, const Tensor& weight, double eps, Tensor& out, Tensor& rstd) override;
  void add_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps, Tensor& sum,
                            Tensor& out, Tensor& rstd) override;
  void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd, Tensor& dx,
                         Tensor& dweight) override;
  void rope(const Tensor& x, Tensor& out, int64_t pos_offset, double theta, bool inverse) override;
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal, Tensor& out,
                         Tensor& lse) override;
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, double scale, bool causal, Tensor& dq, Tensor& dk, Tensor& dv) override;

  void segment_mean(const Tensor& x, int64_t T, Tensor& out) override;

  // ---- Lory expert merging (merged_linear.cu) ----
  void merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                     Tensor& out) override;
  void merged_linear_backward_weights(const Tensor& dy, const Tensor& x, const Tensor& weights, const Tensor& experts,
                                      Tensor& dexperts, Tensor& dweights) override;

  void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* publish,
                  const std::vector<AdamWSlot>& slots, const AdamWHyper& hyper) override;
  void sum_squares(const Tensor& x, Tensor& out) override;

  cuda::CachingAllocator& allocator() { return allocator_; }
  // Lets f32 matmuls use TF32 tensor cores (see cuda/gemm.h); off by default.
  void set_allow_tf32(bool allow);
  // bf16/f16 attention with head dim 64 or 128 runs on the tensor-core
  // FlashAttention kernels (cuda/flash_attention.cu) unless this is off; the
  // general kernels (cuda/attention.cu) then run instead. On by default; the
  // tests turn it off to check one path against the other.
  void set_flash_attention(bool enabled);
  // merged_linear and merged_linear_backward_weights (cuda/merged_linear.cu)
  // take segments in chunks whose merged matrices (or weight gradients) fit
  // this many bytes of workspace, at least one segment a chunk: the memory
  // they add is bounded, whatever the batch. 0 restores the default; the
  // tests lower it to run several chunks on small shapes.
  static constexpr size_t kMergedLinearChunkBytes = size_t{64} << 20;
  void set_merged_linear_chunk_bytes(size_t bytes) { merged_linear_chunk_bytes_ = bytes; }
  size_t merged_linear_chunk_bytes() const;

 private:
  // Makes this backend's GPU current for the calling thread, checks that
  // every tensor lives on it (`op` names the caller in the error) and returns
  // the stream to launch on.
  CUstream_st* enter(const char* op, std::initializer_list<const Tensor*> tensors) const;
  cuda::GemmContext& gemm();

  int index_;
  cuda::CachingAllocator allocator_;
  CUstream_st* stream_;
  std::once_flag gemm_once_;
  std::unique_ptr<cuda::GemmContext> gemm_;
  std::atomic<bool> flash_attention_{true};
  std::atomic<size_t> merged_linear_chunk_bytes_{0};  // 0: kMergedLinearChunkBytes
};

}  // namespace lory
