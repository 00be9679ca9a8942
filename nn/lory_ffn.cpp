// lory_ffn.cpp — the Lory layer (see lory_ffn.h for the equations and the steps).
#include "nn/lory_ffn.h"

#include <algorithm>

#include "tensor/graph.h"
#include "nn/merge_experts.h"
#include "nn/segment_routing.h"

namespace lory::nn {

LoryFFN::LoryFFN(const LoryConfig& c, const InitOptions& init)
    : StackedExperts(c, init, "LoryFFN"), segment_length(c.segment_length), first_segment(c.first_segment) {}

void LoryFFN::check_input(const Tensor& x) const {
  LORY_CHECK(x.dim() == 3 && x.size(2) == router.weight.size(1), "LoryFFN: x must be [B, L, ", router.weight.size(1),
             "], got ", x.describe());
}

Tensor LoryFFN::segment_means(const Tensor& x, int64_t T) { return segment_mean(x, T); }

Tensor LoryFFN::merged_ffn(const Tensor& xs, const Tensor& weights) const {
  auto linear = [&](const Tensor& x, const Tensor& experts) {
    return merge_kernel == MergeKernel::fused ? merged_linear(x, weights, experts)
                                              : merged_linear_gemm(x, weights, experts);
  };
  return linear(swiglu(linear(xs, gate_experts), linear(xs, up_experts)), down_experts);
}

Tensor LoryFFN::forward(const Tensor& x, const ForwardRouting& routing, int64_t prompt_length) {
  check_input(x);
  if (x.size(1) == 0) return zeros_like(x);
  const InferenceRouting* inference = std::get_if<InferenceRouting>(&routing);
  Tensor weights;  // [B, N, E]: the weights each segment's merge uses
  if (inference && *inference == InferenceRouting::prompt)
    weights = prompt_weights(x, prompt_length);
  else  // segment routing over a whole sequence is causal_segment
    weights = segment_weights(x, inference ? TrainingRouting::causal_segment : std::get<TrainingRouting>(routing));
  last_weights_ = weights.detach();
  return segmentwise_ffn(x, weights);
}

Tensor LoryFFN::prompt_weights(const Tensor& x, int64_t prompt_length) const {
  // §3.1, prompt-only routing: one decision from the mean of the prompt, for every segment.
  const int64_t B = x.size(0), L = x.size(1), T = segment_length, E = num_experts;
  const int64_t N = (L + T - 1) / T;
  const int64_t P = prompt_length > 0 ? std::min(prompt_length, L) : L;
  return route_probs(mean(x.narrow(1, 0, P), {1}, true)).expand({B, N, E});
}

Tensor LoryFFN::segment_weights(const Tensor& x, TrainingRouting routing) const {
  // Steps 1-2: p_k = Softmax(R(h̄_k)), from segment k's own mean (eq. (3) before the shift);
  // step 3: the shift (nn/segment_routing.h).
  return causal_segment_routing(route_probs(segment_means(x, segment_length)), first_segment, routing);
}

Tensor LoryFFN::segmentwise_ffn(const Tensor& x, const Tensor& weights) const {
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), T = segment_length, E = num_experts;
  const int64_t N = (L + T - 1) / T;
  // Tokens grouped by segment: [B*N, T, d], the last segment zero-padded.
  const Tensor padded = N * T == L ? x : cat({x, zeros({B, N * T - L, d}, {x.dtype(), x.device(), false})}, 1);
  const Tensor y = merged_ffn(padded.reshape({B * N, T, d}), weights.reshape({B * N, E})).view({B, N * T, d});
  return N * T == L ? y : y.narrow(1, 0, L);
}

Tensor LoryFFN::forward_cached(const Tensor& x, InferenceRouting routing, LoryCache& cache) {
  check_input(x);
  const int64_t L = x.size(1), T = segment_length, E = num_experts;
  if (L == 0) return zeros_like(x);
  if (routing == InferenceRouting::prompt) {
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
    if (offset == 0 && segment > 0) {  // segment k-1 just completed: e = Softmax(R(h̄_{k-1})), eq. (3)
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
