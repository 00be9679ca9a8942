// softmax.cpp — softmax and log_softmax along one dim.
//
// The kernel works on rows of a [R, C] matrix, subtracting each row's max
// before exponentiating (so softmax(1000 + x) is as exact as softmax(x)) and
// accumulating in f32. Any dim is moved last for the kernel and back after.
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  profiler::OpScope timed(name);
  check_defined(x, name);
  NoGradGuard no_grad;
  const Tensor in = is_floating(x.dtype()) ? x : x.to(DType::f32);
  if (in.dim() == 0) {  // softmax of a single value is 1; log_softmax is 0
    return full({}, log ? 0.0 : 1.0, {in.dtype(), in.device(), false});
  }
  const int64_t d = normalize_dim(dim, in.dim(), name);
  const int64_t last = in.dim() - 1;
  const Tensor moved = in.transpose(d, last).contiguous();
  const int64_t cols = moved.size(-1), rows = cols ? moved.numel() / cols : 0;
  Tensor out = empty_on(moved.shape(), in.dtype(), in);
  if (out.numel() > 0) {
    Tensor out2d = out.view({rows, cols});
    kernels(in).softmax(moved.view({rows, cols}), out2d, log);
  }
  return out.transpose(d, last);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor out = softmax_forward(x, dim, false);
  if (!any_requires_grad({&x})) return out;
  SavedTensor sy(out);
  // dx = y * (g - sum(g * y)) along dim
  return record("SoftmaxBackward", {x}, out, [sy, dim](const Tensor& g) {
    const Tensor& y = sy.get("SoftmaxBackward");
    return std::vector<Tensor>{y * (g - sum(g * y, {dim}, true))};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  Tensor out = softmax_forward(x, dim, true);
  if (!any_requires_grad({&x})) return out;
  SavedTensor sy(out);
  // dx = g - softmax(x) * sum(g) along dim, with softmax(x) = exp(y)
  return record("LogSoftmaxBackward", {x}, out, [sy, dim](const Tensor& g) {
    const Tensor& y = sy.get("LogSoftmaxBackward");
    return std::vector<Tensor>{g - exp(y) * sum(g, {dim}, true)};
  });
}

}  // namespace lory
