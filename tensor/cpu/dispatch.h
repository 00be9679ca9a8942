// dispatch.h — from a runtime DType to the C++ element type a kernel is
// instantiated for, and the conversions between element types.
//
//   f32 float   f64 double   bf16 Eigen::bfloat16   f16 Eigen::half
//   i32 int32_t i64 int64_t  u8 uint8_t             bool bool (one byte)
//
// A kernel is written once as a generic lambda over a type tag:
//   dispatch(t.dtype(), [&](auto tag) { using T = typename decltype(tag)::type; ... });
// bf16/f16 are storage types: kernels load them, compute in compute_t<T>
// (float), and round back once when storing.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace lory::cpu {

template <typename T>
struct TypeTag {
  using type = T;
};

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, Eigen::bfloat16> || std::is_same_v<T, Eigen::half>;
template <typename T>
constexpr bool is_float_v = std::is_floating_point_v<T> || is_half_v<T>;
template <typename T>
constexpr bool is_int_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The type arithmetic on T is done in: float for the 16-bit floats, T otherwise.
template <typename T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;
// The type a reduction over T accumulates in: double for f32/f64 sums (so a
// million-element sum keeps f32 exact), int64 for integers.
template <typename T>
using accum_t = std::conditional_t<is_float_v<T>, double, int64_t>;

// Calls f(TypeTag<T>{}) for the C++ type of `dtype`.
template <typename F>
decltype(auto) dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32:
      return f(TypeTag<float>{});
    case DType::f64:
      return f(TypeTag<double>{});
    case DType::bf16:
      return f(TypeTag<Eigen::bfloat16>{});
    case DType::f16:
      return f(TypeTag<Eigen::half>{});
    case DType::i32:
      return f(TypeTag<int32_t>{});
    case DType::i64:
      return f(TypeTag<int64_t>{});
    case DType::u8:
      return f(TypeTag<uint8_t>{});
    case DType::boolean:
      return f(TypeTag<bool>{});
  }
  fail("cpu dispatch: unknown dtype ", static_cast<int>(dtype));
}

// As dispatch, for kernels defined only on floating types; `kernel` and `t`
// name the refused operand in the error.
template <typename F>
decltype(auto) dispatch_floating(const Tensor& t, const char* kernel, F&& f) {
  switch (t.dtype()) {
    case DType::f32:
      return f(TypeTag<float>{});
    case DType::f64:
      return f(TypeTag<double>{});
    case DType::bf16:
      return f(TypeTag<Eigen::bfloat16>{});
    case DType::f16:
      return f(TypeTag<Eigen::half>{});
    default:
      break;
  }
  fail(kernel, ": expected a floating tensor (f32, f64, bf16, f16), got ", t.describe());
}

// Index tensors are i32 or i64.
template <typename F>
decltype(auto) dispatch_index(const Tensor& t, const char* kernel, F&& f) {
  switch (t.dtype()) {
    case DType::i32:
      return f(TypeTag<int32_t>{});
    case DType::i64:
      return f(TypeTag<int64_t>{});
    default:
      break;
  }
  fail(kernel, ": index tensor must be i32 or i64, got ", t.describe());
}

// Element conversion with C-cast semantics, except: to bool is "nonzero", and
// to bf16/f16 rounds to nearest even (through float, as a C cast of a double
// to a 16-bit float would).
// Float to integer, defined for every input (a C cast is undefined for NaN
// and out-of-range values): truncation toward zero, NaN to 0, beyond int64
// saturated; the caller's cast to a narrower integer then wraps (C++20), so
// -1.0 becomes 255 in u8, as in PyTorch. cuda/element.cuh does the same.
inline int64_t float_to_int64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775808.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(v);
}

template <typename To, typename From>
inline To cast_to(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (is_half_v<From>) {
    return cast_to<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (is_half_v<To>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return static_cast<To>(float_to_int64(static_cast<double>(v)));
  } else {
    return static_cast<To>(v);
  }
}

// Loads element i as its compute type.
template <typename T>
inline compute_t<T> load(const T* p, int64_t i) {
  return static_cast<compute_t<T>>(p[i]);
}

// NaN-propagating max/min (as torch.maximum / amax): a NaN anywhere wins.
template <typename C>
inline C max_nan(C x, C y) {
  return (x != x || x >= y) ? x : y;
}
template <typename C>
inline C min_nan(C x, C y) {
  return (x != x || x <= y) ? x : y;
}

// Typed pointer to element 0 of a view (no size check: dispatch picked T from the dtype).
template <typename T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace lory::cpu
