// swiglu_ffn.h — the dense LLaMA FFN: down(silu(gate(x)) * up(x)).
#pragma once

#include "nn/linear.h"

namespace lory::nn {

class SwiGLU : public Module {
 public:
  SwiGLU(int64_t hidden, int64_t intermediate, const InitOptions& init)
      : gate_proj(hidden, intermediate, init),
        up_proj(hidden, intermediate, init),
        down_proj(intermediate, hidden, init) {
    register_module("gate_proj", gate_proj);
    register_module("up_proj", up_proj);
    register_module("down_proj", down_proj);
  }
  // x: [..., d] -> [..., d]
  Tensor forward(const Tensor& x) const { return down_proj.forward(swiglu(gate_proj.forward(x), up_proj.forward(x))); }
  Linear gate_proj, up_proj, down_proj;
};

}  // namespace lory::nn
