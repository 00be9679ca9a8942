// adamw.cpp — see adamw.h. The update and the norm are backend kernels
// (Backend::adamw_step and Backend::sum_squares: tensor/cpu/optimizer.cpp,
// cuda/optimizer.cu), so the same code steps a model on the CPU or a GPU; this
// file computes the per-parameter numbers (bias corrections, decay) they take.
#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

namespace lory::train {

bool gets_weight_decay(const FlatSlot& slot, bool decay_embeddings) {
  if (slot.shape.size() < 2) return false;
  const bool embedding = slot.name.find("embed_tokens") != std::string::npos || slot.name.rfind("lm_head", 0) == 0;
  return !embedding || decay_embeddings;
}

AdamW::AdamW(const FlatParameters& flat, AdamWOptions o) : AdamW(flat, o, FlatRange{0, flat.size()}) {}

AdamW::AdamW(const FlatParameters& flat, AdamWOptions o, FlatRange r) : range(r), options(o) {
  LORY_CHECK(r.begin >= 0 && r.begin <= r.end && r.end <= flat.size(), "AdamW: range [", r.begin, ", ", r.end,
             ") is not inside the ", flat.size(), " flat elements");
  const TensorOptions f32{DType::f32, flat.params.device(), false};
  exp_avg = zeros({r.size()}, f32);
  exp_avg_sq = zeros({r.size()}, f32);
  steps.assign(flat.slots().size(), 0);
  for (const FlatSlot& s : flat.slots()) {
    decay.push_back(gets_weight_decay(s, o.decay_embeddings));
    lr_scale.push_back(nn::is_router_parameter(s.name) ? o.router_lr_scale : 1.0);
  }
}

double AdamW::grad_norm(const FlatParameters& flat) {
  Tensor total = empty({1}, TensorOptions{DType::f64, flat.master_grads.device(), false});
  backend_for(flat.master_grads.device()).sum_squares(flat.master_grads, total);
  return std::sqrt(total.to_vector<double>()[0]);
}

namespace {

// The first slot whose elements of `buffer` are not all finite (on the CPU:
// this runs only to name the culprit after a NaN/Inf was seen).
std::string first_non_finite(const FlatParameters& flat, const Tensor& device_buffer) {
  const Tensor buffer = device_buffer.device().is_cpu() ? device_buffer : device_buffer.to(cpu_device());
  const float* x = buffer.data<float>();
  const int64_t n = flat.size();
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
  if (!bad) return "";
  for (const FlatSlot& s : flat.slots())
    for (int64_t i = 0; i < s.numel; ++i)
      if (!std::isfinite(x[s.offset + i])) return s.name;
  return "";
}

}  // namespace

std::string AdamW::first_non_finite_grad(const FlatParameters& flat) {
  return first_non_finite(flat, flat.master_grads);
}

std::string AdamW::first_non_finite_param(const FlatParameters& flat) {
  return first_non_finite(flat, flat.master);
}

StepReport AdamW::step(FlatParameters& flat, double lr, double max_norm) {
  StepReport report;
  step_with_norm(flat, lr, max_norm, grad_norm(flat), report);
  return report;
}

double AdamW::clip_scale(double norm, double max_norm) {
  return (max_norm > 0 && norm > max_norm) ? max_norm / (norm + 1e-6) : 1.0;
}

void AdamW::step_with_norm(FlatParameters& flat, double lr, double max_norm, double norm, StepReport& report) {
  LORY_CHECK(range.begin == 0 && range.end == flat.size(), "AdamW::step: this optimizer owns [", range.begin, ", ",
             range.end, ") of the ", flat.size(), " flat elements; a shard is stepped with update()");
  report.grad_norm = norm;
  report.clip_scale = clip_scale(norm, max_norm);
  // With a bf16 model the update also writes the bf16 copy (publish_master), in the same pass.
  Tensor* publish = flat.has_separate_master() ? &flat.params : nullptr;
  update(flat, flat.master, flat.master_grads, publish, lr, report.clip_scale);
}

void AdamW::update(const FlatParameters& flat, Tensor& master, const Tensor& grads, Tensor* publish, double lr,
                   double clip) {
  LORY_CHECK(steps.size() == flat.slots().size() && master.numel() == range.size() && grads.numel() == range.size(),
             "AdamW::update: the optimizer was built for other parameters (", steps.size(), " slots and ",
             range.size(), " elements; got ", flat.slots().size(), " slots, master ", master.describe(), ", grads ",
             grads.describe(), ")");
  std::vector<Backend::AdamWSlot> slots;
  slots.reserve(flat.slots().size());
  for (size_t k = 0; k < flat.slots().size(); ++k) {
    const FlatSlot& s = flat.slots()[k];
    const int64_t t = ++steps[k];
    // The part of the parameter inside this optimizer's range, relative to it.
    const int64_t lo = std::max(s.offset, range.begin), hi = std::min(s.offset + s.numel, range.end);
    if (lo >= hi) continue;
    const double slot_lr = lr * lr_scale[k];
    const double bc1 = 1.0 - std::pow(options.beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(options.beta2, static_cast<double>(t));
    slots.push_back({lo - range.begin, hi - lo, slot_lr / bc1, 1.0 / std::sqrt(bc2),
                     decay[k] ? 1.0 - slot_lr * options.weight_decay : 1.0});
  }
  const Backend::AdamWHyper hyper{options.beta1, options.beta2, options.eps, clip, 0};
  backend_for(master.device()).adamw_step(master, grads, exp_avg, exp_avg_sq, publish, slots, hyper);
}

}  // namespace lory::train
