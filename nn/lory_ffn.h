// lory_ffn.h — the Lory layer: a fully differentiable MoE FFN whose E SwiGLU
// experts are merged in parameter space once per segment (paper §3.1).
//
// The paper's equations (lory-paper.md §3.1). θ_i are the parameters of
// expert i, R the router (a linear layer), S_k the k-th segment of T tokens,
// h_x the layer's input at token x:
//
//   eq. (3)   h̄_{k-1} = (1/T) Σ_{x ∈ S_{k-1}} h_x,   e_i = Softmax(R(h̄_{k-1}))_i,   θ̄ = Σ_i e_i · θ_i
//   then      o_x = FFN(h_x; θ̄)  for every x ∈ S_k                    (the text after eq. (3))
//   and       S_1 is merged with its own weights, Softmax(R(h̄_1)), "with a
//             stop-gradient operation on R(h̄_1)"                       (ibid.)
//
// forward() computes them for the layer input x: [B, L, d] and N = ceil(L/T):
//   1. h̄ = segment_mean(x, T)                                        [B, N, d]
//      (h̄_k; a final partial segment is averaged over its real tokens)
//   2. p = softmax(router(h̄))                                        [B, N, E]
//      (p_k = Softmax(R(h̄_k)): the weights segment k's mean asks for)
//   3. the causal shift of eq. (3): segment k is merged with e = p_{k-1};
//      segment 1 with p_1.detach() (the stop-gradient: the experts still get
//      segment 1's gradient, the router does not), or with 1/E when
//      first_segment = uniform (strictly causal)                      [B, N, E]
//   4. θ̄ = Σ_i e_i θ_i per segment, for gate, up and down (merge_experts.h)
//   5. o = (silu(x W̄_gate^T) * (x W̄_up^T)) W̄_down^T for the segment's
//      tokens: FFN(h_x; θ̄) with LLaMA's SwiGLU FFN
// Parameters: the stacked experts and router of stacked_experts.h
// (R(h) = router.weight h, no bias).
#pragma once

#include "nn/config.h"
#include "nn/stacked_experts.h"

namespace lory::nn {

// Per-layer routing state for incremental decoding (generation).
struct LoryCache {
  int64_t position = 0;  // tokens this layer has seen
  Tensor weights;        // [B, E]: the routing weights of the current segment
  Tensor segment_sum;    // [B, d] f32 (f64 for f64 inputs): sum of the current segment's inputs (segment routing)
};

class LoryFFN : public StackedExperts {
 public:
  LoryFFN(const LoryConfig& config, const InitOptions& init);

  // Whole-sequence forward, x: [B, L, d] -> [B, L, d]. By `routing`:
  //   TrainingRouting::causal_segment  steps 1-5 above
  //   TrainingRouting::prefix          every segment merged with segment 1's weights (§5.1)
  //   InferenceRouting::prompt         one decision, Softmax(R(mean of the first
  //                                    prompt_length tokens)) (0 = all of x), for every token
  //   InferenceRouting::segment        what causal_segment computes (segment routing over
  //                                    tokens that are all there at once)
  Tensor forward(const Tensor& x, const ForwardRouting& routing, int64_t prompt_length = 0);
  // Incremental forward for generation: x holds the next tokens after those
  // the cache has seen. prompt: the first call's tokens decide, once, by
  // their mean. segment: re-route at every segment boundary from the mean of
  // the segment just completed (eq. (3) one segment at a time); segment 1 is
  // routed by what the first call holds of it.
  Tensor forward_cached(const Tensor& x, InferenceRouting routing, LoryCache& cache);

  // The routing weights the last forward used, per segment: [B, N, E]
  // (detached; kept because they exist anyway, so reading them costs nothing).
  const Tensor& last_routing_weights() const { return last_weights_; }

  // Segment means of x: [B, L, d] -> [B, ceil(L/T), d] (h̄_k of eq. (3)).
  static Tensor segment_means(const Tensor& x, int64_t T);

  int64_t segment_length;
  FirstSegment first_segment;
  MergeKernel merge_kernel = MergeKernel::fused;  // how W̄ is applied (merge_experts.h)

 private:
  // Steps 1-3: the weights each segment of x is merged with, [B, N, E].
  Tensor segment_weights(const Tensor& x, TrainingRouting routing) const;
  // Prompt routing: one decision from the mean of x's first P tokens, for all N segments: [B, N, E].
  Tensor prompt_weights(const Tensor& x, int64_t prompt_length) const;
  // Steps 4-5 for every segment of x: [B, L, d] with weights [B, N, E] -> [B, L, d].
  Tensor segmentwise_ffn(const Tensor& x, const Tensor& weights) const;
  // Steps 4-5 over S groups of tokens: xs [S, T, d], weights [S, E] -> [S, T, d].
  Tensor merged_ffn(const Tensor& xs, const Tensor& weights) const;
  // Softmax(R(h)): h [..., d] -> [..., E].
  Tensor route_probs(const Tensor& means) const { return softmax(router.forward(means), -1); }
  void check_input(const Tensor& x) const;  // x: [B, L, d]
  Tensor last_weights_;
};

}  // namespace lory::nn
