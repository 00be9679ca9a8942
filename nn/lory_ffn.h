// lory_ffn.h — the Lory layer: a fully differentiable MoE FFN whose E SwiGLU
// experts are merged in parameter space once per segment (paper §3.1).
//
// For the layer input x: [B, L, d], segment length T and N = ceil(L/T):
//   1. h̄ = mean of x over each segment                          [B, N, d]
//      (a final partial segment is averaged over its real tokens)
//   2. p = softmax(router(h̄))                                    [B, N, E]
//   3. causal shift (eq. 3): segment k uses p_{k-1}; segment 1 uses its own
//      p_1 with a stop-gradient (the experts still get its gradient; the
//      router does not), or 1/E for a strictly causal first segment
//   4. per segment, W̄ = Σ_i e_i W_i for gate, up and down (merge_experts)
//   5. y = (silu(x W̄_gate^T) * (x W̄_up^T)) W̄_down^T for the segment's tokens
// Parameters, stacked (HF-style names under the layer's "mlp."):
//   experts.gate_proj.weight [E, f, d], experts.up_proj.weight [E, f, d],
//   experts.down_proj.weight [E, d, f], router.weight [E, d].
#pragma once

#include "nn/config.h"
#include "nn/linear.h"

namespace lory::nn {

// Per-layer routing state for incremental decoding (generation).
struct LoryCache {
  int64_t position = 0;  // tokens this layer has seen
  Tensor weights;        // [B, E]: the routing weights of the current segment
  Tensor segment_sum;    // [B, d] f32: sum of the current segment's inputs (segment routing)
};

class LoryFFN : public Module {
 public:
  LoryFFN(const LoryConfig& config, const InitOptions& init);

  // Whole-sequence forward. `routing` is causal_segment, prefix or prompt
  // (segment routing is causal_segment here). prompt_length: for prompt
  // routing, the tokens whose mean makes the one decision (0 = all of x).
  Tensor forward(const Tensor& x, Routing routing, int64_t prompt_length = 0);
  // Incremental forward for generation: x holds the next tokens after those
  // the cache has seen. routing is prompt (the first call's tokens decide,
  // once) or segment (re-route at every segment boundary from the segment
  // just finished; segment 1 from the first call's part of it).
  Tensor forward_cached(const Tensor& x, Routing routing, LoryCache& cache);

  // The routing weights the last forward used, per segment: [B, N, E]
  // (detached; kept because they exist anyway, so reading them costs nothing).
  const Tensor& last_routing_weights() const { return last_weights_; }

  // Segment means of x: [B, L, d] -> [B, ceil(L/T), d].
  static Tensor segment_means(const Tensor& x, int64_t T);

  Tensor gate_experts, up_experts, down_experts;  // [E, f, d], [E, f, d], [E, d, f]
  Linear router;                                  // weight [E, d]
  int64_t num_experts, segment_length;
  FirstSegment first_segment;
  bool recompute_merged = false;  // recompute W̄ in backward instead of storing it

 private:
  // The merged SwiGLU over S groups of tokens: xs [S, T, d], weights [S, E].
  Tensor merged_ffn(const Tensor& xs, const Tensor& weights) const;
  Tensor route_probs(const Tensor& means) const { return softmax(router.forward(means), -1); }
  void check_input(const Tensor& x) const;  // x: [B, L, d]
  Tensor last_weights_;
};

}  // namespace lory::nn
