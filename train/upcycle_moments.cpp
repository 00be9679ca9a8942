// upcycle_moments.cpp — see upcycle_moments.h.
#include "train/upcycle_moments.h"

#include <algorithm>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "tensor/ops.h"

namespace lory::train {

UpcycleMoments parse_upcycle_moments(const std::string& name, const std::string& where) {
  if (name == "reset") return UpcycleMoments::reset;
  if (name == "reset_all") return UpcycleMoments::reset_all;
  if (name == "inherit") return UpcycleMoments::inherit;
  if (name == "copy_unscaled") return UpcycleMoments::copy_unscaled;
  fail(where, ": unknown upcycle_moments '", name, "' (allowed: reset, reset_all, inherit, copy_unscaled)");
}

const char* upcycle_moments_name(UpcycleMoments mode) {
  switch (mode) {
    case UpcycleMoments::reset: return "reset";
    case UpcycleMoments::reset_all: return "reset_all";
    case UpcycleMoments::inherit: return "inherit";
    case UpcycleMoments::copy_unscaled: return "copy_unscaled";
  }
  return "?";
}

void transfer_moments_at_upcycle(const FlatParameters& from_flat, const AdamW& from, const FlatParameters& to_flat,
                                 AdamW& to, int64_t E, UpcycleMoments mode) {
  LORY_CHECK(from.range.begin == 0 && from.range.end == from_flat.size(),
             "transfer_moments_at_upcycle: the dense optimizer holds a shard; pass its gathered moments");
  transfer_moments_at_upcycle(from_flat, from.exp_avg, from.exp_avg_sq, from.steps, to_flat, to, E, mode);
}

void transfer_moments_at_upcycle(const FlatParameters& from_flat, const Tensor& from_exp_avg,
                                 const Tensor& from_exp_avg_sq, const std::vector<int64_t>& from_steps,
                                 const FlatParameters& to_flat, AdamW& to, int64_t E, UpcycleMoments mode) {
  NoGradGuard no_grad;
  LORY_CHECK(E >= 1, "transfer_moments_at_upcycle: num_experts must be >= 1, got ", E);
  if (mode == UpcycleMoments::reset_all) return;  // `to` is fresh already
  // Expert gradients are ~1/E of the FFN's (upcycle_moments.h): scale the
  // first moment by 1/E and the second by 1/E^2 under `inherit`.
  const double e = static_cast<double>(E);
  const double m_scale = mode == UpcycleMoments::inherit ? 1.0 / e : 1.0;
  const double v_scale = mode == UpcycleMoments::inherit ? 1.0 / (e * e) : 1.0;
  for (size_t j = 0; j < to_flat.slots().size(); ++j) {
    bool expert_stack = false;
    const std::string source = nn::upcycle_source(to_flat.slots()[j].name, &expert_stack);
    if (source.empty()) continue;  // a router: zero moments, step 0
    if (expert_stack && mode == UpcycleMoments::reset) continue;
    const FlatSlot* src = from_flat.find(source);
    LORY_CHECK(src, "upcycle: no dense parameter '", source, "' for '", to_flat.slots()[j].name, "'");
    const size_t i = static_cast<size_t>(src - from_flat.slots().data());
    // The part of parameter j inside the range `to` owns.
    const FlatSlot& slot = to_flat.slots()[j];
    const int64_t lo = std::max(slot.offset, to.range.begin), hi = std::min(slot.offset + slot.numel, to.range.end);
    if (lo < hi)
      for (auto [dst, moments, scale] : {std::tuple{&to.exp_avg, &from_exp_avg, m_scale},
                                         std::tuple{&to.exp_avg_sq, &from_exp_avg_sq, v_scale}}) {
        Tensor moment = from_flat.view(*moments, i);
        if (expert_stack) {
          moment = nn::repeat_into_experts(moment, E);
          if (scale != 1.0) moment = mul(moment, scale);
        }
        dst->narrow(0, lo - to.range.begin, hi - lo).copy_(moment.reshape({slot.numel}).narrow(0, lo - slot.offset, hi - lo));
      }
    to.steps[j] = from_steps[i];
  }
}

}  // namespace lory::train
