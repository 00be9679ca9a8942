// lory_ffn.cpp — see lory_ffn.h.
#include "nn/lory_ffn.h"

#include <algorithm>

#include "tensor/graph.h"
#include "nn/merge_experts.h"

namespace lory::nn {

LoryFFN::LoryFFN(const LoryConfig& c, const InitOptions& init)
    : gate_experts(normal_parameter({c.num_experts, c.intermediate_size, c.hidden_size}, init.std, init)),
      up_experts(normal_parameter({c.num_experts, c.intermediate_size, c.hidden_size}, init.std, init)),
      down_experts(normal_parameter({c.num_experts, c.hidden_size, c.intermediate_size}, init.std, init)),
      router(c.hidden_size, c.num_experts, InitOptions{c.router_init_std, init.dtype, init.device}),
      num_experts(c.num_experts),
      segment_length(c.segment_length),
      first_segment(c.first_segment) {
  LORY_CHECK(c.num_experts > 0, "LoryFFN: num_experts must be > 0, got ", c.num_experts);
  register_parameter("experts.gate_proj.weight", gate_experts);
  register_parameter("experts.up_proj.weight", up_experts);
  register_parameter("experts.down_proj.weight", down_experts);
  register_module("router", router);
}

void LoryFFN::check_input(const Tensor& x) const {
  LORY_CHECK(x.dim() == 3 && x.size(2) == router.weight.size(1), "LoryFFN: x must be [B, L, ", router.weight.size(1),
             "], got ", x.describe());
}

Tensor LoryFFN::segment_means(const Tensor& x, int64_t T) { return segment_mean(x, T); }

Tensor LoryFFN::merged_ffn(const Tensor& xs, const Tensor& weights) const {
  const Tensor gate = merged_linear(xs, weights, gate_experts, recompute_merged);
  const Tensor up = merged_linear(xs, weights, up_experts, recompute_merged);
  return merged_linear(swiglu(gate, up), weights, down_experts, recompute_merged);
}

Tensor LoryFFN::forward(const Tensor& x, Routing routing, int64_t prompt_length) {
  check_input(x);
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), T = segment_length, E = num_experts;
  const int64_t N = (L + T - 1) / T;
  if (L == 0) return zeros_like(x);

  Tensor weights;  // [B, N, E]: the weights each segment's merge uses
  if (routing == Routing::prompt) {
    // One decision from the mean of the prompt, for every segment (§3.1, inference).
    const int64_t P = prompt_length > 0 ? std::min(prompt_length, L) : L;
    weights = route_probs(mean(x.narrow(1, 0, P), {1}, true)).expand({B, N, E});
  } else {
    const Tensor probs = route_probs(segment_means(x, T));  // [B, N, E]: p_k from segment k's own mean
    // Segment 1: its own weights behind a stop-gradient (eq. 3 and the text
    // after it), or the plain expert average for a strictly causal model.
    const Tensor first = first_segment == FirstSegment::uniform
                             ? full({B, 1, E}, 1.0 / static_cast<double>(E), {probs.dtype(), probs.device(), false})
                             : probs.narrow(1, 0, 1).detach();
    if (routing == Routing::current_segment) {  // leaky on purpose (see config.h)
      weights = probs;
    } else if (N == 1) {
      weights = first;
    } else if (routing == Routing::prefix) {  // §5.1: segment 1 decides for all
      weights = cat({first, probs.narrow(1, 0, 1).expand({B, N - 1, E})}, 1);
    } else {  // causal_segment (and segment): segment k uses p_{k-1}
      weights = cat({first, probs.narrow(1, 0, N - 1)}, 1);
    }
  }
  last_weights_ = weights.detach();

  // Tokens grouped by segment: [B*N, T, d], the last segment zero-padded.
  const Tensor padded = N * T == L ? x : cat({x, zeros({B, N * T - L, d}, {x.dtype(), x.device(), false})}, 1);
  const Tensor y = merged_ffn(padded.reshape({B * N, T, d}), weights.reshape({B * N, E})).view({B, N * T, d});
  return N * T == L ? y : y.narrow(1, 0, L);
}

Tensor LoryFFN::forward_cached(const Tensor& x, Routing routing, LoryCache& cache) {
  check_input(x);
  LORY_CHECK(routing == Routing::prompt || routing == Routing::segment || routing == Routing::causal_segment,
             "LoryFFN: generation routes by prompt or segment, not ", routing_name(routing));
  const int64_t L = x.size(1), T = segment_length, E = num_experts;
  if (L == 0) return zeros_like(x);
  if (routing == Routing::prompt) {
    if (!cache.weights.defined()) cache.weights = route_probs(mean(x, {1}));  // [B, E], once
    cache.position += L;
    last_weights_ = cache.weights.unsqueeze(1).detach();
    return merged_ffn(x, cache.weights);  // each sequence is one group of L tokens
  }
  // Segment routing: cut x at segment boundaries; each piece uses the current
  // segment's weights, which change when a segment completes.
  const DType acc = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  std::vector<Tensor> outputs;
  for (int64_t p = 0; p < L;) {
    const int64_t segment = cache.position / T, offset = cache.position % T;
    if (offset == 0 && segment > 0) {  // segment k-1 just completed: route segment k from its mean
      cache.weights = route_probs((cache.segment_sum / static_cast<double>(T)).to(x.dtype()));
      cache.segment_sum = Tensor();
    }
    const int64_t n = std::min(L - p, T - offset);
    const Tensor piece = x.narrow(1, p, n);
    if (!cache.weights.defined())  // segment 1, first call: route by what it has of segment 1
      cache.weights = first_segment == FirstSegment::uniform
                          ? full({x.size(0), E}, 1.0 / static_cast<double>(E), {x.dtype(), x.device(), false})
                          : route_probs(mean(piece, {1}));
    const Tensor piece_sum = sum(piece.to(acc), {1});
    cache.segment_sum = cache.segment_sum.defined() ? cache.segment_sum + piece_sum : piece_sum;
    outputs.push_back(merged_ffn(piece, cache.weights));
    cache.position += n;
    p += n;
  }
  last_weights_ = cache.weights.unsqueeze(1).detach();
  return outputs.size() == 1 ? outputs[0] : cat(outputs, 1);
}

}  // namespace lory::nn
