// merged_linear.cu — Lory's expert merge with the segment GEMMs on the GPU
// (Backend::merged_linear, merged_linear_backward_weights; the CPU twin is
// tensor/cpu/merged_linear.cpp, the op tensor/ops/merged_linear.cpp, the
// readable GEMM formulation nn/merge_experts.h).
//
// What is computed. For every segment s of T tokens, the merged matrix of the
// paper's eq. (2) — SMEAR's FFN(h; Σ_i e_i θ_i) — taken with the segment's
// routing weights, as the last part of eq. (3) prescribes:
//   W̄_s = Σ_i e_si W_i                          [out, in]     W: [E, out, in], e: [S, E]
//   forward      y_s = x_s W̄_s^T                x_s [T, in]   -> y_s [T, out]
//   transposed   y_s = x_s W̄_s                  x_s [T, out]  -> y_s [T, in]   (dx of the forward)
//   weights      G_s = dy_s^T x_s   [out, in]   (what dW̄_s would be)
//                dW_i  = Σ_s e_si G_s           (chain rule through the merge)
//                de_si = <G_s, W_i>             (Frobenius product)
//
// How. The CPU kernel forms W̄_s and G_s a tile at a time in L2 and never
// holds one whole. The GPU equivalent is a tensor-core GEMM that merges its
// own operand tiles in its prologue; until that exists, this file takes the
// robust route and leaves every FLOP to cuBLAS (cuda/gemm.h), because the
// merge itself is a GEMM: stacking the experts as W [E, out·in],
//   W̄[s0 : s0 + nc] = e[s0 : s0 + nc] @ W         [nc, E] x [E, out·in]
// What keeps the memory bounded is CHUNKING: segments are taken nc at a time,
// with nc·out·in elements within a fixed workspace budget (64 MiB by default,
// at least one segment, chunks balanced so the last is not a sliver), and
// the workspace holds one chunk's W̄ (forward) or G (backward), never all S
// of them: there is no [S, out, in] buffer, and the extra memory does not
// grow with the batch. Per chunk c = segments [s0, s0 + nc):
//   forward / transposed
//     1. W̄_c = e_c @ W                     one GEMM, K = E
//     2. y_c = x_c @ W̄_c^T  (forward)      one strided-batched GEMM over the
//        y_c = x_c @ W̄_c    (transposed)   chunk's segments, K = in (or out)
//   backward weights
//     1. G_c  = dy_c^T @ x_c               strided-batched, K = T
//     2. dW  (+)= e_c^T @ G_c              [E, nc] x [nc, out·in]: beta = 0 for
//                                          the first chunk, 1 after
//     3. de_c = G_c @ W^T                  [nc, out·in] x [out·in, E]: each
//                                          chunk owns its rows of de
// Transposed views (x^T, W̄^T, e^T, W^T) are read in place: the GEMM wrapper
// turns them into cuBLAS's transposition flags (gemm_operand,
// tensor/kernel_args.h). The price against the CPU's fusion is traffic: W̄_c
// and G_c are written and read back once, about as many bytes as the segment
// GEMMs' own operands at T = 64; the FLOPs are the same (the merge is E/T of
// the segment GEMM, paper App. B).
//
// Precision. f32: f32 GEMMs with f32 accumulation (TF32 only when the
// backend allows it, cuda/gemm.h), so results differ from the CPU's by
// summation order. bf16/f16: each GEMM accumulates in f32 and rounds once;
// W̄_c and G_c are stored in the compute dtype — the precision of the GEMM
// formulation (nn/merge_experts.h stores W̄ and dW̄ in bf16 too), one rounding
// more than the CPU kernel, whose tiles stay f32. dW accumulates over chunks
// in f32: with more than one chunk the GEMM writes an f32 [E, out, in]
// workspace (16-bit operands, f32 output, beta = 1), rounded into dW once at
// the end; de's rows are finished within their chunk (K = out·in summed in
// f32 inside cuBLAS) and rounded once. f64: the same steps on cuBLAS's DGEMM.
//
// Determinism. No atomics: every output is written by GEMMs in a fixed order
// (dW accumulates chunk after chunk), the chunking depends on the shapes and
// the budget only, and cuBLAS with the algorithm GemmContext caches per
// problem gives the same bits on every run on a given GPU and library.
//
// Workspace: temporary tensors from the caching allocator, given back at the
// end of the call (their blocks serve the next call; stream order makes that
// safe, cuda/caching_allocator.h). The budget can be lowered for tests
// (CudaBackend::set_merged_linear_chunk_bytes) to force several chunks.
#include <algorithm>

#include "cuda/cuda_backend.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// Segments [s0, s0 + size) of a call.
struct Chunk {
  int64_t s0, size;
};

// How many segments a chunk holds: as many as fit `budget` bytes of one
// [out, in] matrix of `elem` bytes each (at least one), then evened out over
// the chunks that takes.
int64_t chunk_size(int64_t S, int64_t matrix_elems, size_t elem, size_t budget) {
  const int64_t per_segment = matrix_elems * static_cast<int64_t>(elem);
  const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(budget) / std::max<int64_t>(1, per_segment));
  const int64_t chunks = (S + fit - 1) / fit;
  return (S + chunks - 1) / chunks;
}

template <typename F>
void for_each_chunk(int64_t S, int64_t size, F&& f) {
  for (int64_t s0 = 0; s0 < S; s0 += size) f(Chunk{s0, std::min(size, S - s0)});
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

size_t CudaBackend::merged_linear_chunk_bytes() const {
  const size_t bytes = merged_linear_chunk_bytes_.load();
  return bytes == 0 ? kMergedLinearChunkBytes : bytes;
}

void CudaBackend::merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                                Tensor& out) {
  const cudaStream_t stream = enter("merged_linear", {&x, &weights, &experts, &out});
  check_merged_linear_args(x, weights, experts, transposed, out);
  if (out.numel() == 0) return;
  const int64_t S = x.size(0), E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  if (E == 0 || (transposed ? rows : cols) == 0) {  // an empty merge or an empty sum: zeros
    cuda::launch_fill(out, 0.0, stream);
    return;
  }
  // Views without autograd history: the operands may be parameters that require grad.
  const Tensor xd = x.detach(), e = weights.detach(), y = out.detach();
  const Tensor W = experts.detach().view({1, E, rows * cols});
  const DType dtype = experts.dtype();
  const int64_t nc_max = cuda::chunk_size(S, rows * cols, dtype_size(dtype), merged_linear_chunk_bytes());
  const Tensor merged = empty({nc_max * rows * cols}, TensorOptions{dtype, device(), false});
  cuda::GemmContext& g = gemm();
  cuda::for_each_chunk(S, nc_max, [&](cuda::Chunk c) {
    // 1. the merge: W̄_c [nc, out·in] = e_c [nc, E] @ W [E, out·in]
    const Tensor Wbar = merged.narrow(0, 0, c.size * rows * cols);
    g.gemm(e.narrow(0, c.s0, c.size).unsqueeze(0), W, Wbar.view({1, c.size, rows * cols}), 0.0, stream);
    // 2. the segment GEMMs, batched over the chunk
    const Tensor Wb = Wbar.view({c.size, rows, cols});
    g.gemm(xd.narrow(0, c.s0, c.size), transposed ? Wb : Wb.transpose(1, 2), y.narrow(0, c.s0, c.size), 0.0, stream);
  });
}

void CudaBackend::merged_linear_backward_weights(const Tensor& dy, const Tensor& x, const Tensor& weights,
                                                 const Tensor& experts, Tensor& dexperts, Tensor& dweights) {
  const cudaStream_t stream =
      enter("merged_linear_backward_weights", {&dy, &x, &weights, &experts, &dexperts, &dweights});
  check_merged_linear_backward_args(dy, x, weights, experts, dexperts, dweights);
  const int64_t S = x.size(0), Tn = x.size(1), E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  if (dexperts.numel() == 0 || S == 0 || Tn == 0) {  // nothing to multiply: zero gradients
    cuda::launch_fill(dexperts, 0.0, stream);
    cuda::launch_fill(dweights, 0.0, stream);
    return;
  }
  const int64_t n = rows * cols;  // elements of one [out, in] matrix
  const Tensor dyd = dy.detach(), xd = x.detach(), e = weights.detach(), de = dweights.detach();
  const Tensor W = experts.detach().view({1, E, n});
  const DType dtype = experts.dtype();
  const int64_t nc_max = cuda::chunk_size(S, n, dtype_size(dtype), merged_linear_chunk_bytes());
  const bool several = nc_max < S;
  // Where dW accumulates: dexperts itself, except for 16-bit experts over
  // several chunks, which sum in f32 and are rounded once at the end.
  const bool f32_acc = several && (dtype == DType::bf16 || dtype == DType::f16);
  const Tensor dW = f32_acc ? empty(dexperts.shape(), TensorOptions{DType::f32, device(), false}) : dexperts.detach();
  const Tensor grads = empty({nc_max * n}, TensorOptions{dtype, device(), false});
  cuda::GemmContext& g = gemm();
  cuda::for_each_chunk(S, nc_max, [&](cuda::Chunk c) {
    // 1. G_c [nc, out, in] = dy_c^T [nc, out, T] @ x_c [nc, T, in]
    const Tensor G = grads.narrow(0, 0, c.size * n);
    g.gemm(dyd.narrow(0, c.s0, c.size).transpose(1, 2), xd.narrow(0, c.s0, c.size), G.view({c.size, rows, cols}), 0.0,
           stream);
    const Tensor Gf = G.view({1, c.size, n});
    const Tensor ec = e.narrow(0, c.s0, c.size).unsqueeze(0);  // [1, nc, E]
    // 2. dW [E, out·in] (+)= e_c^T [E, nc] @ G_c [nc, out·in]
    g.gemm(ec.transpose(1, 2), Gf, dW.view({1, E, n}), c.s0 == 0 ? 0.0 : 1.0, stream);
    // 3. de_c [nc, E] = G_c [nc, out·in] @ W^T [out·in, E]
    g.gemm(Gf, W.transpose(1, 2), de.narrow(0, c.s0, c.size).unsqueeze(0), 0.0, stream);
  });
  if (f32_acc) cuda::launch_copy(dW, dexperts, stream);
}

}  // namespace lory
