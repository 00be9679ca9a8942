// upcycle_moments.h — what the optimizer state becomes at the dense-to-Lory
// switch (paper §4.1: the first 5% of steps train a dense model, then every
// FFN is duplicated into E experts and a router is added).
//
// The paper does not say. The choice matters more than it looks: right after
// the switch the experts are identical and routing is near uniform, so the
// gradient of expert i is
//     dW_i = sum_s e_{s,i} dW̄_s  ≈  (1/E) dW_dense    (the merge's backward, nn/merge_experts.h; e ≈ 1/E)
// Adam's update m / sqrt(v) is invariant to the gradient's scale only once
// the moments have seen the new scale. Copying the FFN's moments unchanged
// leaves a second moment E^2 too large: every expert then moves at about
// 1/E of the learning rate until v decays (by beta2 = 0.95 a step: ln(E^2) /
// -ln(beta2) = 81 steps at E = 8), most of a short run. Measured on the CPU
// main job: Lory 9% *worse* than dense with the unscaled copy; reset +12%
// and +4% on two seeds, inherit +8.5% and +4%, reset_all +7% (one seed):
// docs/results/upcycling.md.
//
// The modes, for every expert stack (routers always start at zero moments
// and step 0; every other parameter keeps its state, except under reset_all):
//   reset          fresh moments and step 0 for the experts too: bias
//                  correction restarts, so the first updates are full-size
//                  and the experts start moving apart at once.
//   reset_all      a fresh optimizer for every parameter (attention,
//                  embeddings and norms restart too).
//   inherit        the FFN's moments rescaled to the experts' gradient scale,
//                  m/E and v/E^2, and its step count: with uniform routing
//                  the first update moves the merged weights exactly as the
//                  dense step would (a test), i.e. an exact continuation
//                  (up to Adam's eps, which acts E times larger).
//   copy_unscaled  the FFN's moments as they are (the old default, kept to
//                  reproduce the finding above; do not use).
#pragma once

#include <cstdint>
#include <string>

#include "train/adamw.h"
#include "train/flat_parameters.h"

namespace lory::train {

enum class UpcycleMoments { reset, reset_all, inherit, copy_unscaled };

UpcycleMoments parse_upcycle_moments(const std::string& name, const std::string& where);
const char* upcycle_moments_name(UpcycleMoments mode);

// Fills the Lory optimizer `to` (built for `to_flat`, fresh: zero moments,
// step 0) from the dense optimizer `from` (over `from_flat`) according to
// `mode`. Parameters are matched by name (nn::upcycle_source); E experts.
void transfer_moments_at_upcycle(const FlatParameters& from_flat, const AdamW& from, const FlatParameters& to_flat,
                                 AdamW& to, int64_t num_experts, UpcycleMoments mode);
// The same when `to` owns only a range of the flat space (a ZeRO shard):
// the dense moments are given whole ([from_flat.size()], gathered from
// every rank: the dense model is E times smaller than the Lory one) with
// the dense steps, and only the part of each Lory moment inside to.range is
// written (one parameter's expanded moment at a time).
void transfer_moments_at_upcycle(const FlatParameters& from_flat, const Tensor& from_exp_avg,
                                 const Tensor& from_exp_avg_sq, const std::vector<int64_t>& from_steps,
                                 const FlatParameters& to_flat, AdamW& to, int64_t num_experts, UpcycleMoments mode);

}  // namespace lory::train
