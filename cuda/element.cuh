// element.cuh — element types on the device: the DType -> C++ type map, the
// precision each type computes in, and conversions that agree with the CPU.
//
// Storage types: float, double, __nv_bfloat16, __half, int32_t, int64_t,
// uint8_t, bool (one byte, 0 or 1). bf16 and f16 are storage only: kernels
// widen them to f32, compute, and round once on the way out, as the CPU
// kernels do.
//
// Conversions follow Eigen's, which the CPU uses: anything to bf16/f16 goes
// through f32 (so f64 -> bf16 rounds twice, exactly as Eigen::bfloat16(double)
// does) with round-to-nearest-even; bf16/f16 to anything goes through f32; to
// bool is "!= 0".
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"
#include "tensor/error.h"

namespace lory::cuda {

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with the C++ type of dtype t.
template <typename F>
void dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      f(TypeTag<float>{});
      return;
    case DType::f64:
      f(TypeTag<double>{});
      return;
    case DType::bf16:
      f(TypeTag<__nv_bfloat16>{});
      return;
    case DType::f16:
      f(TypeTag<__half>{});
      return;
    case DType::i32:
      f(TypeTag<int32_t>{});
      return;
    case DType::i64:
      f(TypeTag<int64_t>{});
      return;
    case DType::u8:
      f(TypeTag<uint8_t>{});
      return;
    case DType::boolean:
      f(TypeTag<bool>{});
      return;
  }
  fail("cuda: unknown dtype ", static_cast<int>(t));
}

template <typename T>
inline constexpr bool is_half_v = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;

// The precision floating math runs in: f32 for f32/bf16/f16, f64 for f64
// and, where an integer tensor reaches a float function, f64 (exact for
// integers below 2^53).
template <typename T>
using float_math_t = std::conditional_t<std::is_same_v<T, float> || is_half_v<T>, float, double>;

// The accumulator of sums and the type arithmetic runs in: floats as above,
// every integer type (and bool) in int64 so that i64 stays exact.
template <typename T>
using acc_t = std::conditional_t<std::is_integral_v<T>, int64_t, float_math_t<T>>;

// Float to integer as on the CPU (tensor/cpu/dispatch.h): truncation, NaN to
// 0, saturation beyond int64, then a wrapping cast to the target width.
__device__ __forceinline__ int64_t float_to_int64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775808.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(v);
}

// cast<To>(x): a C cast, except through f32 for the 16-bit floats, "!= 0" for
// bool, and float_to_int64 for float to integer.
template <typename To, typename From>
__device__ __forceinline__ To cast(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    return cast<To>(__bfloat162float(x));
  } else if constexpr (std::is_same_v<From, __half>) {
    return cast<To>(__half2float(x));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<To, bool>) {
    return x != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return static_cast<To>(float_to_int64(static_cast<double>(x)));
  } else {
    return static_cast<To>(x);
  }
}

// Overloads so templated kernels call the f32 functions for float and the
// f64 ones for double (the CUDA math library is C, one name per precision).
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

// min/max of two int64 on the device (CUDA's overloads do not take int64_t
// mixed with int literals).
__host__ __device__ __forceinline__ int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// The identities of max and min.
template <typename A>
__device__ __forceinline__ A lowest() {
  if constexpr (std::is_same_v<A, float>)
    return __int_as_float(static_cast<int>(0xff800000u));  // -inf
  else if constexpr (std::is_same_v<A, double>)
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull));
  else
    return INT64_MIN;
}
template <typename A>
__device__ __forceinline__ A highest() {
  if constexpr (std::is_same_v<A, float>)
    return __int_as_float(0x7f800000);  // +inf
  else if constexpr (std::is_same_v<A, double>)
    return __longlong_as_double(0x7ff0000000000000ll);
  else
    return INT64_MAX;
}

// A quiet NaN of type A.
template <typename A>
__device__ __forceinline__ A x_nan() {
  if constexpr (std::is_same_v<A, float>)
    return __int_as_float(0x7fc00000);
  else
    return __longlong_as_double(0x7ff8000000000000ll);
}

// NaN-propagating max/min (torch.maximum / amax semantics, and the CPU
// backend's): a NaN anywhere wins, whatever the order of combination; on a
// tie the first argument is returned (which matters only for -0 vs +0).
template <typename A>
__device__ __forceinline__ bool is_nan(A a) {
  if constexpr (std::is_floating_point_v<A>)
    return a != a;
  else
    return false;
}
template <typename A>
__device__ __forceinline__ A max_nan(A a, A b) {
  return (is_nan(a) || a >= b) ? a : b;
}
template <typename A>
__device__ __forceinline__ A min_nan(A a, A b) {
  return (is_nan(a) || a <= b) ? a : b;
}

}  // namespace lory::cuda
