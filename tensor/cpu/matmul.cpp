// matmul.cpp — batched GEMM: out[i] = a[i] @ b[i] for a: [B, M, K], b: [B, K, N].
//
// Every operand matrix is handed to Eigen as a Map over the tensor's own
// memory: row-major when its last dim has unit stride, column-major when the
// one before has (a transposed view, as the backward passes dA = dC B^T and
// dB = A^T dC produce), so no operand is ever copied for f32/f64. The outer
// stride is the other stride; the batch stride may be anything, 0 included (a
// weight shared by the batch).
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

namespace lory {

using namespace cpu;

namespace {

// How one operand matrix [rows, cols] of each batch sits in memory.
struct MatrixLayout {
  bool row_major = true;
  int64_t outer_stride = 0;  // between rows (row-major) or columns (column-major)
  int64_t batch_stride = 0;
};

MatrixLayout layout_of(const Tensor& t, const char* which, const Tensor& a, const Tensor& b) {
  const int64_t rows = t.size(1), cols = t.size(2), s_row = t.stride(1), s_col = t.stride(2);
  MatrixLayout l;
  l.batch_stride = t.stride(0);
  // A dim of size 1 never moves the pointer, so its stride says nothing; it is
  // given the packed value so that Eigen sees a plain matrix.
  if (s_col == 1 || cols == 1) {
    l.row_major = true;
    l.outer_stride = rows == 1 ? cols : s_row;
  } else if (s_row == 1 || rows == 1) {
    l.row_major = false;
    l.outer_stride = cols == 1 ? rows : s_col;
  } else {
    fail("matmul: operand ", which, " is neither row- nor column-major (strides [", t.stride(0), ", ", s_row, ", ",
         s_col, "]): a is ", a.describe(), ", b is ", b.describe());
  }
  return l;
}

template <typename T, int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0, Eigen::OuterStride<>>;

// Calls f with a's and b's batch-i matrices as Eigen maps of the right storage order.
template <typename T, typename F>
void with_maps(const T* ap, const MatrixLayout& la, int64_t M, int64_t K, const T* bp, const MatrixLayout& lb,
               int64_t N, F&& f) {
  auto with_b = [&](const auto& A) {
    if (lb.row_major) f(A, ConstMap<T, Eigen::RowMajor>(bp, K, N, Eigen::OuterStride<>(lb.outer_stride)));
    else f(A, ConstMap<T, Eigen::ColMajor>(bp, K, N, Eigen::OuterStride<>(lb.outer_stride)));
  };
  if (la.row_major) with_b(ConstMap<T, Eigen::RowMajor>(ap, M, K, Eigen::OuterStride<>(la.outer_stride)));
  else with_b(ConstMap<T, Eigen::ColMajor>(ap, M, K, Eigen::OuterStride<>(la.outer_stride)));
}

template <typename T>
void gemm_batch(const T* a, const MatrixLayout& la, const T* b, const MatrixLayout& lb, T* out, int64_t batch,
                int64_t M, int64_t K, int64_t N) {
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
  LORY_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3, "matmul: kernel expects 3-d operands, got a ",
             a.describe(), ", b ", b.describe(), ", out ", out.describe());
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  LORY_CHECK(b.size(0) == B && b.size(1) == K && out.size(0) == B && out.size(1) == M && out.size(2) == N,
             "matmul: shapes do not match: a is ", a.describe(), ", b is ", b.describe(), ", out is ",
             out.describe());
  LORY_CHECK(a.dtype() == b.dtype() && a.dtype() == out.dtype(), "matmul: dtypes differ: a is ", a.describe(),
             ", b is ", b.describe(), ", out is ", out.describe());
  LORY_CHECK(out.is_contiguous(), "matmul: out must be contiguous, got ", out.describe());
  if (out.numel() == 0) return;
  if (K == 0) {  // an empty sum: every output element is 0
    fill(out, 0.0);
    return;
  }
  const MatrixLayout la = layout_of(a, "a", a, b), lb = layout_of(b, "b", a, b);
  dispatch_floating(a, "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemm_batch<T>(ptr<T>(a), la, ptr<T>(b), lb, ptr<T>(out), B, M, K, N);
  });
}

}  // namespace lory
