// stacked_experts.cpp — the experts and router of an MoE layer (see stacked_experts.h).
#include "nn/stacked_experts.h"

namespace lory::nn {

namespace {
int64_t checked_experts(const LoryConfig& c, const char* layer) {
  LORY_CHECK(c.num_experts > 0, layer, ": num_experts must be > 0, got ", c.num_experts);
  return c.num_experts;
}
}  // namespace

StackedExperts::StackedExperts(const LoryConfig& c, const InitOptions& init, const char* layer)
    : gate_experts(normal_parameter({checked_experts(c, layer), c.intermediate_size, c.hidden_size}, init.std, init)),
      up_experts(normal_parameter({c.num_experts, c.intermediate_size, c.hidden_size}, init.std, init)),
      down_experts(normal_parameter({c.num_experts, c.hidden_size, c.intermediate_size}, init.std, init)),
      router(c.hidden_size, c.num_experts, InitOptions{c.router_init_std, init.dtype, init.device}),
      num_experts(c.num_experts) {
  register_parameter("experts.gate_proj.weight", gate_experts);
  register_parameter("experts.up_proj.weight", up_experts);
  register_parameter("experts.down_proj.weight", down_experts);
  register_module("router", router);
}

}  // namespace lory::nn
