// merge_experts.cpp — see merge_experts.h.
#include "nn/merge_experts.h"

#include "tensor/ops.h"

namespace lory::nn {

Tensor merge_experts(const Tensor& weights, const Tensor& experts) {
  LORY_CHECK(weights.dim() == 2 && experts.dim() == 3 && weights.size(1) == experts.size(0),
             "merge_experts: expected weights [S, E] and experts [E, out, in]: weights is ", weights.describe(),
             ", experts is ", experts.describe());
  const int64_t S = weights.size(0), E = experts.size(0), out = experts.size(1), in = experts.size(2);
  return matmul(weights.to(experts.dtype()), experts.reshape({E, out * in})).view({S, out, in});
}

Tensor merged_linear_gemm(const Tensor& x, const Tensor& weights, const Tensor& experts) {
  LORY_CHECK(x.dim() == 3 && weights.dim() == 2 && experts.dim() == 3 && x.size(0) == weights.size(0) &&
                 x.size(2) == experts.size(2),
             "merged_linear_gemm: expected x [S, T, in], weights [S, E], experts [E, out, in]: x is ", x.describe(),
             ", weights is ", weights.describe(), ", experts is ", experts.describe());
  return bmm(x, merge_experts(weights, experts).transpose(1, 2));
}

}  // namespace lory::nn
