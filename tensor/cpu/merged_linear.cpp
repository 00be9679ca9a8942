// merged_linear.cpp — Lory's expert merge fused with the segment GEMMs (CPU).
//
// What is computed (backend.h, tensor/ops/merged_linear.cpp): for every
// segment s of T tokens, with the merged matrix W̄_s = Σ_i e_si W_i,
//   forward      y_s  = x_s W̄_s^T         x_s [T, in],  W_i [out, in]
//   transposed   y_s  = x_s W̄_s           (dx of the forward: x_s = dy_s [T, out])
//   weights      dW_i = Σ_s e_si G_s,  de_si = <G_s, W_i>,  G_s = dy_s^T x_s
//
// Why fused. The GEMM formulation (nn/merge_experts.h) writes every W̄_s to
// memory and reads it back: S·out·in values per linear, which at the paper's
// T = 64 is as many bytes as the segment GEMMs' own operands, and in backward
// it does the same again with every G_s. Here neither is ever whole.
//
// How. W is cut into tiles of rows (forward, weights) or of columns
// (transposed), sized so that the E expert tiles fit in the core's L2
// (kTileBytes). A work item owns one tile and a run of segments; for each of
// its segments it
//   1. merges:  M = Σ_i e_si W_i[tile]          E·|tile| multiply-adds, from L2
//   2. applies: y_s[:, tile] = x_s M^T (or x_s M) one small Eigen GEMM
// so the merge costs E/T of the GEMM (Lory's real overhead, paper App. B),
// and memory traffic is that of a dense linear. The weight gradient is the
// same walk: per tile, G_s[tile] = dy_s[:, tile]^T x_s (one GEMM), then
// dW_i[tile] += e_si G_s[tile] and de_si += <G_s[tile], W_i[tile]> in one
// pass over G. A tile's dW_i stays in a local accumulator over all segments
// and is written once.
//
// Determinism: every output element has one owner, segments are visited in
// order, and de_si adds the tiles' partial dot products in tile order, so the
// result does not depend on the thread count.
//
// Precision: f32 math (f64 for f64). bf16/f16 inputs are widened once into
// f32 copies of x (and dy), the merged tile is formed in f32 from the 16-bit
// experts, and outputs are rounded once.
#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// The E expert tiles a work item reads for every one of its segments should
// stay in L2 (1-2 MiB a core on current x86): half a MiB leaves room for x_s,
// the merged tile and the output block.
constexpr int64_t kTileBytes = 512 * 1024;

template <typename A>
using RowMatrix = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename A>
using ConstRowMap = Eigen::Map<const RowMatrix<A>, 0, Eigen::OuterStride<>>;
template <typename A>
using RowMap = Eigen::Map<RowMatrix<A>, 0, Eigen::OuterStride<>>;

// Lines of W (rows of length `line` elements) per tile: as many as fit E
// times in kTileBytes, a multiple of 8, between 8 and 64, and small enough
// that there are at least kMinTiles tiles when `extent` allows. It depends on
// the shapes only, never on the thread count: the tiling decides the GEMMs'
// shapes, hence their summation order, hence the bits.
constexpr int64_t kMinTiles = 8;
int64_t lines_per_tile(int64_t E, int64_t line, int64_t extent, int64_t elem_bytes) {
  int64_t n = kTileBytes / std::max<int64_t>(1, E * line * elem_bytes);
  n = std::clamp<int64_t>(n / 8 * 8, 8, 64);
  while (n > 8 && (extent + n - 1) / n < kMinTiles) n /= 2;
  return std::max<int64_t>(1, std::min(n, extent));
}

// x as A values: the tensor itself when it already is, else a widened copy.
template <typename T, typename A>
const A* as_compute(const T* x, int64_t n, std::vector<A>& copy) {
  if constexpr (std::is_same_v<T, A>) {
    return x;
  } else {
    copy.resize(static_cast<size_t>(n));
    parallel_for(0, n, kParallelGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) copy[static_cast<size_t>(i)] = static_cast<A>(x[i]);
    });
    return copy.data();
  }
}

// M [rows, cols] = Σ_i e[i] W_i[r0 : r0 + rows, c0 : c0 + cols], W_i the
// i-th [out, in] matrix of W. Row by row, so a row of M stays in L1 while
// the E experts are added into it (in expert order).
template <typename T, typename A>
void merge_tile(const T* W, int64_t E, int64_t out, int64_t in, const A* e, int64_t r0, int64_t rows, int64_t c0,
                int64_t cols, A* M) {
  for (int64_t r = 0; r < rows; ++r) {
    A* m = M + r * cols;
    const T* w = W + (r0 + r) * in + c0;
    const A e0 = e[0];
    LORY_SIMD
    for (int64_t c = 0; c < cols; ++c) m[c] = e0 * static_cast<A>(w[c]);
    for (int64_t i = 1; i < E; ++i) {
      const T* wi = w + i * out * in;
      const A ei = e[i];
      LORY_SIMD
      for (int64_t c = 0; c < cols; ++c) m[c] += ei * static_cast<A>(wi[c]);
    }
  }
}

// The forward (transposed = false) and its input gradient (transposed = true).
template <typename T, typename A>
void merged_linear_kernel(const T* x_in, const T* e_in, const T* W, T* y, int64_t S, int64_t Tn, int64_t E,
                          int64_t out, int64_t in, bool transposed) {
  std::vector<A> x_copy, e_copy;
  const int64_t k_dim = transposed ? out : in;  // x_s is [Tn, k_dim]
  const int64_t y_dim = transposed ? in : out;  // y_s is [Tn, y_dim]
  const A* x = as_compute<T, A>(x_in, S * Tn * k_dim, x_copy);
  const A* e = as_compute<T, A>(e_in, S * E, e_copy);
  // Forward tiles are rows of W (a block of y's columns = W's rows);
  // transposed tiles are columns of W (a block of y's columns = W's columns).
  const int64_t tile = transposed ? lines_per_tile(E, out, in, sizeof(T)) : lines_per_tile(E, in, out, sizeof(T));
  const int64_t tiles = (y_dim + tile - 1) / tile;
  // More items than tiles when there are few tiles: runs of segments.
  const int64_t runs = std::min<int64_t>(S, std::max<int64_t>(1, (2 * max_threads() + tiles - 1) / tiles));
  const int64_t run_len = (S + runs - 1) / runs;
  parallel_for(0, tiles * runs, 1, [&](int64_t lo, int64_t hi) {
    std::vector<A> merged, block;
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t t0 = (item / runs) * tile, width = std::min(tile, y_dim - t0);
      const int64_t s0 = (item % runs) * run_len, s1 = std::min(S, s0 + run_len);
      merged.resize(static_cast<size_t>(transposed ? out * width : width * in));
      if constexpr (!std::is_same_v<T, A>) block.resize(static_cast<size_t>(Tn * width));
      for (int64_t s = s0; s < s1; ++s) {
        const ConstRowMap<A> xs(x + s * Tn * k_dim, Tn, k_dim, Eigen::OuterStride<>(k_dim));
        A* ys = nullptr;  // where y_s[:, t0 : t0 + width] is computed: y itself, or an f32 block
        int64_t ld = y_dim;
        if constexpr (std::is_same_v<T, A>) {
          ys = y + s * Tn * y_dim + t0;
        } else {
          ys = block.data();
          ld = width;
        }
        RowMap<A> Y(ys, Tn, width, Eigen::OuterStride<>(ld));
        if (transposed) {
          merge_tile<T, A>(W, E, out, in, e + s * E, 0, out, t0, width, merged.data());  // [out, width]
          const ConstRowMap<A> M(merged.data(), out, width, Eigen::OuterStride<>(width));
          Y.noalias() = xs * M;
        } else {
          merge_tile<T, A>(W, E, out, in, e + s * E, t0, width, 0, in, merged.data());  // [width, in]
          const ConstRowMap<A> M(merged.data(), width, in, Eigen::OuterStride<>(in));
          Y.noalias() = xs * M.transpose();
        }
        if constexpr (!std::is_same_v<T, A>) {
          T* dst = y + s * Tn * y_dim + t0;
          for (int64_t r = 0; r < Tn; ++r)
            for (int64_t c = 0; c < width; ++c) dst[r * y_dim + c] = cast_to<T>(block[static_cast<size_t>(r * width + c)]);
        }
      }
    }
  });
}

template <typename T, typename A>
void merged_linear_backward_kernel(const T* dy_in, const T* x_in, const T* e_in, const T* W, T* dW, T* de, int64_t S,
                                   int64_t Tn, int64_t E, int64_t out, int64_t in) {
  std::vector<A> dy_copy, x_copy, e_copy;
  const A* dy = as_compute<T, A>(dy_in, S * Tn * out, dy_copy);
  const A* x = as_compute<T, A>(x_in, S * Tn * in, x_copy);
  const A* e = as_compute<T, A>(e_in, S * E, e_copy);
  // Tiles of W's rows; each holds E accumulators and reads E expert tiles,
  // hence the doubled element size in the budget.
  const int64_t tile = lines_per_tile(E, in, out, 2 * sizeof(A));
  const int64_t tiles = (out + tile - 1) / tile;
  std::vector<A> de_parts(static_cast<size_t>(tiles * S * E));  // [tile, s, i]: <G_s[tile], W_i[tile]>
  parallel_for(0, tiles, 1, [&](int64_t lo, int64_t hi) {
    std::vector<A> G, acc;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t r0 = t * tile, rows = std::min(tile, out - r0), n = rows * in;
      G.resize(static_cast<size_t>(n));
      acc.assign(static_cast<size_t>(E * n), A(0));  // dW_i[tile] for every i
      RowMap<A> Gm(G.data(), rows, in, Eigen::OuterStride<>(in));
      for (int64_t s = 0; s < S; ++s) {
        const ConstRowMap<A> dys(dy + s * Tn * out + r0, Tn, rows, Eigen::OuterStride<>(out));
        const ConstRowMap<A> xs(x + s * Tn * in, Tn, in, Eigen::OuterStride<>(in));
        Gm.noalias() = dys.transpose() * xs;  // G_s[tile] = dy_s[:, tile]^T x_s
        const A* g = G.data();
        for (int64_t i = 0; i < E; ++i) {
          const A ei = e[s * E + i];
          A* a = acc.data() + i * n;
          const T* w = W + i * out * in + r0 * in;  // W_i[tile], contiguous
          A dot = 0;
          LORY_SIMD_SUM(dot)
          for (int64_t k = 0; k < n; ++k) {
            a[k] += ei * g[k];
            dot += g[k] * static_cast<A>(w[k]);
          }
          de_parts[static_cast<size_t>((t * S + s) * E + i)] = dot;
        }
      }
      for (int64_t i = 0; i < E; ++i) {
        T* dst = dW + i * out * in + r0 * in;
        const A* a = acc.data() + i * n;
        for (int64_t k = 0; k < n; ++k) dst[k] = cast_to<T>(a[k]);
      }
    }
  });
  // de_si: the tiles' partial products, added in tile order.
  for (int64_t si = 0; si < S * E; ++si) {
    A sum = 0;
    for (int64_t t = 0; t < tiles; ++t) sum += de_parts[static_cast<size_t>(t * S * E + si)];
    de[si] = cast_to<T>(sum);
  }
}

}  // namespace

void CpuBackend::merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                               Tensor& out) {
  check_merged_linear_args(x, weights, experts, transposed, out);
  if (out.numel() == 0) return;
  const int64_t S = x.size(0), Tn = x.size(1), E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  if (E == 0 || (transposed ? rows : cols) == 0) {  // an empty merge or an empty sum: zeros
    fill(out, 0.0);
    return;
  }
  dispatch_floating(experts, "merged_linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    merged_linear_kernel<T, compute_t<T>>(ptr<T>(x), ptr<T>(weights), ptr<T>(experts), ptr<T>(out), S, Tn, E, rows,
                                          cols, transposed);
  });
}

void CpuBackend::merged_linear_backward_weights(const Tensor& dy, const Tensor& x, const Tensor& weights,
                                                const Tensor& experts, Tensor& dexperts, Tensor& dweights) {
  check_merged_linear_backward_args(dy, x, weights, experts, dexperts, dweights);
  const int64_t S = x.size(0), Tn = x.size(1), E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  if (dexperts.numel() == 0 || S == 0 || Tn == 0) {  // nothing to multiply: zero gradients
    fill(dexperts, 0.0);
    fill(dweights, 0.0);
    return;
  }
  dispatch_floating(experts, "merged_linear_backward_weights", [&](auto tag) {
    using T = typename decltype(tag)::type;
    merged_linear_backward_kernel<T, compute_t<T>>(ptr<T>(dy), ptr<T>(x), ptr<T>(weights), ptr<T>(experts),
                                                   ptr<T>(dexperts), ptr<T>(dweights), S, Tn, E, rows, cols);
  });
}

}  // namespace lory
