// gradcheck.cpp — finite differences against the analytic backward (see gradcheck.h).
#include "autograd/gradcheck.h"

#include <cmath>

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory {

namespace {
// <w, f(inputs)> as a double: the scalar whose gradient both sides compute.
double projected(const GradcheckFn& f, const std::vector<Tensor>& inputs, const Tensor& w) {
  NoGradGuard no_grad;
  return sum(mul(f(inputs).to(DType::f64), w)).item();
}
}  // namespace

bool gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    LORY_CHECK(x.defined() && x.dtype() == DType::f64 && x.device().is_cpu() && x.is_contiguous() && x.is_leaf(),
               "gradcheck: input ", i, " must be a contiguous f64 cpu leaf, got ", x.describe());
    x.set_grad(Tensor());
  }

  // Analytic: one backward of <w, f(x)>.
  const Tensor out = f(inputs);
  LORY_CHECK(out.defined() && is_floating(out.dtype()), "gradcheck: f must return a floating tensor");
  const Tensor w = random_with_key(out.shape(), RandomDist::normal, options.seed, 0, 0.0, 1.0, {DType::f64});
  const Tensor s = sum(mul(out.to(DType::f64), w));
  if (s.requires_grad()) s.backward();

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    const Tensor g = x.grad();
    const std::vector<double> analytic =
        g.defined() ? g.to_vector<double>() : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    auto* p = static_cast<double*>(x.data_ptr());
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double original = p[j];
      p[j] = original + options.eps;
      x.bump_version();
      const double plus = projected(f, inputs, w);
      p[j] = original - options.eps;
      x.bump_version();
      const double minus = projected(f, inputs, w);
      p[j] = original;
      x.bump_version();
      const double numeric = (plus - minus) / (2 * options.eps);
      const double a = analytic[static_cast<size_t>(j)];
      if (!(std::abs(a - numeric) <= options.atol + options.rtol * std::abs(numeric)))
        fail("gradcheck: input ", i, " ", x.describe(), ", element ", j, ": analytic gradient ", a,
             " vs numeric ", numeric, " (difference ", a - numeric, ", atol ", options.atol, ", rtol ",
             options.rtol, ")");
    }
    x.set_grad(Tensor());
  }
  return true;
}

}  // namespace lory
