// merged_linear.cpp — the op of Lory's fused expert merge.
//
// Trace: merged_linear (here) → Backend::merged_linear (tensor/cpu/merged_linear.cpp,
// cuda/merged_linear.cu); its backward → Backend::merged_linear (transposed,
// for dx) and Backend::merged_linear_backward_weights (for dW and de).
//
// Forward, per segment s of T tokens (paper eq. (2) applied per segment, eq. (3)):
//   W̄_s = Σ_i e_si W_i                 [out, in]
//   y_s = x_s W̄_s^T                    [T, out]
// Backward, with dy_s the gradient of y_s and G_s = dy_s^T x_s [out, in]
// (what dW̄_s would be):
//   dx_s   = dy_s W̄_s                  the same fused kernel, transposed
//   dW_i   = Σ_s e_si G_s              (the chain rule through the merge)
//   de_si  = <G_s, W_i>                 (Frobenius product)
// Neither W̄_s nor G_s is stored: the kernels form a tile, use it, drop it.
// So the op saves only its inputs, and its peak memory is that of a dense
// linear plus the experts' own gradient.
#include "tensor/kernel_args.h"
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts) {
  const char* op = "merged_linear";
  profiler::OpScope timed(op);
  check_defined(x, op, "x");
  check_defined(weights, op, "weights");
  check_defined(experts, op, "experts");
  LORY_CHECK(x.device() == weights.device() && x.device() == experts.device(), op,
             ": operands are on different devices: x is ", x.describe(), ", weights is ", weights.describe(),
             ", experts is ", experts.describe());
  LORY_CHECK(x.dim() == 3 && weights.dim() == 2 && experts.dim() == 3 && x.size(0) == weights.size(0) &&
                 x.size(2) == experts.size(2) && weights.size(1) == experts.size(0),
             op, ": expected x [S, T, in], weights [S, E], experts [E, out, in]: x is ", x.describe(),
             ", weights is ", weights.describe(), ", experts is ", experts.describe());
  check_floating(experts, op);
  // One compute dtype: the experts' (the routing weights are cast to it, as
  // the GEMM formulation does; x is cast like any linear's input).
  const DType dtype = experts.dtype();
  const int64_t S = x.size(0), T = x.size(1), out_dim = experts.size(1);
  Tensor y;
  {
    NoGradGuard no_grad;
    const Tensor xc = x.to(dtype).contiguous(), wc = weights.to(dtype).contiguous(), ec = experts.contiguous();
    y = empty_on({S, T, out_dim}, dtype, x);
    if (y.numel() > 0) kernels(x).merged_linear(xc, wc, ec, /*transposed=*/false, y);
  }
  if (!any_requires_grad({&x, &weights, &experts})) return y;
  SavedTensor sx(x), sw(weights), se(experts);
  const DType x_dtype = x.dtype(), w_dtype = weights.dtype();
  return record("MergedLinearBackward", {x, weights, experts}, y, [sx, sw, se, dtype, x_dtype, w_dtype](const Tensor& g) {
    const char* node = "MergedLinearBackward";
    const Tensor x = sx.get(node).to(dtype).contiguous();
    const Tensor w = sw.get(node).to(dtype).contiguous();
    const Tensor W = se.get(node).contiguous();
    const Tensor dy = g.to(dtype).contiguous();
    Tensor dx = empty_on(x.shape(), dtype, x), dW = empty_on(W.shape(), dtype, W), dw = empty_on(w.shape(), dtype, w);
    if (dx.numel() > 0) kernels(dy).merged_linear(dy, w, W, /*transposed=*/true, dx);
    if (dy.numel() > 0 && dW.numel() > 0) {
      kernels(dy).merged_linear_backward_weights(dy, x, w, W, dW, dw);
    } else {  // no tokens or empty experts: nothing flows to the experts or the weights
      dW.fill_(0.0);
      dw.fill_(0.0);
    }
    return std::vector<Tensor>{dx.to(x_dtype), dw.to(w_dtype), dW};
  });
}

}  // namespace lory
