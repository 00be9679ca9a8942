// reduce.cpp — sum, mean, amax/amin over any set of dims, and sum_to.
//
// Every reduction becomes one kernel call on a 2-d view: the kept dims are
// permuted to the front and the reduced dims to the back, so the input reads
// as [O, R] (O = product of kept sizes, R = product of reduced sizes) and the
// kernel reduces each of the O rows. The permute is free; the [O, R] reshape
// is free when the reduced dims are already innermost, else one copy.
#include <algorithm>

#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

struct ReducePlan {
  std::vector<bool> reduced;  // per input dim
  Shape out_shape;            // without keepdim
  Shape keep_shape;           // with keepdim (reduced dims as 1)
  int64_t rows = 1, cols = 1;
};

ReducePlan plan_reduction(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  ReducePlan p;
  const int64_t n = x.dim();
  p.reduced.assign(n, dims.empty());
  for (int64_t d : dims) {
    const int64_t nd = normalize_dim(d, n, op);
    if (n == 0) continue;
    LORY_CHECK(!p.reduced[nd], op, ": dim ", d, " appears twice in the dims list");
    p.reduced[nd] = true;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (p.reduced[i]) {
      p.cols *= x.shape()[i];
      p.keep_shape.push_back(1);
    } else {
      p.rows *= x.shape()[i];
      p.out_shape.push_back(x.shape()[i]);
      p.keep_shape.push_back(x.shape()[i]);
    }
  }
  return p;
}

// Runs the kernel; returns the result shaped as keepdim requests.
Tensor reduce_forward(ReduceOp op, const Tensor& x, const ReducePlan& p, bool keepdim, DType out_dtype) {
  NoGradGuard no_grad;
  std::vector<int64_t> order;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!p.reduced[i]) order.push_back(i);
  for (int64_t i = 0; i < x.dim(); ++i)
    if (p.reduced[i]) order.push_back(i);
  const Tensor in = x.to(out_dtype).permute(order).reshape({p.rows, p.cols});
  Tensor out = empty_on({p.rows}, out_dtype, x);
  if (p.rows > 0) {
    if (p.cols == 0) {
      LORY_CHECK(op == ReduceOp::sum, op_name(op), ": cannot reduce over an empty dim of input ", x.describe());
      kernels(x).fill(out, 0.0);
    } else {
      kernels(x).reduce(op, in, out);
    }
  }
  return out.view(keepdim ? p.keep_shape : p.out_shape);
}

// Sums of bools and bytes count, so they widen to i64.
DType sum_dtype(DType t) { return (t == DType::boolean || t == DType::u8) ? DType::i64 : t; }

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  profiler::OpScope timed("sum");
  check_defined(x, "sum");
  const ReducePlan p = plan_reduction(x, dims, "sum");
  Tensor out = reduce_forward(ReduceOp::sum, x, p, keepdim, sum_dtype(x.dtype()));
  if (!any_requires_grad({&x})) return out;
  const Shape in_shape = x.shape(), keep_shape = p.keep_shape;
  return record("SumBackward", {x}, out, [in_shape, keep_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep_shape).expand(in_shape)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  profiler::OpScope timed("mean");
  check_defined(x, "mean");
  const ReducePlan p = plan_reduction(x, dims, "mean");
  LORY_CHECK(p.cols > 0, "mean: reducing over zero elements of input ", x.describe());
  const Tensor in = is_floating(x.dtype()) ? x : x.to(DType::f32);
  return div(sum(in, dims, keepdim), static_cast<double>(p.cols));
}

namespace {
// amax/amin: the gradient is shared equally among the elements equal to the
// extreme (PyTorch's amax convention), so ties stay differentiable.
Tensor extreme(ReduceOp op, const char* name, const char* node, const Tensor& x, const std::vector<int64_t>& dims,
               bool keepdim) {
  profiler::OpScope timed(name);
  check_defined(x, name);
  const ReducePlan p = plan_reduction(x, dims, name);
  Tensor out = reduce_forward(op, x, p, keepdim, x.dtype());
  if (!any_requires_grad({&x})) return out;
  SavedTensor sx(x), sout(out);
  const Shape keep_shape = p.keep_shape;
  std::vector<int64_t> reduced_dims;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (p.reduced[i]) reduced_dims.push_back(i);
  return record(node, {x}, out, [sx, sout, keep_shape, reduced_dims, node](const Tensor& g) {
    const Tensor& x = sx.get(node);
    const Tensor hit = eq(x, sout.get(node).reshape(keep_shape));
    const Tensor ones = hit.to(g.dtype());
    const Tensor count = sum(ones, reduced_dims, true);
    return std::vector<Tensor>{ones * (g.reshape(keep_shape) / count)};
  });
}
}  // namespace

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme(ReduceOp::max, "amax", "AmaxBackward", x, dims, keepdim);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme(ReduceOp::min, "amin", "AminBackward", x, dims, keepdim);
}
Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return amax(x, {dim}, keepdim); }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_defined(x, "sum_to");
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  LORY_CHECK(lead >= 0, "sum_to: cannot sum ", x.describe(), " to more dims ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
      continue;
    }
    const int64_t want = shape[i - lead];
    LORY_CHECK(want == x.shape()[i] || want == 1, "sum_to: cannot sum ", x.describe(), " to ", shape_str(shape));
    if (want == 1 && x.shape()[i] != 1) dims.push_back(i);
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace lory
