// merge_experts.cpp — see merge_experts.h.
#include "nn/merge_experts.h"

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::nn {

Tensor merge_experts(const Tensor& weights, const Tensor& experts) {
  LORY_CHECK(weights.dim() == 2 && experts.dim() == 3 && weights.size(1) == experts.size(0),
             "merge_experts: expected weights [S, E] and experts [E, out, in]: weights is ", weights.describe(),
             ", experts is ", experts.describe());
  const int64_t S = weights.size(0), E = experts.size(0), out = experts.size(1), in = experts.size(2);
  return matmul(weights.to(experts.dtype()), experts.reshape({E, out * in})).view({S, out, in});
}

Tensor merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool recompute) {
  LORY_CHECK(x.dim() == 3 && weights.dim() == 2 && experts.dim() == 3 && x.size(0) == weights.size(0) &&
                 x.size(2) == experts.size(2),
             "merged_linear: expected x [S, T, in], weights [S, E], experts [E, out, in]: x is ", x.describe(),
             ", weights is ", weights.describe(), ", experts is ", experts.describe());
  if (!recompute) return bmm(x, merge_experts(weights, experts).transpose(1, 2));

  Tensor y;
  {
    NoGradGuard no_grad;
    y = bmm(x, merge_experts(weights, experts).transpose(1, 2));
  }
  if (!any_requires_grad({&x, &weights, &experts})) return y;
  SavedTensor sx(x), sw(weights), se(experts);
  return record("MergedLinearBackward", {x, weights, experts}, y, [sx, sw, se](const Tensor& dy) {
    const char* node = "MergedLinearBackward";
    const Tensor& x = sx.get(node);
    const Tensor& w = sw.get(node);
    const Tensor& W = se.get(node);
    const int64_t S = w.size(0), E = W.size(0), out = W.size(1), in = W.size(2);
    const Tensor merged = merge_experts(w, W);                         // recomputed: [S, out, in]
    const Tensor dx = bmm(dy, merged);                                 // [S, T, in]
    const Tensor dmerged = bmm(dy.transpose(1, 2), x.to(dy.dtype()));  // [S, out, in]
    const Tensor flat = dmerged.reshape({S, out * in});
    const Tensor dW = matmul(w.to(flat.dtype()).t(), flat).view({E, out, in});
    const Tensor dw = matmul(flat, W.reshape({E, out * in}).to(flat.dtype()).t());  // [S, E]
    return std::vector<Tensor>{dx, dw, dW};
  });
}

}  // namespace lory::nn
