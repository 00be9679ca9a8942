// merge_experts.h — expert merging in parameter space: the readable GEMM
// formulation, which the fused kernel (tensor/ops/merged_linear.cpp) is
// tested against.
//
// The merge of the paper (lory-paper.md): SMEAR's merged FFN, eq. (2),
//   o_x = FFN(h_x; Σ_{i=1}^{E} e_i · θ_i)
// which Lory does once per segment with the segment's routing weights, the
// last part of eq. (3):
//   θ̄ = Σ_i e_i · θ_i
// A Lory layer never runs its E experts: per segment s it builds one merged
// matrix  W̄_s = Σ_i e_si W_i  (for each of gate, up and down) and runs the
// tokens of that segment through it. With the experts stacked as
// W: [E, out, in], the merge of all S segments is one GEMM over the
// flattened stack,
//   W̄ = (e [S, E] @ W.view(E, out*in)).view(S, out, in)
// (6·E·d·f FLOPs per segment for the three matrices: paper App. B's cost),
// and its backward is two GEMMs:
//   dW = e^T @ dW̄      (dW_i = Σ_s e_si dW̄_s)
//   de = dW̄ @ W^T      (de_si = <dW̄_s, W_i>)
// which is what the matmul op's own backward computes, so merge_experts needs
// no backward of its own.
//
// The price of writing it this way: every W̄_s [out, in] is written to memory
// and read back by the segment GEMMs, and backward does the same with every
// dW̄_s. That is S·out·in values per linear, at T = 64 as much traffic as the
// GEMMs' own operands. The fused op computes the same values a tile at a time
// and never holds W̄_s or dW̄_s whole; LoryFFN uses it unless told
// MergeKernel::gemm.
#pragma once

#include "tensor/tensor.h"

namespace lory::nn {

// weights: [S, E], experts: [E, out, in] -> merged [S, out, in].
Tensor merge_experts(const Tensor& weights, const Tensor& experts);

// Segment-batched linear through merged experts, materialising every W̄_s:
//   x: [S, T, in], weights: [S, E], experts: [E, out, in] -> [S, T, out],
//   y_s = x_s W̄_s^T.
// The merged W̄ [S, out, in] is kept for the backward (by the batched matmul
// that uses it).
Tensor merged_linear_gemm(const Tensor& x, const Tensor& weights, const Tensor& experts);

}  // namespace lory::nn
