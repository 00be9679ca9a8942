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
// How. W is cut into tiles of rows, sized so that the E expert tiles fit in
// the core's L2 where they can (kTileBytes, kMinLines). Forward and input
// gradient: a thread takes a run of segments and walks the tiles; for each
// tile and each of its segments
//   1. merges:  M = Σ_i e_si W_i[tile]     E·|tile| multiply-adds, from L2 (combine_rows)
//   2. applies: y_s[:, tile] = x_s M^T     forward, one small Eigen GEMM
//               dx_s += dy_s[:, tile] M     input gradient, the tiles adding up
// so the merge costs E/T of the GEMM (Lory's real overhead, paper App. B),
// and memory traffic is that of a dense linear. The weight gradient takes
// tiles, not segments, per thread (a tile of dW_i has one owner): per tile,
// a block of segments at a time, G_s[tile] = dy_s[:, tile]^T x_s (one GEMM
// each), then dW_i[tile] += e_si G_s[tile] (combine_rows) and
// de_si += <G_s[tile], W_i[tile]> (one GEMM). A tile of dW_i is summed in
// place over all segments and written once.
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
#include <cstring>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// The E expert tiles a work item reads for every one of its segments should
// stay in L2 (2 MiB a core on the Xeon this was tuned on; kTileBytes leaves
// room for x_s and the output block). But a tile is also the N (forward) or
// M (weight gradient) of the segment GEMMs, and Eigen packs the other operand
// again for every tile: below 64 lines that packing, not the arithmetic, is
// the cost (measured: at E = 32 the weight gradient took 2x longer with the
// 8-line tiles an L2-only rule gives). So a tile has at least kMinLines lines
// even where its E expert tiles spill to L3.
constexpr int64_t kTileBytes = 1536 * 1024;

template <typename A>
using RowMatrix = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename A>
using ConstRowMap = Eigen::Map<const RowMatrix<A>, 0, Eigen::OuterStride<>>;
template <typename A>
using RowMap = Eigen::Map<RowMatrix<A>, 0, Eigen::OuterStride<>>;

// Lines of W (rows of length `line` elements) per tile: as many as fit E
// times in kTileBytes, a multiple of 8, between kMinLines and kMaxLines, and
// small enough that there are at least kMinTiles tiles (work items for the
// threads) when that leaves kMinLines a tile. It depends on
// the shapes only, never on the thread count: the tiling decides the GEMMs'
// shapes, hence their summation order, hence the bits.
constexpr int64_t kMinTiles = 4, kMinLines = 64, kMaxLines = 256;
int64_t lines_per_tile(int64_t E, int64_t line, int64_t extent, int64_t elem_bytes) {
  int64_t n = kTileBytes / std::max<int64_t>(1, E * line * elem_bytes) / 8 * 8;
  n = std::clamp(n, kMinLines, kMaxLines);
  while (n > kMinLines && (extent + n - 1) / n < kMinTiles) n = std::max(kMinLines, n / 2);
  return std::max<int64_t>(1, std::min(n, extent));
}

// Segments are handled kSegmentBlock at a time: the merge of a tile for a
// block of segments is one weighted sum of rows (combine_rows below:
// M_block = e_block [nb, E] x W[tile] [E, |tile|]), and so is the weight
// gradient's update (dW[tile] += e_block^T G_block), so
// the expert tiles and the accumulators are streamed once per block instead
// of once per segment. Blocks start at multiples of kSegmentBlock, so their
// shapes depend on S only.
constexpr int64_t kSegmentBlock = 8;

// The merge and the weight gradient's update are both a weighted sum of a few
// long rows with a few coefficients each:
//   out[r, :] (+)= Σ_c coef[r, c] · in[c, :]        r < R, c < C, rows of n values
// (merge: r a segment, c an expert, K = E; update: r an expert, c a segment
// of the block). With K = E or K = 8 a general GEMM spends more time packing
// its operands than multiplying, so this is a loop of its own: kRows outputs
// at a time, a chunk of kChunk columns each, held in registers (8 x 32 f32 =
// 16 AVX-512 registers) while the C input rows stream past once. The sum
// over c runs in order, so the result does not depend on anything but the
// shapes.
constexpr int64_t kRows = 8;
// A 64-byte vector of A (GCC/Clang vector extension; the compiler splits it
// where the machine's registers are narrower), loaded and stored by memcpy.
template <typename A>
struct Vector64;
template <>
struct Vector64<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vector64<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename A>
void combine_rows(A* out, int64_t out_stride, int64_t R, const A* in, int64_t in_stride, int64_t C, const A* coef,
                  int64_t coef_r, int64_t coef_c, int64_t n, bool accumulate) {
  using V = typename Vector64<A>::type;
  constexpr int64_t kLanes = 64 / sizeof(A), kChunk = 2 * kLanes;
  const int64_t n_full = n / kChunk * kChunk;
  for (int64_t r0 = 0; r0 < R; r0 += kRows) {
    const int64_t nr = std::min(kRows, R - r0);
    for (int64_t c0 = 0; c0 < C; c0 += 64) {
      const int64_t nc = std::min<int64_t>(64, C - c0);
      const bool first = !accumulate && c0 == 0;
      A w[64][kRows];  // the block's coefficients by input row, zero past nr
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t r = 0; r < kRows; ++r) w[c][r] = r < nr ? coef[(r0 + r) * coef_r + (c0 + c) * coef_c] : A(0);
      for (int64_t k0 = 0; k0 < n_full; k0 += kChunk) {
        V acc[kRows][2];
#pragma GCC unroll 8
        for (int64_t r = 0; r < kRows; ++r) {
          if (first || r >= nr) {
            acc[r][0] = V{};
            acc[r][1] = V{};
          } else {
            std::memcpy(&acc[r][0], out + (r0 + r) * out_stride + k0, sizeof(V));
            std::memcpy(&acc[r][1], out + (r0 + r) * out_stride + k0 + kLanes, sizeof(V));
          }
        }
        for (int64_t c = 0; c < nc; ++c) {
          V x0, x1;
          std::memcpy(&x0, in + (c0 + c) * in_stride + k0, sizeof(V));
          std::memcpy(&x1, in + (c0 + c) * in_stride + k0 + kLanes, sizeof(V));
#pragma GCC unroll 8
          for (int64_t r = 0; r < kRows; ++r) acc[r][0] += w[c][r] * x0, acc[r][1] += w[c][r] * x1;
        }
        for (int64_t r = 0; r < nr; ++r) {
          std::memcpy(out + (r0 + r) * out_stride + k0, &acc[r][0], sizeof(V));
          std::memcpy(out + (r0 + r) * out_stride + k0 + kLanes, &acc[r][1], sizeof(V));
        }
      }
      for (int64_t r = 0; r < nr; ++r)  // the last columns, one at a time, the same sums in the same order
        for (int64_t k = n_full; k < n; ++k) {
          A sum = first ? A(0) : out[(r0 + r) * out_stride + k];
          for (int64_t c = 0; c < nc; ++c) sum += w[c][r] * in[(c0 + c) * in_stride + k];
          out[(r0 + r) * out_stride + k] = sum;
        }
    }
  }
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

// The E expert tiles W_i[r0 : r0 + rows] as an [E, rows * in] matrix of A:
// a strided view of W itself (row i starts at expert i), or, for 16-bit
// experts, a widened copy in `buffer`.
template <typename T, typename A>
ConstRowMap<A> expert_tiles(const T* W, int64_t E, int64_t out, int64_t in, int64_t r0, int64_t rows,
                            std::vector<A>& buffer) {
  const int64_t n = rows * in;
  if constexpr (std::is_same_v<T, A>) {
    return ConstRowMap<A>(W + r0 * in, E, n, Eigen::OuterStride<>(out * in));
  } else {
    buffer.resize(static_cast<size_t>(E * n));
    for (int64_t i = 0; i < E; ++i) {
      const T* src = W + i * out * in + r0 * in;
      A* dst = buffer.data() + i * n;
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<A>(src[k]);
    }
    return ConstRowMap<A>(buffer.data(), E, n, Eigen::OuterStride<>(n));
  }
}

// The forward (transposed = false) and its input gradient (transposed = true).
// Both walk tiles of W's rows, so both merge the same tiles M_s = W̄_s[rows]:
//   forward     y_s[:, rows]  = x_s M_s^T        (each tile writes its own columns of y_s)
//   transposed  y_s          += x_s[:, rows] M_s (the tiles add up, in tile order)
// A work item is a run of segment blocks (and, forward only, a group of
// tiles when there are fewer runs than threads): it walks its tiles in order
// and, for each, its segments a block at a time.
template <typename T, typename A>
void merged_linear_kernel(const T* x_in, const T* e_in, const T* W, T* y_out, int64_t S, int64_t Tn, int64_t E,
                          int64_t out, int64_t in, bool transposed) {
  std::vector<A> x_copy, e_copy, y_acc;
  const int64_t k_dim = transposed ? out : in;  // x_s is [Tn, k_dim]
  const int64_t y_dim = transposed ? in : out;  // y_s is [Tn, y_dim]
  const A* x = as_compute<T, A>(x_in, S * Tn * k_dim, x_copy);
  const A* e = as_compute<T, A>(e_in, S * E, e_copy);
  // Where y is computed: y itself when T is the compute type, else an A
  // buffer rounded once at the end (the transposed form accumulates in it).
  A* y = nullptr;
  if constexpr (std::is_same_v<T, A>) {
    y = y_out;
  } else {
    y_acc.resize(static_cast<size_t>(S * Tn * y_dim));
    y = y_acc.data();
  }
  const int64_t tile = lines_per_tile(E, in, out, sizeof(A));
  const int64_t tiles = (out + tile - 1) / tile;
  const int64_t blocks = (S + kSegmentBlock - 1) / kSegmentBlock;
  const int64_t threads = max_threads();
  const int64_t runs = std::min<int64_t>(blocks, threads);  // runs of whole blocks
  // Forward only: when segments alone cannot feed every thread, tiles are split too.
  const int64_t groups = transposed ? 1 : std::min<int64_t>(tiles, (threads + runs - 1) / runs);
  const int64_t run_len = (blocks + runs - 1) / runs, group_len = (tiles + groups - 1) / groups;
  parallel_for(0, runs * groups, 1, [&](int64_t lo, int64_t hi) {
    std::vector<A> merged(static_cast<size_t>(kSegmentBlock * tile * in)), widened;
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t b0 = (item / groups) * run_len, b1 = std::min(blocks, b0 + run_len);
      const int64_t g0 = (item % groups) * group_len, g1 = std::min(tiles, g0 + group_len);
      for (int64_t t = g0; t < g1; ++t) {
        const int64_t r0 = t * tile, rows = std::min(tile, out - r0), n = rows * in;
        const ConstRowMap<A> Wt = expert_tiles<T, A>(W, E, out, in, r0, rows, widened);
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t s0 = b * kSegmentBlock, nb = std::min(kSegmentBlock, S - s0);
          // 1. the merge, for the block: M [nb, rows * in] = e_block [nb, E] W[tile] [E, rows * in]
          combine_rows<A>(merged.data(), n, nb, Wt.data(), Wt.outerStride(), E, e + s0 * E, E, 1, n, false);
          // 2. each segment's GEMM with its merged tile
          for (int64_t j = 0; j < nb; ++j) {
            const int64_t s = s0 + j;
            const ConstRowMap<A> M(merged.data() + j * n, rows, in, Eigen::OuterStride<>(in));
            if (transposed) {
              const ConstRowMap<A> xs(x + s * Tn * out + r0, Tn, rows, Eigen::OuterStride<>(out));
              RowMap<A> ys(y + s * Tn * in, Tn, in, Eigen::OuterStride<>(in));
              if (t == 0)
                ys.noalias() = xs * M;
              else
                ys.noalias() += xs * M;
            } else {
              const ConstRowMap<A> xs(x + s * Tn * in, Tn, in, Eigen::OuterStride<>(in));
              RowMap<A> ys(y + s * Tn * out + r0, Tn, rows, Eigen::OuterStride<>(out));
              ys.noalias() = xs * M.transpose();
            }
          }
        }
      }
    }
  });
  if constexpr (!std::is_same_v<T, A>) {
    parallel_for(0, S * Tn * y_dim, kParallelGrain, [&](int64_t b, int64_t e2) {
      for (int64_t i = b; i < e2; ++i) y_out[i] = cast_to<T>(y[i]);
    });
  }
}

// The parameter gradients. A work item owns a tile of W's rows (so its slice
// of every dW_i) and walks all segments a block at a time:
//   G_j      = dy_s[:, tile]^T x_s                      [rows, in], each segment s = s0 + j
//   dW[tile] += e_block^T G_block                       [E, rows * in], K = nb
//   de_part[tile, block] = G_block W[tile]^T            [nb, E], K = rows * in
// and de_si sums its tiles' parts in tile order afterwards.
template <typename T, typename A>
void merged_linear_backward_kernel(const T* dy_in, const T* x_in, const T* e_in, const T* W, T* dW, T* de, int64_t S,
                                   int64_t Tn, int64_t E, int64_t out, int64_t in) {
  std::vector<A> dy_copy, x_copy, e_copy;
  const A* dy = as_compute<T, A>(dy_in, S * Tn * out, dy_copy);
  const A* x = as_compute<T, A>(x_in, S * Tn * in, x_copy);
  const A* e = as_compute<T, A>(e_in, S * E, e_copy);
  // A tile holds the E expert tiles and E accumulators: twice the budget's element size.
  const int64_t tile = lines_per_tile(E, in, out, 2 * sizeof(A));
  const int64_t tiles = (out + tile - 1) / tile;
  std::vector<A> de_parts(static_cast<size_t>(tiles * S * E));  // [tile, s, i]: <G_s[tile], W_i[tile]>
  parallel_for(0, tiles, 1, [&](int64_t lo, int64_t hi) {
    std::vector<A> G, acc, widened;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t r0 = t * tile, rows = std::min(tile, out - r0), n = rows * in;
      const ConstRowMap<A> Wt = expert_tiles<T, A>(W, E, out, in, r0, rows, widened);
      G.resize(static_cast<size_t>(kSegmentBlock * n));
      // Where dW_i[tile] is summed: dW itself when T is the compute type
      // (row i at stride out * in), else an A buffer rounded once at the end.
      A* dW_tile = nullptr;
      int64_t dW_stride = n;
      if constexpr (std::is_same_v<T, A>) {
        dW_tile = dW + r0 * in, dW_stride = out * in;
      } else {
        acc.resize(static_cast<size_t>(E * n));
        dW_tile = acc.data();
      }
      for (int64_t s0 = 0; s0 < S; s0 += kSegmentBlock) {
        const int64_t nb = std::min(kSegmentBlock, S - s0);
        for (int64_t j = 0; j < nb; ++j) {
          const int64_t s = s0 + j;
          const ConstRowMap<A> dys(dy + s * Tn * out + r0, Tn, rows, Eigen::OuterStride<>(out));
          const ConstRowMap<A> xs(x + s * Tn * in, Tn, in, Eigen::OuterStride<>(in));
          RowMap<A>(G.data() + j * n, rows, in, Eigen::OuterStride<>(in)).noalias() = dys.transpose() * xs;
        }
        const ConstRowMap<A> Gb(G.data(), nb, n, Eigen::OuterStride<>(n));
        combine_rows<A>(dW_tile, dW_stride, E, G.data(), n, nb, e + s0 * E, 1, E, n, /*accumulate=*/s0 > 0);
        RowMap<A>(de_parts.data() + (t * S + s0) * E, nb, E, Eigen::OuterStride<>(E)).noalias() =
            Gb * Wt.transpose();
      }
      if constexpr (!std::is_same_v<T, A>) {
        for (int64_t i = 0; i < E; ++i) {
          T* dst = dW + i * out * in + r0 * in;
          const A* a = acc.data() + i * n;
          for (int64_t k = 0; k < n; ++k) dst[k] = cast_to<T>(a[k]);
        }
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
