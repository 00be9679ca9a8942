// expert_choice_ffn.cpp — Expert Choice MoE (see expert_choice_ffn.h for the
// equations and what is causal).
#include "nn/expert_choice_ffn.h"

#include <algorithm>
#include <cmath>

#include "nn/segment_routing.h"
#include "tensor/graph.h"

namespace lory::nn {

ExpertChoiceFFN::ExpertChoiceFFN(const LoryConfig& c, const InitOptions& init)
    : StackedExperts(c, init, "ExpertChoiceFFN"),
      segment_length(c.segment_length),
      level(c.moe_type),
      capacity_factor(c.capacity_factor),
      gates(c.expert_choice_gates),
      first_segment(c.first_segment),
      routing(c.routing) {
  LORY_CHECK(level == MoEType::expert_choice_segment || level == MoEType::expert_choice_token,
             "ExpertChoiceFFN: moe_type must be expert_choice_segment or expert_choice_token, got ",
             moe_type_name(level));
}

int64_t ExpertChoiceFFN::capacity(int64_t units) const {
  const auto k = static_cast<int64_t>(std::llround(capacity_factor * static_cast<double>(units) /
                                                   static_cast<double>(num_experts)));
  return std::clamp<int64_t>(k, 1, units);
}

Tensor ExpertChoiceFFN::choose_and_run(const Tensor& units, const Tensor& scores) {
  const int64_t n = units.size(0), m = units.size(1), d = units.size(2), E = num_experts;
  const int64_t k = capacity(n);
  // I: each expert's top-k units by score, best first: [E, k] (no gradient).
  const Tensor by_expert = scores.transpose(0, 1).contiguous();  // S^T: [E, n]
  const Tensor chosen = topk_indices(by_expert.detach(), k);
  last_choice_ = chosen;
  // G_e = S[I_e, e], gathered from the flat S^T (row e starts at e n) so the router gets its gradient.
  const Tensor row_starts =
      arange(0, static_cast<double>(E * n), static_cast<double>(n), {DType::i64, scores.device(), false});
  Tensor G =
      index_select(by_expert.reshape({E * n}), 0, (chosen + row_starts.unsqueeze(1)).reshape({E * k})).reshape({E, k, 1});
  if (gates == ExpertChoiceGates::softmax_times_experts) G = G * static_cast<double>(E);  // E S ~ 1 (config.h)
  // Every expert's units, gathered: [E, k * m, d]; then one batched SwiGLU FFN.
  const Tensor picked = chosen.reshape({E * k});
  const Tensor xs = index_select(units.reshape({n, m * d}), 0, picked).reshape({E, k * m, d});
  const Tensor h = swiglu(matmul(xs, gate_experts.transpose(1, 2)), matmul(xs, up_experts.transpose(1, 2)));
  const Tensor ys = matmul(h, down_experts.transpose(1, 2)).reshape({E, k, m * d}) * G;  // [E, k, m d]
  // o = Σ_e G_e Y_e, scattered back to the units; unpicked units stay 0.
  const Tensor zero = zeros({n, m * d}, {ys.dtype(), ys.device(), false});
  return index_add(zero, 0, picked, ys.reshape({E * k, m * d})).reshape({n, m, d});
}

Tensor ExpertChoiceFFN::forward(const Tensor& x) {
  LORY_CHECK(x.dim() == 3 && x.size(2) == router.weight.size(1), "ExpertChoiceFFN: x must be [B, L, ",
             router.weight.size(1), "], got ", x.describe());
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), E = num_experts;
  if (x.numel() == 0) return zeros_like(x);
  if (level == MoEType::expert_choice_token) {
    const Tensor scores = softmax(router.forward(x), -1);  // [B, L, E]
    last_scores_ = scores.detach();
    return choose_and_run(x.reshape({B * L, 1, d}), scores.reshape({B * L, E})).view({B, L, d});
  }
  // Segment level: scores by Lory's segment routing, units = whole segments
  // (the last one zero-padded; its padding is cut off the output).
  const int64_t T = segment_length, N = (L + T - 1) / T;
  const Tensor scores =
      causal_segment_routing(softmax(router.forward(segment_mean(x, T)), -1), first_segment, routing);  // [B, N, E]
  last_scores_ = scores.detach();
  const Tensor padded = N * T == L ? x : cat({x, zeros({B, N * T - L, d}, {x.dtype(), x.device(), false})}, 1);
  const Tensor y = choose_and_run(padded.reshape({B * N, T, d}), scores.reshape({B * N, E})).view({B, N * T, d});
  return N * T == L ? y : y.narrow(1, 0, L);
}

}  // namespace lory::nn
