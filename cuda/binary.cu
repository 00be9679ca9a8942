// binary.cu — elementwise functions of two tensors: arithmetic and
// comparisons, out = f(a, b) (Backend::binary; the CPU twin is
// tensor/cpu/binary.cpp).
//
// A grid-stride loop over the contiguous output; a and b are read at their
// strided offsets (cuda/strided_index.cuh; a broadcast operand has stride 0),
// or at i directly when both are contiguous. When every operand is
// contiguous and 16-byte aligned, non-comparison ops take a second kernel
// that moves 16 bytes per load and store (cuda/vec.cuh). The op is a template
// parameter, so each (op, dtype) pair compiles to its own straight-line loop.
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "cuda/vec.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// ---- the functions ----

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

// ---- launchers ----

template <BinaryOp kOp, typename T>
void launch_binary_as(const Tensor& a, const Tensor& b, const Tensor& out, bool contiguous,
                      const StridedIndex<2>& index, cudaStream_t stream) {
  using Out = typename BinaryFn<kOp, T>::Out;
  const int64_t n = out.numel();
  if constexpr (std::is_same_v<Out, T>) {
    if (contiguous && aligned16({a.data_ptr(), b.data_ptr(), out.data_ptr()})) {
      binary_vec_kernel<T><<<blocks_for(n / Vec<T>::kSize + 1), kThreads, 0, stream>>>(
          static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()), static_cast<T*>(out.data_ptr()), n,
          BinaryFn<kOp, T>{});
      CUDA_CHECK_LAUNCH();
      return;
    }
  }
  binary_kernel<T, Out><<<blocks_for(n), kThreads, 0, stream>>>(
      static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()), static_cast<Out*>(out.data_ptr()), n,
      index, contiguous, BinaryFn<kOp, T>{});
  CUDA_CHECK_LAUNCH();
}

void launch_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream) {
  const char* name = op_name(op);
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

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const cudaStream_t stream = enter(op_name(op), {&a, &b, &out});
  check_binary_args(op, a, b, out);
  cuda::launch_binary(op, a, b, out, stream);
}

}  // namespace lory
