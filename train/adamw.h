// adamw.h — AdamW (Loshchilov & Hutter 2019) over FlatParameters, with
// global-norm gradient clipping: the optimizer of paper §4.1.
//
// For each parameter p with gradient g (f32 master weights), at its own step
// count t (1 at its first update), exactly PyTorch's torch.optim.AdamW:
//   g  <- g * clip                     clip = min(1, max_norm / ||G||), G all gradients
//   m  <- b1 m + (1 - b1) g            first moment
//   v  <- b2 v + (1 - b2) g^2          second moment
//   p  <- p (1 - lr wd)                decoupled weight decay (matrices only by default)
//   p  <- p - lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)
// Each parameter keeps its own t because the router of a Lory layer is born
// at the dense-to-Lory switch, long after the other parameters' first step.
//
// The moments are flat f32 buffers laid out like FlatParameters, so a ZeRO
// shard is a contiguous range of all of them: an AdamW may own just a range
// [begin, end) of the flat space (train/zero_optimizer.h), its moments
// [end - begin], and update only that range of the weights.
#pragma once

#include <string>
#include <vector>

#include "train/flat_parameters.h"

namespace lory::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_embeddings = false;
  double router_lr_scale = 1.0;  // the LR of Lory routers (nn::is_router_parameter) as a multiple of lr
};

// Which parameters get weight decay: matrices and expert stacks (dim >= 2),
// not norms; embeddings only when asked.
bool gets_weight_decay(const FlatSlot& slot, bool decay_embeddings);

// A contiguous range of the flat buffers, in elements.
struct FlatRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct StepReport {
  double grad_norm = 0;  // before clipping
  double clip_scale = 1;
};

class AdamW {
 public:
  AdamW(const FlatParameters& flat, AdamWOptions options);  // all of flat
  AdamW(const FlatParameters& flat, AdamWOptions options, FlatRange range);

  // The global L2 norm of flat.master_grads, accumulated in f64 in a fixed
  // order (the same bits on every run on a device, whatever the thread count).
  static double grad_norm(const FlatParameters& flat);
  // The first parameter whose gradient holds a NaN or Inf ("" if none).
  static std::string first_non_finite_grad(const FlatParameters& flat);
  // The first parameter whose master weights hold a NaN or Inf ("" if none).
  static std::string first_non_finite_param(const FlatParameters& flat);

  // One update of every parameter with learning rate lr; gradients are
  // clipped to max_norm first (0 = no clipping). The caller checks the
  // returned norm for NaN/Inf before calling (a bad gradient must not reach
  // the weights).
  StepReport step(FlatParameters& flat, double lr, double max_norm);
  void step_with_norm(FlatParameters& flat, double lr, double max_norm, double norm, StepReport& report);
  // The update itself, of this optimizer's range: `master` and `grads` are
  // f32 [range.size()]; `publish` (bf16 compute) the compute-dtype weights
  // of the range, written in the same pass; gradients are scaled by
  // clip_scale. Every parameter's step count advances, in range or not, so
  // the ranks' counts stay equal.
  void update(const FlatParameters& flat, Tensor& master, const Tensor& grads, Tensor* publish, double lr,
              double clip_scale);
  // The clip factor for a gradient norm: min(1, max_norm / norm) (1 when max_norm is 0).
  static double clip_scale(double norm, double max_norm);

  FlatRange range;             // of flat's buffers
  Tensor exp_avg, exp_avg_sq;  // f32 [range.size()]
  std::vector<int64_t> steps;  // per slot
  std::vector<bool> decay;     // per slot
  std::vector<double> lr_scale;  // per slot: 1, or router_lr_scale for routers
  AdamWOptions options;
};

}  // namespace lory::train
