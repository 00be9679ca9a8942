// lr_schedule.h — the learning rate at each step (paper §4.1): a linear
// warm-up from 0 to the peak over the first warm-up steps, then a decay to a
// floor at the last step.
//
//   step s (0-based, the s-th optimizer update), W warm-up steps, S total:
//   s <  W:  lr = peak * (s + 1) / W                          (never 0 at step 0)
//   s >= W:  p  = (s - W) / max(1, S - 1 - W)                  (0 at the first decay step, 1 at the last)
//            cosine:   lr = floor + (peak - floor) * (1 + cos(pi * p)) / 2
//            linear:   lr = peak - (peak - floor) * p
//            constant: lr = peak
#pragma once

#include <cstdint>
#include <string>

namespace lory::train {

enum class Decay { cosine, linear, constant };
Decay parse_decay(const std::string& name, const std::string& where = "decay");
const char* decay_name(Decay decay);

struct LrSchedule {
  double peak = 2e-4;
  double floor = 2e-5;  // 10% of the peak: LLaMA's floor (the Lory paper names none)
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  Decay decay = Decay::cosine;

  double at(int64_t step) const;
};

}  // namespace lory::train
