// adamw.cpp — see adamw.h. The update is one pass over the flat buffers on
// the CPU; the fused CUDA kernel is part of the CUDA kernel library.
#include "train/adamw.h"

#include <cmath>

#include "autograd/node.h"
#include "tensor/ops.h"

namespace lory::train {

namespace {
constexpr int64_t kChunk = 1 << 16;  // elements per partial sum of the norm

void check_cpu(const FlatParameters& flat, const char* what) {
  LORY_CHECK(flat.master.device().is_cpu(), what, ": the parameters are on ", flat.master.describe(),
             "; the trainer's optimizer runs on the CPU only so far (the fused CUDA AdamW comes with the CUDA ",
             "kernel library)");
}
}  // namespace

bool gets_weight_decay(const FlatSlot& slot, bool decay_embeddings) {
  if (slot.shape.size() < 2) return false;
  const bool embedding = slot.name.find("embed_tokens") != std::string::npos || slot.name.rfind("lm_head", 0) == 0;
  return !embedding || decay_embeddings;
}

AdamW::AdamW(const FlatParameters& flat, AdamWOptions o) : options(o) {
  check_cpu(flat, "AdamW");
  exp_avg = zeros({flat.size()});
  exp_avg_sq = zeros({flat.size()});
  steps.assign(flat.slots().size(), 0);
  for (const FlatSlot& s : flat.slots()) decay.push_back(gets_weight_decay(s, o.decay_embeddings));
}

double AdamW::grad_norm(const FlatParameters& flat) {
  check_cpu(flat, "grad_norm");
  const float* g = flat.master_grads.data<float>();
  const int64_t n = flat.size(), chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0;
  for (double s : partial) total += s;  // fixed order: deterministic
  return std::sqrt(total);
}

namespace {
// The first slot whose elements of `buffer` are not all finite. One pass,
// parallel over slots' chunks, and cheap next to a training step.
std::string first_non_finite(const FlatParameters& flat, const Tensor& buffer) {
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
  check_cpu(flat, "first_non_finite_grad");
  return first_non_finite(flat, flat.master_grads);
}

std::string AdamW::first_non_finite_param(const FlatParameters& flat) {
  check_cpu(flat, "first_non_finite_param");
  return first_non_finite(flat, flat.master);
}

StepReport AdamW::step(FlatParameters& flat, double lr, double max_norm) {
  StepReport report;
  step_with_norm(flat, lr, max_norm, grad_norm(flat), report);
  return report;
}

void AdamW::step_with_norm(FlatParameters& flat, double lr, double max_norm, double norm, StepReport& report) {
  check_cpu(flat, "AdamW::step");
  LORY_CHECK(static_cast<size_t>(exp_avg.numel()) == static_cast<size_t>(flat.size()) &&
                 steps.size() == flat.slots().size(),
             "AdamW::step: the optimizer was built for another set of parameters (", exp_avg.numel(), " vs ",
             flat.size(), " elements)");
  report.grad_norm = norm;
  report.clip_scale = (max_norm > 0 && norm > max_norm) ? max_norm / (norm + 1e-6) : 1.0;
  const float clip = static_cast<float>(report.clip_scale);
  float* p = flat.master.data<float>();
  const float* g = flat.master_grads.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  const float b1 = static_cast<float>(options.beta1), b2 = static_cast<float>(options.beta2);
  const float eps = static_cast<float>(options.eps);
  for (size_t k = 0; k < flat.slots().size(); ++k) {
    const FlatSlot& s = flat.slots()[k];
    const int64_t t = ++steps[k];
    const double bc1 = 1.0 - std::pow(options.beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(options.beta2, static_cast<double>(t));
    const float step_size = static_cast<float>(lr / bc1);
    const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    const float keep = decay[k] ? static_cast<float>(1.0 - lr * options.weight_decay) : 1.0f;
    const int64_t begin = s.offset, end = s.offset + s.numel;
#pragma omp parallel for schedule(static) if (s.numel > 32768)
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i] * clip;
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      p[i] = p[i] * keep - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
  flat.master.bump_version();
  flat.publish_master();
}

}  // namespace lory::train
