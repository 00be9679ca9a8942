// lr_schedule.cpp — warm-up then cosine/linear decay (see lr_schedule.h).
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/error.h"

namespace lory::train {

Decay parse_decay(const std::string& name, const std::string& where) {
  if (name == "cosine") return Decay::cosine;
  if (name == "linear") return Decay::linear;
  if (name == "constant") return Decay::constant;
  fail(where, ": unknown decay '", name, "' (allowed: cosine, linear, constant)");
}

const char* decay_name(Decay decay) {
  switch (decay) {
    case Decay::cosine: return "cosine";
    case Decay::linear: return "linear";
    case Decay::constant: return "constant";
  }
  return "?";
}

double LrSchedule::at(int64_t step) const {
  LORY_CHECK(step >= 0, "LrSchedule: negative step ", step);
  if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (decay == Decay::constant) return peak;
  const int64_t span = std::max<int64_t>(1, total_steps - 1 - warmup_steps);
  const double p = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
  if (decay == Decay::linear) return peak - (peak - floor) * p;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
}

}  // namespace lory::train
