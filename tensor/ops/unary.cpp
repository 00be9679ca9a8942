// unary.cpp — elementwise functions of one tensor, and tensor-with-scalar ops.
//
// Each backward is the derivative written with other ops; where the output is
// cheaper to reuse than the input (exp, tanh, sigmoid, sqrt) the op saves its
// output.
#include <cmath>

#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

// Transcendental functions of integer tensors compute in f32, as in PyTorch.
Tensor unary_forward(UnaryOp op, const Tensor& x, double scalar = 0.0, bool promote_int = true) {
  profiler::OpScope timed(op_name(op));
  check_defined(x, op_name(op));
  NoGradGuard no_grad;
  const Tensor in = (promote_int && !is_floating(x.dtype())) ? x.to(DType::f32) : x;
  Tensor out = empty_on(in.shape(), in.dtype(), in);
  if (out.numel() > 0) kernels(in).unary(op, in, out, scalar);
  return out;
}

// Records a Node whose gradient is g * dfdx, where dfdx(x, out) is computed in backward.
template <typename Deriv>
Tensor with_derivative(const char* node, const Tensor& x, Tensor out, Deriv dfdx) {
  if (!any_requires_grad({&x})) return out;
  SavedTensor sx(x), sout(out);
  return record(node, {x}, out, [sx, sout, node, dfdx](const Tensor& g) {
    return std::vector<Tensor>{g * dfdx(sx.get(node), sout.get(node))};
  });
}

}  // namespace

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::neg, x, 0.0, false);
  if (!any_requires_grad({&x})) return out;
  return record("NegBackward", {x}, out, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  return with_derivative("ExpBackward", x, unary_forward(UnaryOp::exp, x),
                         [](const Tensor&, const Tensor& y) { return y; });
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::log, x);
  if (!any_requires_grad({&x})) return out;
  SavedTensor sx(x);
  return record("LogBackward", {x}, out,
                [sx](const Tensor& g) { return std::vector<Tensor>{g / sx.get("LogBackward")}; });
}

Tensor sqrt(const Tensor& x) {  // d sqrt(x) = 1 / (2 sqrt(x))
  return with_derivative("SqrtBackward", x, unary_forward(UnaryOp::sqrt, x),
                         [](const Tensor&, const Tensor& y) { return pow(y, -1.0) * 0.5; });
}

Tensor rsqrt(const Tensor& x) {  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
  return with_derivative("RsqrtBackward", x, unary_forward(UnaryOp::rsqrt, x),
                         [](const Tensor&, const Tensor& y) { return -0.5 * y * y * y; });
}

Tensor tanh(const Tensor& x) {  // 1 - tanh^2
  return with_derivative("TanhBackward", x, unary_forward(UnaryOp::tanh, x),
                         [](const Tensor&, const Tensor& y) { return 1.0 - y * y; });
}

Tensor sigmoid(const Tensor& x) {  // s (1 - s)
  return with_derivative("SigmoidBackward", x, unary_forward(UnaryOp::sigmoid, x),
                         [](const Tensor&, const Tensor& y) { return y * (1.0 - y); });
}

Tensor silu(const Tensor& x) {  // d x s(x) = s + x s (1 - s) = s (1 + x (1 - s))
  return with_derivative("SiluBackward", x, unary_forward(UnaryOp::silu, x), [](const Tensor& x, const Tensor&) {
    const Tensor s = sigmoid(x);
    return s * (1.0 + x * (1.0 - s));
  });
}

Tensor abs(const Tensor& x) {  // sign(x), 0 at 0
  Tensor out = unary_forward(UnaryOp::abs, x, 0.0, false);
  if (!any_requires_grad({&x})) return out;
  SavedTensor sx(x);
  return record("AbsBackward", {x}, out, [sx](const Tensor& g) {
    const Tensor& x = sx.get("AbsBackward");
    const Tensor zero = constant_like(0.0, g);
    return std::vector<Tensor>{where(gt(x, zero), g, where(lt(x, zero), neg(g), zero))};
  });
}

Tensor pow(const Tensor& x, double exponent) {  // s x^(s-1)
  Tensor out = unary_forward(UnaryOp::pow_scalar, x, exponent);
  if (!any_requires_grad({&x})) return out;
  SavedTensor sx(x);
  return record("PowBackward", {x}, out, [sx, exponent](const Tensor& g) {
    return std::vector<Tensor>{g * (exponent * pow(sx.get("PowBackward"), exponent - 1.0))};
  });
}

Tensor add(const Tensor& x, double s) {
  Tensor out = unary_forward(UnaryOp::add_scalar, x, s, false);
  if (!any_requires_grad({&x})) return out;
  return record("AddScalarBackward", {x}, out, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& x, double s) {
  Tensor out = unary_forward(UnaryOp::mul_scalar, x, s, false);
  if (!any_requires_grad({&x})) return out;
  return record("MulScalarBackward", {x}, out, [s](const Tensor& g) { return std::vector<Tensor>{g * s}; });
}

Tensor sub(const Tensor& x, double s) { return add(x, -s); }
// True division: integers become f32 (as in PyTorch), and x / s is computed
// as such, not as x * (1/s), whose rounding makes 49 / 49.0 = 0.99999999999999989.
Tensor div(const Tensor& x, double s) {
  Tensor out = unary_forward(UnaryOp::div_scalar, x, s);
  if (!any_requires_grad({&x})) return out;
  return record("DivScalarBackward", {x}, out, [s](const Tensor& g) { return std::vector<Tensor>{g / s}; });
}
Tensor rsub(const Tensor& x, double s) { return add(neg(x), s); }

}  // namespace lory
