// binary.cpp — elementwise ops of two tensors with NumPy broadcasting.
//
// Forward: broadcast both operands to the output shape as stride-0 views (no
// copy), promote to a common dtype, run one kernel. Backward: the gradient of
// an input that was broadcast is summed back to its shape with sum_to.
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  profiler::OpScope timed(name);
  check_same_device(a, b, name);
  const Shape shape = broadcast_operands(a, b, name);
  const DType dtype = promote_types(a.dtype(), b.dtype());
  NoGradGuard no_grad;
  const Tensor ab = a.to(dtype).expand(shape), bb = b.to(dtype).expand(shape);
  Tensor out = empty_on(shape, is_comparison(op) ? DType::boolean : dtype, a);
  if (out.numel() > 0) kernels(a).binary(op, ab, bb, out);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::add, a, b);
  if (!any_requires_grad({&a, &b})) return out;
  const Shape as = a.shape(), bs = b.shape();
  return record("AddBackward", {a, b}, out, [as, bs](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, as), sum_to(g, bs)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::sub, a, b);
  if (!any_requires_grad({&a, &b})) return out;
  const Shape as = a.shape(), bs = b.shape();
  return record("SubBackward", {a, b}, out, [as, bs](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, as), sum_to(neg(g), bs)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::mul, a, b);
  if (!any_requires_grad({&a, &b})) return out;
  SavedTensor sa(a), sb(b);
  return record("MulBackward", {a, b}, out, [sa, sb](const Tensor& g) {
    const Tensor& a = sa.get("MulBackward");
    const Tensor& b = sb.get("MulBackward");
    return std::vector<Tensor>{sum_to(g * b, a.shape()), sum_to(g * a, b.shape())};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::div, a, b);
  if (!any_requires_grad({&a, &b})) return out;
  SavedTensor sa(a), sb(b);
  return record("DivBackward", {a, b}, out, [sa, sb](const Tensor& g) {
    const Tensor& a = sa.get("DivBackward");
    const Tensor& b = sb.get("DivBackward");
    const Tensor ga = g / b;  // d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2
    return std::vector<Tensor>{sum_to(ga, a.shape()), sum_to(-(ga * a / b), b.shape())};
  });
}

namespace {
// maximum/minimum: the gradient goes to whichever operand was selected
// (to `a` on ties, so exactly one operand gets it).
Tensor select_binary(BinaryOp op, BinaryOp a_wins, const char* node, const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(op, a, b);
  if (!any_requires_grad({&a, &b})) return out;
  SavedTensor sa(a), sb(b);
  return record(node, {a, b}, out, [sa, sb, a_wins, node](const Tensor& g) {
    const Tensor& a = sa.get(node);
    const Tensor& b = sb.get(node);
    const Tensor mask = binary_forward(a_wins, a, b);
    const Tensor zero = constant_like(0.0, g);
    return std::vector<Tensor>{sum_to(where(mask, g, zero), a.shape()), sum_to(where(mask, zero, g), b.shape())};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return select_binary(BinaryOp::maximum, BinaryOp::ge, "MaximumBackward", a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return select_binary(BinaryOp::minimum, BinaryOp::le, "MinimumBackward", a, b);
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ge, a, b); }

}  // namespace lory
