// swiglu.cpp — SwiGLU's gate, fused: out = silu(gate) * up.
//
// The FFN of a LLaMA block is down(silu(gate(x)) * up(x)) (Shazeer 2020);
// this is its elementwise middle, over [tokens, F]. Fused, it reads gate and
// up once and writes out once, where silu then mul would write and re-read a
// full [tokens, F] intermediate (and round it to bf16 in between). Rows are
// Eigen arrays, so the logistic function is Eigen's vectorised one, as in
// silu (unary.cpp).
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"

namespace lory {

using namespace cpu;

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  LORY_CHECK(out.dim() == 2 && out.is_contiguous(), "swiglu: out must be contiguous [R, F], got ", out.describe());
  for (const Tensor* in : {&gate, &up})
    LORY_CHECK(in->shape() == out.shape() && in->dtype() == out.dtype() && in->stride(1) == 1,
               "swiglu: gate and up must be [R, F] rows with unit inner stride, like out ", out.describe(),
               ": gate is ", gate.describe(), ", up is ", up.describe());
  const int64_t R = out.size(0), F = out.size(1);
  if (R == 0 || F == 0) return;
  dispatch_floating(out, "swiglu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    using Row = Eigen::Array<T, Eigen::Dynamic, 1>;
    const T* gp = ptr<T>(gate);
    const T* up_ = ptr<T>(up);
    T* op = ptr<T>(out);
    const int64_t gs = gate.stride(0), us = up.stride(0);
    parallel_for(0, R, grain_for(F), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const auto g = Eigen::Map<const Row>(gp + r * gs, F).template cast<C>();  // lazy: no copy
        const auto u = Eigen::Map<const Row>(up_ + r * us, F).template cast<C>();
        Eigen::Map<Row>(op + r * F, F) = (g * g.logistic() * u).template cast<T>();
      }
    });
  });
}

}  // namespace lory
