// binary.cpp — elementwise functions of two tensors: out = f(a, b).
//
// Operands arrive broadcast to out's shape (stride 0 along broadcast dims), so
// the common layouts of a run are: all contiguous, or one side a single value
// repeated (x * scale[:, None]); both get a vectorised loop, anything else a
// strided one. bf16/f16 compute in f32 and round once on store.
//
// Integer arithmetic wraps; integer division truncates toward zero (C) and a
// zero divisor is an error. Bool supports the comparisons and add/mul/maximum/
// minimum as or/and/or/and (check_binary_args refuses the rest).
#include <cmath>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// out[i] = f(a[i], b[i]); f takes two T and returns R. `vectorise` is false
// for bodies that may throw (integer division).
template <typename T, typename R, bool vectorise = true, typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* ap = ptr<T>(a);
  const T* bp = ptr<T>(b);
  R* op = ptr<R>(out);
  for_each_segment<3>(
      out.shape(), {&out.strides(), &a.strides(), &b.strides()},
      [&](int64_t, const auto& off, int64_t n, const auto& in) {
        R* o = op + off[0];
        const T* x = ap + off[1];
        const T* y = bp + off[2];
        if constexpr (vectorise) {
          if (in[0] == 1 && in[1] == 1 && in[2] == 1) {
            LORY_SIMD
            for (int64_t j = 0; j < n; ++j) o[j] = f(x[j], y[j]);
            return;
          }
          if (in[0] == 1 && in[1] == 1 && in[2] == 0) {
            const T yv = *y;
            LORY_SIMD
            for (int64_t j = 0; j < n; ++j) o[j] = f(x[j], yv);
            return;
          }
          if (in[0] == 1 && in[1] == 0 && in[2] == 1) {
            const T xv = *x;
            LORY_SIMD
            for (int64_t j = 0; j < n; ++j) o[j] = f(xv, y[j]);
            return;
          }
        }
        for (int64_t j = 0; j < n; ++j) o[j * in[0]] = f(x[j * in[1]], y[j * in[2]]);
      });
}

template <typename T>
void comparison(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using C = compute_t<T>;
  auto L = [](T v) { return static_cast<C>(v); };
  switch (op) {
    case BinaryOp::eq: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) == L(y); });
    case BinaryOp::ne: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) != L(y); });
    case BinaryOp::lt: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) < L(y); });
    case BinaryOp::le: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) <= L(y); });
    case BinaryOp::gt: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) > L(y); });
    case BinaryOp::ge: return binary_loop<T, bool>(a, b, out, [=](T x, T y) { return L(x) >= L(y); });
    default: fail("binary: ", op_name(op), " is not a comparison");
  }
}

template <typename T>
void arithmetic_floating(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using C = compute_t<T>;
  auto L = [](T v) { return static_cast<C>(v); };
  auto S = [](C v) { return cast_to<T>(v); };
  switch (op) {
    case BinaryOp::add: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(L(x) + L(y)); });
    case BinaryOp::sub: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(L(x) - L(y)); });
    case BinaryOp::mul: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(L(x) * L(y)); });
    case BinaryOp::div: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(L(x) / L(y)); });
    case BinaryOp::maximum: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(max_nan(L(x), L(y))); });
    case BinaryOp::minimum: return binary_loop<T, T>(a, b, out, [=](T x, T y) { return S(min_nan(L(x), L(y))); });
    default: fail("binary: ", op_name(op), " is not arithmetic");
  }
}

template <typename T>
void arithmetic_integer(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case BinaryOp::add:
      return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(static_cast<U>(x) + static_cast<U>(y)); });
    case BinaryOp::sub:
      return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(static_cast<U>(x) - static_cast<U>(y)); });
    case BinaryOp::mul:
      return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(static_cast<U>(x) * static_cast<U>(y)); });
    case BinaryOp::div:
      return binary_loop<T, T, false>(a, b, out, [&](T x, T y) -> T {
        if (y == T(0)) fail("div: integer division by zero (a is ", a.describe(), ", b is ", b.describe(), ")");
        // MIN / -1 overflows (and traps on x86): the wrapped result is MIN.
        if constexpr (std::is_signed_v<T>)
          if (y == T(-1)) return static_cast<T>(U(0) - static_cast<U>(x));
        return static_cast<T>(x / y);
      });
    case BinaryOp::maximum: return binary_loop<T, T>(a, b, out, [](T x, T y) { return x >= y ? x : y; });
    case BinaryOp::minimum: return binary_loop<T, T>(a, b, out, [](T x, T y) { return x <= y ? x : y; });
    default: fail("binary: ", op_name(op), " is not arithmetic");
  }
}

void arithmetic_bool(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::add:
    case BinaryOp::maximum: return binary_loop<bool, bool>(a, b, out, [](bool x, bool y) { return x || y; });
    case BinaryOp::mul:
    case BinaryOp::minimum: return binary_loop<bool, bool>(a, b, out, [](bool x, bool y) { return x && y; });
    default: fail("binary: ", op_name(op), " on bool is refused by check_binary_args");
  }
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  check_binary_args(op, a, b, out);
  dispatch(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (is_comparison(op)) {
      comparison<T>(op, a, b, out);
    } else if constexpr (is_float_v<T>) {
      arithmetic_floating<T>(op, a, b, out);
    } else if constexpr (is_int_v<T>) {
      arithmetic_integer<T>(op, a, b, out);
    } else {
      arithmetic_bool(op, a, b, out);
    }
  });
}

}  // namespace lory
