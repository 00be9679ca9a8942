// cpu_backend.h — the host implementation of every kernel in tensor/backend.h.
//
// Memory is 64-byte aligned host memory (a cache line; also what AVX-512 loads
// like). Kernels are plain loops parallelised with OpenMP over independent
// chunks, plus Eigen where Eigen is faster than a loop we would write: GEMM
// (its own blocked, multithreaded product) and vectorised exp/tanh/logistic.
// Every kernel starts with its argument check from tensor/kernel_args.h, the
// one the CUDA kernel calls too. The kernel of Backend::X is in X.cpp, and
// cuda/X.cu is its CUDA twin; a few files hold a family:
//   cpu_backend.cpp   memory (and its live/peak counters, tensor/memory_stats.h), cpu_backend()
//   copy.cpp          copy (any strides, any dtype pair), fill, arange
//   random.cpp        random (Philox, tensor/philox.h)
//   unary.cpp         unary: elementwise functions of one tensor
//   binary.cpp        binary: elementwise functions of two tensors
//   where.cpp         where
//   reduce.cpp        reduce: row sums, maxima, minima
//   softmax.cpp       softmax, log_softmax
//   matmul.cpp        matmul: batched GEMM on Eigen maps of strided views
//   index.cpp         index_select, index_add
//   topk.cpp          topk
//   swiglu.cpp        swiglu, swiglu_backward
//   cross_entropy.cpp cross_entropy_forward, cross_entropy_backward
//   rms_norm.cpp      rms_norm_forward, add_rms_norm_forward, rms_norm_backward
//   rope.cpp          rope (forward and inverse)
//   attention.cpp     attention_forward, attention_backward
//   segment_mean.cpp  segment_mean
//   merged_linear.cpp merged_linear, merged_linear_backward_weights (Lory's fused merge)
//   optimizer.cpp     adamw_step, sum_squares
// Shared helpers: dispatch.h (dtype -> C++ type), strided.h (walking strided
// views), parallel.h (OpenMP chunking that keeps results deterministic).
#pragma once

#include "tensor/backend.h"

namespace lory {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return cpu_device(); }

  // ---- memory (cpu_backend.cpp) ----
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;

  // ---- copies and creation (copy.cpp, random.cpp) ----
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  void random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) override;

  // ---- elementwise (unary.cpp, binary.cpp, where.cpp) ----
  void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;

  // ---- reductions (reduce.cpp, softmax.cpp) ----
  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override;
  void softmax(const Tensor& x, Tensor& out, bool log) override;

  // ---- linear algebra (matmul.cpp) ----
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;

  // ---- indexing (index.cpp) ----
  void index_select(const Tensor& x, int64_t dim, const Tensor& idx, Tensor& out) override;
  void index_add(Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) override;
  void topk(const Tensor& x, int64_t k, Tensor& indices) override;

  // ---- fused ops (swiglu.cpp, cross_entropy.cpp, rms_norm.cpp, rope.cpp, attention.cpp) ----
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
                          const Tensor& lse, double scale, bool causal, Tensor& dq, Tensor& dk,
                          Tensor& dv) override;

  // ---- Lory routing (segment_mean.cpp) ----
  void segment_mean(const Tensor& x, int64_t T, Tensor& out) override;

  // ---- Lory expert merging (merged_linear.cpp) ----
  void merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                     Tensor& out) override;
  void merged_linear_backward_weights(const Tensor& dy, const Tensor& x, const Tensor& weights, const Tensor& experts,
                                      Tensor& dexperts, Tensor& dweights) override;

  // ---- optimizer (optimizer.cpp) ----
  void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* publish,
                  const std::vector<AdamWSlot>& slots, const AdamWHyper& hyper) override;
  void sum_squares(const Tensor& x, Tensor& out) override;
};

}  // namespace lory
