// expert_choice_ffn.h — the sparse MoE baselines of paper §5.3: Expert Choice
// routing (Zhou et al., 2022) over tokens or over segments.
//
// Expert Choice turns token-choice routing around: instead of each token
// picking its top experts (and experts overflowing or idling), each expert
// picks its top-k units, so every expert does exactly the same work. For n
// units (tokens, or segments of T tokens) and E experts:
//
//   S = Softmax(R(u))                       [n, E]   each unit's distribution over experts
//   k = round(capacity_factor * n / E)               units per expert (paper: capacity 1,
//                                                    the compute of one FFN per token)
//   I_e = top-k of S[:, e]                  [E, k]   expert e's units, best first
//   G_e = S[I_e, e]                         [E, k]   the gate of each (differentiable);
//                                                    E * S[I_e, e] with expert_choice_gates =
//                                                    softmax_times_experts (nn/config.h: so
//                                                    an upcycled layer keeps the dense FFN's
//                                                    output scale)
//   Y_e = FFN_e(u[I_e])                     [E, k, ...]  per-expert SwiGLU: one batched
//                                                    GEMM, since every expert has k units
//   o_u = Σ_{e : u ∈ I_e} G_e[u] · Y_e[u]            scattered back (index_add); a unit
//                                                    no expert picked gets 0 (the layer's
//                                                    residual carries it)
//
// Gradients reach the experts through Y, the router through the gates G and
// the input through both; the choice I itself is a discrete top-k (no
// gradient), which is what makes this MoE sparse and not fully
// differentiable like Lory.
//
// The units (the config's moe_type):
//   expert_choice_token    u = a token's hidden state h_x (Zhou et al.'s setting)
//   expert_choice_segment  u = a segment's T tokens; S is the segment routing of
//                          Lory (nn/segment_routing.h: segment k scored by the
//                          mean of segment k-1, eq. (3)), and an expert that
//                          picks a segment runs all its tokens (paper §5.3)
//
// What is and is not causal. The top-k is taken over all units of the
// forward's batch, so whether a unit is processed depends on the scores of
// the other units — including the later tokens (token level) or later
// segments (segment level) of its own sequence, and other sequences. A
// token's output therefore depends on the future of its sequence: in
// training this leaks information across positions (the loss at position t
// is computed by a layer that saw positions > t compete), and at evaluation
// the result depends on what else is in the batch. This is how Expert Choice
// is defined and how the paper compares against it; it cannot generate one
// token at a time (forward_cached is refused). Lory's segment routing has
// neither problem: a segment's merge depends only on the segment before it.
//
// Parameters: the Lory layer's, stacked_experts.h (so the same upcycling
// fills them).
#pragma once

#include "nn/config.h"
#include "nn/stacked_experts.h"

namespace lory::nn {

class ExpertChoiceFFN : public StackedExperts {
 public:
  // config.moe_type must be expert_choice_segment or expert_choice_token.
  ExpertChoiceFFN(const LoryConfig& config, const InitOptions& init);

  // x: [B, L, d] -> [B, L, d]. The same computation in training and evaluation.
  Tensor forward(const Tensor& x);

  // The routing distributions the last forward chose by (detached): the
  // segment-level scores [B, N, E], or the per-token scores [B, L, E].
  const Tensor& last_routing_weights() const { return last_scores_; }
  // The units (tokens or segments) each expert took in the last forward: [E, k].
  const Tensor& last_choice() const { return last_choice_; }

  // Units per expert for n units: round(capacity_factor * n / E), in [1, n].
  int64_t capacity(int64_t units) const;

  int64_t segment_length;
  MoEType level;  // expert_choice_segment or expert_choice_token
  double capacity_factor;
  ExpertChoiceGates gates;  // G = S, or E * S
  FirstSegment first_segment;
  TrainingRouting routing;

 private:
  // The chosen units through their experts: units [n, m, d] (m tokens each),
  // scores [n, E] -> [n, m, d].
  Tensor choose_and_run(const Tensor& units, const Tensor& scores);
  Tensor last_scores_, last_choice_;
};

}  // namespace lory::nn
