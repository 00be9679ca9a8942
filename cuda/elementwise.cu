// elementwise.cu — unary functions, binary arithmetic and comparisons, where.
//
// One kernel shape for all of them: a grid-stride loop over the contiguous
// output; inputs are read at their strided offsets (cuda/strided_index.cuh),
// or at i directly when every input is contiguous. When every operand is
// contiguous and 16-byte aligned (the common case in a model: activations,
// gradients), unary and non-comparison binary ops take a second kernel that
// moves 16 bytes per load and store (cuda/vec.cuh), which is what reaching
// the memory bandwidth takes for 2-byte types. The op is a template
// parameter, so each (op, dtype) pair compiles to its own straight-line loop.
#include <cmath>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "cuda/vec.cuh"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// ---- the functions ----

// Floats compute in float_math_t (f32 for bf16/f16, like the CPU). Integer
// inputs only reach neg, abs and the scalar ops from the op layer (which
// promotes integers to f32 for the others). As on the CPU, integer neg/abs
// and add/mul by an integral scalar wrap (computed in the unsigned type:
// signed overflow is undefined), a fractional scalar goes through f64, and
// pow goes through f64.
struct UnaryScalar {
  double value;
  int64_t as_int;  // value, when it is integral
  bool is_integral;
};

template <UnaryOp kOp, typename T>
struct UnaryFn {
  UnaryScalar scalar;
  __device__ __forceinline__ T operator()(T v) const {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                  (kOp == UnaryOp::neg || kOp == UnaryOp::abs || kOp == UnaryOp::add_scalar ||
                   kOp == UnaryOp::mul_scalar)) {
      using U = std::make_unsigned_t<T>;
      const U u = static_cast<U>(v), si = static_cast<U>(static_cast<T>(scalar.as_int));
      if constexpr (kOp == UnaryOp::neg)
        return static_cast<T>(U(0) - u);
      else if constexpr (kOp == UnaryOp::abs) {
        if constexpr (std::is_unsigned_v<T>)
          return v;
        else
          return v < T(0) ? static_cast<T>(U(0) - u) : v;
      } else if constexpr (kOp == UnaryOp::add_scalar)
        return scalar.is_integral ? static_cast<T>(u + si)
                                  : static_cast<T>(float_to_int64(static_cast<double>(v) + scalar.value));
      else
        return scalar.is_integral ? static_cast<T>(u * si)
                                  : static_cast<T>(float_to_int64(static_cast<double>(v) * scalar.value));
    } else {
      using M = float_math_t<T>;
      const M x = cast<M>(v), s = static_cast<M>(scalar.value);
      const M one = 1;
      if constexpr (kOp == UnaryOp::neg)
        return cast<T>(-x);
      else if constexpr (kOp == UnaryOp::exp)
        return cast<T>(m_exp(x));
      else if constexpr (kOp == UnaryOp::log)
        return cast<T>(m_log(x));
      else if constexpr (kOp == UnaryOp::sqrt)
        return cast<T>(m_sqrt(x));
      else if constexpr (kOp == UnaryOp::rsqrt)
        return cast<T>(one / m_sqrt(x));  // not rsqrtf: 2 ulp
      else if constexpr (kOp == UnaryOp::tanh)
        return cast<T>(m_tanh(x));
      else if constexpr (kOp == UnaryOp::sigmoid)
        return cast<T>(one / (one + m_exp(-x)));
      else if constexpr (kOp == UnaryOp::silu)
        return cast<T>(x / (one + m_exp(-x)));
      else if constexpr (kOp == UnaryOp::abs)
        return cast<T>(m_abs(x));
      else if constexpr (kOp == UnaryOp::add_scalar)
        return cast<T>(x + s);
      else if constexpr (kOp == UnaryOp::mul_scalar)
        return cast<T>(x * s);
      else if constexpr (kOp == UnaryOp::div_scalar)
        return cast<T>(x / s);
      else if (scalar.value == 2.0)
        return cast<T>(x * x);  // pow_scalar: exact square, as the CPU
      else if (scalar.value == 1.0)
        return v;
      else
        return cast<T>(m_pow(x, s));
    }
  }
};

template <BinaryOp kOp>
inline constexpr bool kIsComparison = kOp >= BinaryOp::eq;

// Arithmetic runs in acc_t: f32 for the 16-bit floats, int64 for integers and
// bool (so bool + bool is "or" after the cast back, and u8 wraps like C).
// maximum/minimum propagate NaN (cuda/element.cuh), as the CPU's do.
// Integer division truncates; division by zero gives 0 rather than a trap.
template <BinaryOp kOp, typename T>
struct BinaryFn {
  using Out = std::conditional_t<kIsComparison<kOp>, bool, T>;
  __device__ __forceinline__ Out operator()(T va, T vb) const {
    using M = acc_t<T>;
    const M a = cast<M>(va), b = cast<M>(vb);
    if constexpr (kOp == BinaryOp::add)
      return cast<T>(a + b);
    else if constexpr (kOp == BinaryOp::sub)
      return cast<T>(a - b);
    else if constexpr (kOp == BinaryOp::mul)
      return cast<T>(a * b);
    else if constexpr (kOp == BinaryOp::div) {
      if constexpr (std::is_integral_v<M>)
        return cast<T>(b == 0 ? M(0) : a / b);
      else
        return cast<T>(a / b);
    } else if constexpr (kOp == BinaryOp::maximum)
      return cast<T>(max_nan(a, b));
    else if constexpr (kOp == BinaryOp::minimum)
      return cast<T>(min_nan(a, b));
    else if constexpr (kOp == BinaryOp::eq)
      return a == b;
    else if constexpr (kOp == BinaryOp::ne)
      return a != b;
    else if constexpr (kOp == BinaryOp::lt)
      return a < b;
    else if constexpr (kOp == BinaryOp::le)
      return a <= b;
    else if constexpr (kOp == BinaryOp::gt)
      return a > b;
    else
      return a >= b;  // ge
  }
};

// ---- the kernels ----

// out[i] = f(x[i])
template <typename T, typename F>
__global__ void unary_kernel(const T* x, T* out, int64_t n, StridedIndex<1> index, bool contiguous, F f) {
  LORY_GRID_STRIDE_LOOP(i, n) {
    if (contiguous) {
      out[i] = f(x[i]);
    } else {
      int64_t off[1];
      index.offsets(i, off);
      out[i] = f(x[off[0]]);
    }
  }
}

// Contiguous, aligned operands: Vec<T> (16 bytes) at a time, then the tail.
template <typename T, typename F>
__global__ void unary_vec_kernel(const T* x, T* out, int64_t n, F f) {
  constexpr int K = Vec<T>::kSize;
  const int64_t nv = n / K;
  LORY_GRID_STRIDE_LOOP(j, nv) {
    Vec<T> v = load_vec(x + j * K);
#pragma unroll
    for (int k = 0; k < K; ++k) v.v[k] = f(v.v[k]);
    store_vec(out + j * K, v);
  }
  LORY_GRID_STRIDE_LOOP(i, n - nv * K) out[nv * K + i] = f(x[nv * K + i]);
}

template <typename T, typename F>
__global__ void binary_vec_kernel(const T* a, const T* b, T* out, int64_t n, F f) {
  constexpr int K = Vec<T>::kSize;
  const int64_t nv = n / K;
  LORY_GRID_STRIDE_LOOP(j, nv) {
    const Vec<T> va = load_vec(a + j * K), vb = load_vec(b + j * K);
    Vec<T> r;
#pragma unroll
    for (int k = 0; k < K; ++k) r.v[k] = f(va.v[k], vb.v[k]);
    store_vec(out + j * K, r);
  }
  LORY_GRID_STRIDE_LOOP(i, n - nv * K) out[nv * K + i] = f(a[nv * K + i], b[nv * K + i]);
}

// out[i] = f(a[i], b[i]); a broadcast operand has stride 0 where it repeats.
template <typename T, typename Out, typename F>
__global__ void binary_kernel(const T* a, const T* b, Out* out, int64_t n, StridedIndex<2> index, bool contiguous,
                              F f) {
  LORY_GRID_STRIDE_LOOP(i, n) {
    if (contiguous) {
      out[i] = f(a[i], b[i]);
    } else {
      int64_t off[2];
      index.offsets(i, off);
      out[i] = f(a[off[0]], b[off[1]]);
    }
  }
}

// out[i] = cond[i] ? a[i] : b[i]
template <typename T>
__global__ void where_kernel(const bool* cond, const T* a, const T* b, T* out, int64_t n, StridedIndex<3> index,
                             bool contiguous) {
  LORY_GRID_STRIDE_LOOP(i, n) {
    if (contiguous) {
      out[i] = cond[i] ? a[i] : b[i];
    } else {
      int64_t off[3];
      index.offsets(i, off);
      out[i] = cond[off[0]] ? a[off[1]] : b[off[2]];
    }
  }
}

// ---- launchers ----

template <UnaryOp kOp, typename T>
void launch_unary_as(const Tensor& x, const Tensor& out, UnaryScalar scalar, bool contiguous,
                     const StridedIndex<1>& index, cudaStream_t stream) {
  const int64_t n = out.numel();
  if (contiguous && aligned16({x.data_ptr(), out.data_ptr()})) {
    unary_vec_kernel<T><<<blocks_for(n / Vec<T>::kSize + 1), kThreads, 0, stream>>>(
        static_cast<const T*>(x.data_ptr()), static_cast<T*>(out.data_ptr()), n, UnaryFn<kOp, T>{scalar});
    CUDA_CHECK_LAUNCH();
    return;
  }
  unary_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x.data_ptr()),
                                                          static_cast<T*>(out.data_ptr()), n, index, contiguous,
                                                          UnaryFn<kOp, T>{scalar});
  CUDA_CHECK_LAUNCH();
}

template <BinaryOp kOp, typename T>
void launch_binary_as(const Tensor& a, const Tensor& b, const Tensor& out, bool contiguous,
                      const StridedIndex<2>& index, cudaStream_t stream) {
  using Out = typename BinaryFn<kOp, T>::Out;
  const int64_t n = out.numel();
  if constexpr (std::is_same_v<Out, T>) {
    if (contiguous && aligned16({a.data_ptr(), b.data_ptr(), out.data_ptr()})) {
      binary_vec_kernel<T><<<blocks_for(n / Vec<T>::kSize + 1), kThreads, 0, stream>>>(
          static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()), static_cast<T*>(out.data_ptr()),
          n, BinaryFn<kOp, T>{});
      CUDA_CHECK_LAUNCH();
      return;
    }
  }
  binary_kernel<T, Out><<<blocks_for(n), kThreads, 0, stream>>>(
      static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()), static_cast<Out*>(out.data_ptr()), n,
      index, contiguous, BinaryFn<kOp, T>{});
  CUDA_CHECK_LAUNCH();
}

void check_elementwise(const char* op, const Tensor& x, const Tensor& out) {
  LORY_CHECK(out.is_contiguous(), op, ": output must be contiguous, got ", out.describe());
  LORY_CHECK(x.shape() == out.shape(), op, ": input ", x.describe(), " does not have the output's shape ",
             out.describe());
}

void launch_unary(UnaryOp op, const Tensor& x, const Tensor& out, double scalar, cudaStream_t stream) {
  const char* name = op_name(op);
  check_elementwise(name, x, out);
  LORY_CHECK(x.dtype() == out.dtype(), name, ": input ", x.describe(), " and output ", out.describe(),
             " dtypes differ");
  if (out.numel() == 0) return;
  const bool contiguous = x.is_contiguous();
  const auto index = make_strided_index<1>(out.shape(), {&x.strides()}, name);
  const bool integral = scalar == std::trunc(scalar) && std::abs(scalar) < 9.2e18;
  const UnaryScalar s{scalar, integral ? static_cast<int64_t>(scalar) : 0, integral};
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    switch (op) {
#define LORY_UNARY_CASE(OP)                                                \
  case UnaryOp::OP:                                                        \
    launch_unary_as<UnaryOp::OP, T>(x, out, s, contiguous, index, stream); \
    return;
      LORY_UNARY_CASE(neg)
      LORY_UNARY_CASE(exp)
      LORY_UNARY_CASE(log)
      LORY_UNARY_CASE(sqrt)
      LORY_UNARY_CASE(rsqrt)
      LORY_UNARY_CASE(tanh)
      LORY_UNARY_CASE(sigmoid)
      LORY_UNARY_CASE(silu)
      LORY_UNARY_CASE(abs)
      LORY_UNARY_CASE(add_scalar)
      LORY_UNARY_CASE(mul_scalar)
      LORY_UNARY_CASE(pow_scalar)
      LORY_UNARY_CASE(div_scalar)
#undef LORY_UNARY_CASE
    }
    fail("unary: unknown op ", static_cast<int>(op));
  });
}

void launch_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream) {
  const char* name = op_name(op);
  check_elementwise(name, a, out);
  check_elementwise(name, b, out);
  LORY_CHECK(a.dtype() == b.dtype(), name, ": operand dtypes differ: a is ", a.describe(), ", b is ", b.describe());
  const DType want = is_comparison(op) ? DType::boolean : a.dtype();
  LORY_CHECK(out.dtype() == want, name, ": output ", out.describe(), " should be ", dtype_name(want));
  if (out.numel() == 0) return;
  const bool contiguous = a.is_contiguous() && b.is_contiguous();
  const auto index = make_strided_index<2>(out.shape(), {&a.strides(), &b.strides()}, name);
  dispatch_dtype(a.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    switch (op) {
#define LORY_BINARY_CASE(OP)                                                 \
  case BinaryOp::OP:                                                         \
    launch_binary_as<BinaryOp::OP, T>(a, b, out, contiguous, index, stream); \
    return;
      LORY_BINARY_CASE(add)
      LORY_BINARY_CASE(sub)
      LORY_BINARY_CASE(mul)
      LORY_BINARY_CASE(div)
      LORY_BINARY_CASE(maximum)
      LORY_BINARY_CASE(minimum)
      LORY_BINARY_CASE(eq)
      LORY_BINARY_CASE(ne)
      LORY_BINARY_CASE(lt)
      LORY_BINARY_CASE(le)
      LORY_BINARY_CASE(gt)
      LORY_BINARY_CASE(ge)
#undef LORY_BINARY_CASE
    }
    fail("binary: unknown op ", static_cast<int>(op));
  });
}

void launch_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream) {
  check_elementwise("where", cond, out);
  check_elementwise("where", a, out);
  check_elementwise("where", b, out);
  LORY_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", cond.describe());
  LORY_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where: operands ", a.describe(), " and ",
             b.describe(), " must have the output's dtype ", dtype_name(out.dtype()));
  const int64_t n = out.numel();
  if (n == 0) return;
  const bool contiguous = cond.is_contiguous() && a.is_contiguous() && b.is_contiguous();
  const auto index = make_strided_index<3>(out.shape(), {&cond.strides(), &a.strides(), &b.strides()}, "where");
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    where_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const bool*>(cond.data_ptr()), static_cast<const T*>(a.data_ptr()),
        static_cast<const T*>(b.data_ptr()), static_cast<T*>(out.data_ptr()), n, index, contiguous);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  cuda::launch_unary(op, x, out, scalar, enter(op_name(op), {&x, &out}));
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  cuda::launch_binary(op, a, b, out, enter(op_name(op), {&a, &b, &out}));
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  cuda::launch_where(cond, a, b, out, enter("where", {&cond, &a, &b, &out}));
}

}  // namespace lory
