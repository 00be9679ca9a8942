// compare.h — the CUDA test suites' comparison of a CUDA result with the CPU's.
//
// ggml test-backend-ops style: a case builds its inputs on the CPU, runs the
// same public op (tensor/ops.h) on those inputs and on copies moved to
// cuda:0, and compares element by element with a tolerance per dtype
// (expect_close), or by normalised error for long reductions in 16-bit types
// (expect_close_normalized).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace lory::cuda_test {


inline const Device kGpu = cuda_device(0);

struct Tol {
  double rtol, atol;
};

// What the kernels can differ by: the CUDA math library and Eigen's
// vectorised functions differ by an ulp or two in f32, which rounding to
// bf16/f16 can turn into one ulp of the 16-bit type.
inline Tol tol_for(DType t) {
  switch (t) {
    case DType::f32:
      return {1e-5, 1e-6};
    case DType::f64:
      return {1e-12, 1e-12};
    case DType::bf16:
      return {1e-2, 1e-2};
    case DType::f16:
      return {2e-3, 1e-3};
    default:
      return {0, 0};  // integers and bool: exact
  }
}

// expected (CPU) and actual (CUDA) agree in shape, dtype and every element:
// |a - e| <= atol + rtol |e|; NaNs must meet NaNs and infinities equal ones.
inline void expect_close(const Tensor& expected, const Tensor& actual, Tol tol, const std::string& what) {
  INFO(what);
  REQUIRE(expected.defined());
  REQUIRE(actual.defined());
  CHECK(actual.device() == kGpu);
  REQUIRE(expected.shape() == actual.shape());
  CHECK(expected.dtype() == actual.dtype());
  const std::vector<double> e = expected.to_vector<double>(), a = actual.to_vector<double>();
  REQUIRE(e.size() == a.size());
  int64_t bad = 0, worst = -1;
  double worst_excess = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::isnan(e[i]) || std::isnan(a[i])) {
      if (std::isnan(e[i]) && std::isnan(a[i])) continue;
    } else if (std::isinf(e[i]) || std::isinf(a[i])) {
      if (e[i] == a[i]) continue;
    } else {
      const double excess = std::abs(a[i] - e[i]) - (tol.atol + tol.rtol * std::abs(e[i]));
      if (excess <= 0) continue;
      if (worst < 0 || excess > worst_excess) worst_excess = excess, worst = static_cast<int64_t>(i);
      ++bad;
      continue;
    }
    if (worst < 0) worst = static_cast<int64_t>(i), worst_excess = std::numeric_limits<double>::infinity();
    ++bad;
  }
  std::ostringstream msg;
  if (bad > 0)
    msg << bad << " of " << e.size() << " elements of " << actual.describe() << " differ; worst at flat index " << worst
        << ": cpu " << e[worst] << " vs cuda " << a[worst] << " (rtol " << tol.rtol << ", atol " << tol.atol << ")";
  CHECK_MESSAGE(bad == 0, msg.str());
}

// Runs f on the CPU inputs and on the same inputs moved to cuda:0.
template <typename F, typename... Ts>
void check_same(const std::string& what, Tol tol, F f, const Ts&... cpu_inputs) {
  const Tensor expected = f(cpu_inputs...);
  const Tensor actual = f(cpu_inputs.to(kGpu)...);
  expect_close(expected, actual, tol, what);
}

inline const std::vector<DType> kFloatTypes = {DType::f32, DType::f64, DType::bf16, DType::f16};
inline const std::vector<DType> kAllTypes = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                      DType::i32, DType::i64, DType::u8,   DType::boolean};

inline std::string name_of(const std::string& op, DType t) { return op + " (" + dtype_name(t) + ")"; }

// A CPU tensor of N(0, 1) values rounded to t, from the seeded global generator.
inline Tensor randn_as(const Shape& shape, DType t, uint64_t seed) {
  manual_seed(seed);
  return randn(shape).to(t);
}

inline CudaBackend& gpu_backend() { return dynamic_cast<CudaBackend&>(cuda_backend(0)); }


// ||actual - expected|| / ||expected|| <= max_err over all elements (with
// NaN/Inf required to match exactly): the measure for outputs that sum many
// 16-bit products, whose individual elements can differ by more than an ulp
// while the tensor as a whole is right (ggml's NMSE check, in its square root).
inline void expect_close_normalized(const Tensor& expected, const Tensor& actual, double max_err,
                                    const std::string& what) {
  INFO(what);
  REQUIRE(expected.shape() == actual.shape());
  const std::vector<double> e = expected.to_vector<double>(), a = actual.to_vector<double>();
  double num = 0, den = 0;
  int64_t nonfinite_mismatch = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    if (!std::isfinite(e[i]) || !std::isfinite(a[i])) {
      if (!(e[i] == a[i] || (std::isnan(e[i]) && std::isnan(a[i])))) ++nonfinite_mismatch;
      continue;
    }
    num += (a[i] - e[i]) * (a[i] - e[i]);
    den += e[i] * e[i];
  }
  const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  CHECK_MESSAGE(nonfinite_mismatch == 0, nonfinite_mismatch, " non-finite values differ in ", actual.describe());
  CHECK_MESSAGE(err <= max_err, "normalised error ", err, " > ", max_err, " for ", actual.describe());
}

}  // namespace lory::cuda_test
