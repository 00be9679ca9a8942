// compare.h — how far apart two tensors are, for the CPU tests that compare
// a computation with its reference (any dtypes, any device, no graph).
#pragma once

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::test {

// max |a - b|, in f64.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  return amax(abs(a.to(DType::f64) - b.to(DType::f64))).item();
}

// max |a|, in f64: the scale a tolerance is relative to.
inline double max_abs(const Tensor& a) {
  NoGradGuard no_grad;
  return amax(abs(a.to(DType::f64))).item();
}

}  // namespace lory::test
