// where.cpp — choose elementwise between two tensors by a boolean mask.
//
// Trace: kernels tensor/cpu/where.cpp and cuda/where.cu (Backend::where), the
// contract check_where_args in tensor/kernel_args.h; the backward is where
// again, with zeros on the other side, summed back to each input's shape.
#include "tensor/kernel_args.h"
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  profiler::OpScope timed("where");
  check_same_device(a, b, "where");
  check_same_device(cond, a, "where");
  check_where_condition(cond);
  const Shape ab = broadcast_operands(a, b, "where");
  LORY_CHECK(shapes_broadcast(cond.shape(), ab), "where: condition ", cond.describe(),
             " cannot be broadcast with the operands: a is ", a.describe(), ", b is ", b.describe());
  const Shape shape = broadcast_shapes(cond.shape(), ab, "where");
  const DType dtype = promote_types(a.dtype(), b.dtype());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = empty_on(shape, dtype, a);
    if (out.numel() > 0)
      kernels(a).where(cond.expand(shape), a.to(dtype).expand(shape), b.to(dtype).expand(shape), out);
  }
  if (!any_requires_grad({&a, &b})) return out;
  SavedTensor sc(cond);
  const Shape as = a.shape(), bs = b.shape();
  return record("WhereBackward", {a, b}, out, [sc, as, bs](const Tensor& g) {
    const Tensor& c = sc.get("WhereBackward");
    const Tensor zero = constant_like(0.0, g);
    return std::vector<Tensor>{sum_to(where(c, g, zero), as), sum_to(where(c, zero, g), bs)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  profiler::OpScope timed("masked_fill");
  check_defined(x, "masked_fill");
  check_defined(mask, "masked_fill", "mask");
  LORY_CHECK(broadcasts_to(mask.shape(), x.shape()), "masked_fill: mask ", mask.describe(),
             " does not broadcast to input ", x.describe());
  return where(mask, constant_like(value, x), x);
}

}  // namespace lory
