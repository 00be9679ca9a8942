// unary.cpp — elementwise functions of one tensor: out = f(x), x any strides.
//
// Floating types go through Eigen array expressions: on a contiguous run
// Eigen evaluates exp, tanh and the logistic function with its vectorised
// polynomial kernels (several times faster than a loop of std::exp, which GCC
// does not vectorise without -ffast-math). bf16/f16 runs are widened to f32,
// computed, and rounded once on store.
//
// Integer types support neg, abs and the scalar ops (add, mul, pow); the
// other functions are refused by check_unary_args (tensor/kernel_args.h: the
// op layer promotes integer inputs of those to f32 before calling the kernel).
#include <cmath>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// Applies fn (an Eigen array expression of compute_t<T>) to every run of x.
template <typename T, typename Fn>
void unary_eigen(const Tensor& x, Tensor& out, Fn fn) {
  using C = compute_t<T>;
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  using Stride = Eigen::InnerStride<>;
  const T* xp = ptr<T>(x);
  T* op = ptr<T>(out);
  for_each_segment<2>(out.shape(), {&out.strides(), &x.strides()},
                      [&](int64_t, const auto& off, int64_t n, const auto& in) {
                        if (in[0] == 1 && in[1] == 1) {  // the vectorised path
                          Eigen::Map<const Arr> xs(xp + off[1], n);
                          Eigen::Map<Arr> os(op + off[0], n);
                          os = fn(xs.template cast<C>()).template cast<T>();
                        } else {
                          Eigen::Map<const Arr, 0, Stride> xs(xp + off[1], n, Stride(in[1]));
                          Eigen::Map<Arr, 0, Stride> os(op + off[0], n, Stride(in[0]));
                          os = fn(xs.template cast<C>()).template cast<T>();
                        }
                      });
}

template <typename T>
void unary_floating(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  using C = compute_t<T>;
  const C s = static_cast<C>(scalar);
  switch (op) {
    case UnaryOp::neg:
      return unary_eigen<T>(x, out, [](const auto& a) { return -a; });
    // Eigen's generic (SSE/AVX2) exp clamps its input at about -88.7 (f32) /
    // -709.8 (f64) and so returns a tiny denormal, not 0, for exp(-1000); below
    // the clamp the answer is 0 to the type's precision.
    case UnaryOp::exp:
      return unary_eigen<T>(x, out, [](const auto& a) {
        constexpr C lowest = std::is_same_v<C, float> ? C(-88.723f) : C(-709.784);
        return (a < lowest).select(C(0), a.exp());
      });
    case UnaryOp::log:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.log(); });
    case UnaryOp::sqrt:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.sqrt(); });
    // 1/sqrt rather than Eigen's rsqrt, whose fast-math packet version is an
    // approximate reciprocal plus one Newton step (a few ulp off).
    case UnaryOp::rsqrt:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.sqrt().inverse(); });
    case UnaryOp::tanh:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.tanh(); });
    // Eigen's logistic is stable at both ends: exp(x) below -9, 1 above ~16.
    case UnaryOp::sigmoid:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.logistic(); });
    case UnaryOp::silu:
      return unary_eigen<T>(x, out, [](const auto& a) { return a * a.logistic(); });
    case UnaryOp::abs:
      return unary_eigen<T>(x, out, [](const auto& a) { return a.abs(); });
    case UnaryOp::add_scalar:
      return unary_eigen<T>(x, out, [s](const auto& a) { return a + s; });
    case UnaryOp::mul_scalar:
      return unary_eigen<T>(x, out, [s](const auto& a) { return a * s; });
    case UnaryOp::div_scalar:
      return unary_eigen<T>(x, out, [s](const auto& a) { return a / s; });
    case UnaryOp::pow_scalar:
      if (scalar == 2.0) return unary_eigen<T>(x, out, [](const auto& a) { return a.square(); });
      if (scalar == 1.0) return unary_eigen<T>(x, out, [](const auto& a) { return a; });
      return unary_eigen<T>(x, out, [s](const auto& a) { return a.unaryExpr([s](C v) { return std::pow(v, s); }); });
  }
  fail("unary: unknown op ", static_cast<int>(op));
}

// Integer arithmetic wraps (through the unsigned type: signed overflow is UB
// in C++). A scalar that is not an integer goes through double, as a C cast of
// the double result would.
template <typename T>
void unary_integer(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  using U = std::make_unsigned_t<T>;
  const bool integral = scalar == std::trunc(scalar) && std::abs(scalar) < 9.2e18;
  const T si = integral ? static_cast<T>(static_cast<int64_t>(scalar)) : T(0);
  auto f = [&](T v) -> T {
    switch (op) {
      case UnaryOp::neg:
        return static_cast<T>(U(0) - static_cast<U>(v));
      case UnaryOp::abs:
        return v < T(0) ? static_cast<T>(U(0) - static_cast<U>(v)) : v;
      case UnaryOp::add_scalar:
        return integral ? static_cast<T>(static_cast<U>(v) + static_cast<U>(si))
                        : static_cast<T>(float_to_int64(static_cast<double>(v) + scalar));
      case UnaryOp::mul_scalar:
        return integral ? static_cast<T>(static_cast<U>(v) * static_cast<U>(si))
                        : static_cast<T>(float_to_int64(static_cast<double>(v) * scalar));
      case UnaryOp::pow_scalar:
        return static_cast<T>(float_to_int64(std::pow(static_cast<double>(v), scalar)));
      default:
        return v;  // refused by check_unary_args
    }
  };
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(out);
  for_each_segment<2>(out.shape(), {&out.strides(), &x.strides()},
                      [&](int64_t, const auto& off, int64_t n, const auto& in) {
                        for (int64_t j = 0; j < n; ++j) o[off[0] + j * in[0]] = f(xp[off[1] + j * in[1]]);
                      });
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  check_unary_args(op, x, out);
  dispatch(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (is_float_v<T>) {
      unary_floating<T>(op, x, out, scalar);
    } else if constexpr (is_int_v<T>) {
      unary_integer<T>(op, x, out, scalar);
    }  // bool: refused by check_unary_args
  });
}

}  // namespace lory
