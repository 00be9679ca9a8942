// gradcheck.h — compares an op's backward with central finite differences.
//
// For f: inputs -> output, gradcheck draws a fixed random cotangent w of the
// output's shape and compares, for every element x_j of every input that
// requires grad,
//   analytic:  d/dx_j sum(w * f(x))   from one backward pass
//   numeric:   (sum(w * f(x + eps e_j)) - sum(w * f(x - eps e_j))) / (2 eps)
// Inputs must be contiguous f64 CPU leaves (f64 makes eps = 1e-6 meaningful);
// to check an op on non-contiguous operands, build the view inside f.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lory {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // for the cotangent w
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// Returns true when every element agrees within atol + rtol * |numeric|;
// otherwise throws lory::Error naming the input, the element index and both
// values (so a failing test says what is wrong, not just "false").
bool gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace lory
