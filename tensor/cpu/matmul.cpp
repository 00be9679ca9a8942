// matmul.cpp — batched GEMM: out[i] = a[i] @ b[i] for a: [B, M, K], b: [B, K, N].
//
// Every operand matrix is handed to Eigen as a Map over the tensor's own
// memory, in the layout gemm_operand (tensor/kernel_args.h) found: row-major
// when its last dim has unit stride, column-major when the one before has (a
// transposed view, as the backward passes dA = dC B^T and dB = A^T dC
// produce), with the other stride as Eigen's outer stride and any batch
// stride, 0 included (a weight shared by the batch). So no operand is ever
// copied for f32/f64; the op (tensor/ops/matmul.cpp) has already packed any
// operand gemm_operand refuses.
//
// f32/f64 use Eigen's blocked GEMM directly, which runs on all OpenMP threads
// for a large product. bf16/f16 are widened to f32 matrices (Eigen has no
// fast 16-bit GEMM), multiplied with f32 accumulation, and rounded once.
//
// Threads: a batch of small products (attention heads, per-expert blocks) is
// split across threads one product each, and Eigen then runs each product on
// its own thread; a few large products run one after another, each on all
// threads inside Eigen.
#include <Eigen/Core>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

template <typename T, int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0, Eigen::OuterStride<>>;

// Calls f with a's and b's batch-i matrices as Eigen maps of the right storage order.
template <typename T, typename F>
void with_maps(const T* ap, const GemmOperand& la, int64_t M, int64_t K, const T* bp, const GemmOperand& lb, int64_t N,
               F&& f) {
  auto with_b = [&](const auto& A) {
    if (lb.row_major)
      f(A, ConstMap<T, Eigen::RowMajor>(bp, K, N, Eigen::OuterStride<>(lb.ld)));
    else
      f(A, ConstMap<T, Eigen::ColMajor>(bp, K, N, Eigen::OuterStride<>(lb.ld)));
  };
  if (la.row_major)
    with_b(ConstMap<T, Eigen::RowMajor>(ap, M, K, Eigen::OuterStride<>(la.ld)));
  else
    with_b(ConstMap<T, Eigen::ColMajor>(ap, M, K, Eigen::OuterStride<>(la.ld)));
}

template <typename T>
void gemm_batch(const T* a, const GemmOperand& la, const T* b, const GemmOperand& lb, T* out, int64_t batch, int64_t M,
                int64_t K, int64_t N) {
  using OutMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  using F32 = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  auto one = [&](int64_t i) {
    OutMap C(out + i * M * N, M, N);
    with_maps<T>(a + i * la.batch_stride, la, M, K, b + i * lb.batch_stride, lb, N,
                 [&](const auto& A, const auto& B) {
                   if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
                     C.noalias() = A * B;
                   } else {
                     const F32 Af = A.template cast<float>(), Bf = B.template cast<float>();
                     F32 Cf(M, N);
                     Cf.noalias() = Af * Bf;
                     C = Cf.template cast<T>();
                   }
                 });
  };
  // Below ~64^3 multiply-adds a product is too small for Eigen to split well;
  // spread the batch over threads instead.
  const int64_t flops = M * N * K;
  if (batch > 1 && flops < (int64_t{1} << 18)) {
    parallel_for(0, batch, std::max<int64_t>(1, grain_for(flops / 16)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_matmul_args(a, b, out);
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  if (out.numel() == 0) return;
  if (K == 0) {  // an empty sum: every output element is 0
    fill(out, 0.0);
    return;
  }
  const GemmOperand la = *gemm_operand(a), lb = *gemm_operand(b);
  dispatch_floating(a, "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemm_batch<T>(ptr<T>(a), la, ptr<T>(b), lb, ptr<T>(out), B, M, K, N);
  });
}

}  // namespace lory
