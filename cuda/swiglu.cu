// swiglu.cu — SwiGLU's gate, fused: out = silu(gate) * up over [R, F], and its
// backward (dgate, dup from dy, gate, up; see tensor/backend.h).
//
// Memory-bound: two reads and one write per element, no intermediate. Each
// thread handles one element of the contiguous output; gate and up are read
// at row r * row_stride + c, so the two halves of one fused [R, 2F]
// projection need no copy. Math is f32 for bf16/f16 (f64 for f64), rounded
// once on store, like the CPU kernel.
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename T>
__global__ void swiglu_kernel(const T* gate, int64_t gate_row_stride, const T* up, int64_t up_row_stride, T* out,
                              int64_t rows, int64_t cols) {
  using M = float_math_t<T>;
  const int64_t n = rows * cols;
  LORY_GRID_STRIDE_LOOP(i, n) {
    const int64_t r = i / cols, c = i - r * cols;
    const M g = cast<M>(gate[r * gate_row_stride + c]);
    const M u = cast<M>(up[r * up_row_stride + c]);
    out[i] = cast<T>(g / (M(1) + m_exp(-g)) * u);
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* dy, const T* gate, int64_t gate_row_stride, const T* up,
                                       int64_t up_row_stride, T* dgate, T* dup, int64_t rows, int64_t cols) {
  using M = float_math_t<T>;
  const int64_t n = rows * cols;
  LORY_GRID_STRIDE_LOOP(i, n) {
    const int64_t r = i / cols, c = i - r * cols;
    const M g = cast<M>(gate[r * gate_row_stride + c]);
    const M u = cast<M>(up[r * up_row_stride + c]);
    const M d = cast<M>(dy[i]);
    const M s = M(1) / (M(1) + m_exp(-g));
    dgate[i] = cast<T>(d * u * s * (M(1) + g * (M(1) - s)));
    dup[i] = cast<T>(d * g * s);
  }
}

void launch_swiglu(const Tensor& gate, const Tensor& up, const Tensor& out, cudaStream_t stream) {
  check_swiglu_args(gate, up, out);
  const int64_t rows = out.size(0), cols = out.size(1), n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      swiglu_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const T*>(gate.data_ptr()), gate.stride(0),
                                                               static_cast<const T*>(up.data_ptr()), up.stride(0),
                                                               static_cast<T*>(out.data_ptr()), rows, cols);
      CUDA_CHECK_LAUNCH();
    }
  });
}

void launch_swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                            const Tensor& dup, cudaStream_t stream) {
  check_swiglu_backward_args(dy, gate, up, dgate, dup);
  const int64_t rows = dy.size(0), cols = dy.size(1), n = dy.numel();
  if (n == 0) return;
  dispatch_dtype(dy.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      swiglu_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
          static_cast<const T*>(dy.data_ptr()), static_cast<const T*>(gate.data_ptr()), gate.stride(0),
          static_cast<const T*>(up.data_ptr()), up.stride(0), static_cast<T*>(dgate.data_ptr()),
          static_cast<T*>(dup.data_ptr()), rows, cols);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cuda::launch_swiglu(gate, up, out, enter("swiglu", {&gate, &up, &out}));
}

void CudaBackend::swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up, Tensor& dgate,
                                  Tensor& dup) {
  cuda::launch_swiglu_backward(dy, gate, up, dgate, dup,
                               enter("swiglu_backward", {&dy, &gate, &up, &dgate, &dup}));
}

}  // namespace lory
