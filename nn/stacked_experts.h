// stacked_experts.h — what every MoE layer here holds: E SwiGLU experts,
// their weights stacked along a leading expert dimension, and a router.
//
// The Lory layer (lory_ffn.h) merges the experts in parameter space; the
// Expert Choice baselines (expert_choice_ffn.h) run the ones that chose a
// unit. Both hold the same tensors under the same names, so one upcycling
// (nn/upcycle) fills either from a dense FFN, and a checkpoint's expert
// weights read the same way whichever layer wrote them.
//
// Parameters (HF-style names under the layer's "mlp."):
//   experts.gate_proj.weight [E, f, d], experts.up_proj.weight [E, f, d],
//   experts.down_proj.weight [E, d, f], router.weight [E, d] (no bias).
// Experts start normal(0, init.std), the router normal(0, router_init_std):
// not 0, since with identical (upcycled) experts a zero router never gets a
// gradient.
#pragma once

#include "nn/config.h"
#include "nn/linear.h"

namespace lory::nn {

class StackedExperts : public Module {
 public:
  Tensor gate_experts, up_experts, down_experts;  // [E, f, d], [E, f, d], [E, d, f]
  Linear router;                                  // weight [E, d]
  int64_t num_experts;

 protected:
  // `layer` names the layer in the error for num_experts <= 0.
  StackedExperts(const LoryConfig& c, const InitOptions& init, const char* layer);
};

}  // namespace lory::nn
