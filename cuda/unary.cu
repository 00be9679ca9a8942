// unary.cu — elementwise functions of one tensor: out = f(x), x any strides
// (Backend::unary; the CPU twin is tensor/cpu/unary.cpp).
//
// A grid-stride loop over the contiguous output; x is read at its strided
// offsets (cuda/strided_index.cuh), or at i directly when it is contiguous.
// When x and out are contiguous and 16-byte aligned (the common case in a
// model: activations, gradients), a second kernel moves 16 bytes per load
// and store (cuda/vec.cuh), which is what reaching the memory bandwidth takes
// for 2-byte types. The op is a template parameter, so each (op, dtype) pair
// compiles to its own straight-line loop.
#include <cmath>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "cuda/vec.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

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

void launch_unary(UnaryOp op, const Tensor& x, const Tensor& out, double scalar, cudaStream_t stream) {
  const char* name = op_name(op);
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

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  const cudaStream_t stream = enter(op_name(op), {&x, &out});
  check_unary_args(op, x, out);
  cuda::launch_unary(op, x, out, scalar, stream);
}

}  // namespace lory
