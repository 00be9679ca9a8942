// linear.h — Linear (no bias), Embedding and RMSNorm: the small modules.
//
// Weights follow Hugging Face's layout: Linear.weight is [out, in] (y = x W^T),
// Embedding.weight is [vocab, d], RMSNorm.weight is [d].
#pragma once

#include "nn/module.h"
#include "tensor/ops.h"

namespace lory::nn {

// y = x W^T. x: [..., in], weight: [out, in] -> [..., out]. Leading dims are
// flattened so the product is one GEMM; weight.t() is a view the GEMM reads
// in place. (Linear's forward, and a tied lm_head's with the embedding matrix.)
inline Tensor linear(const Tensor& x, const Tensor& weight) {
  const int64_t in = weight.size(1), out = weight.size(0);
  LORY_CHECK(x.dim() >= 1 && x.size(-1) == in, "Linear: input ", x.describe(), " does not end in ", in,
             " features (weight is ", weight.describe(), ")");
  Shape shape = x.shape();
  shape.back() = out;
  return matmul(x.reshape({-1, in}), weight.t()).view(shape);
}

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, const InitOptions& init)
      : weight(normal_parameter({out_features, in_features}, init.std, init)) {
    register_parameter("weight", weight);
  }
  Tensor forward(const Tensor& x) const { return linear(x, weight); }  // [..., in] -> [..., out]
  Tensor weight;
};

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim, const InitOptions& init)
      : weight(normal_parameter({vocab, dim}, init.std, init)) {
    register_parameter("weight", weight);
  }
  // ids: integer [...] -> [..., d]
  Tensor forward(const Tensor& ids) const { return embedding(weight, ids); }
  Tensor weight;
};

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t dim, double eps, const InitOptions& init) : weight(constant_parameter({dim}, 1.0, init)), eps(eps) {
    register_parameter("weight", weight);
  }
  Tensor forward(const Tensor& x) const { return rms_norm(x, weight, eps); }
  // {x + residual, norm(x + residual)} in one fused pass (the residual add
  // that precedes a pre-norm; see add_rms_norm in tensor/ops.h).
  AddRmsNorm add_and_forward(const Tensor& x, const Tensor& residual) const {
    return add_rms_norm(x, residual, weight, eps);
  }
  Tensor weight;
  double eps;
};

}  // namespace lory::nn
