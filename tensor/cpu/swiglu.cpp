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
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_swiglu_args(gate, up, out);
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

// The backward, fused the same way: with s = sigmoid(gate),
//   dgate = dy * up * s * (1 + gate (1 - s)),  dup = dy * gate * s
// (silu'(x) = s (1 + x (1 - s))), in f32 for bf16/f16, each rounded once.
void CpuBackend::swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) {
  const char* kernel = "swiglu_backward";
  check_swiglu_backward_args(dy, gate, up, dgate, dup);
  const int64_t R = dy.size(0), F = dy.size(1);
  if (R == 0 || F == 0) return;
  dispatch_floating(dy, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    using Row = Eigen::Array<T, Eigen::Dynamic, 1>;
    const T* gp = ptr<T>(gate);
    const T* up_ = ptr<T>(up);
    const T* dp = ptr<T>(dy);
    T* dgp = ptr<T>(dgate);
    T* dup_ = ptr<T>(dup);
    const int64_t gs = gate.stride(0), us = up.stride(0);
    parallel_for(0, R, grain_for(2 * F), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const auto g = Eigen::Map<const Row>(gp + r * gs, F).template cast<C>();
        const auto u = Eigen::Map<const Row>(up_ + r * us, F).template cast<C>();
        const auto d = Eigen::Map<const Row>(dp + r * F, F).template cast<C>();
        const auto s = g.logistic();
        Eigen::Map<Row>(dgp + r * F, F) = (d * u * s * (C(1) + g * (C(1) - s))).template cast<T>();
        Eigen::Map<Row>(dup_ + r * F, F) = (d * g * s).template cast<T>();
      }
    });
  });
}

}  // namespace lory
