// softmax.cu — softmax and log_softmax of each row of x: [R, C] -> out: [R, C]
// (Backend::softmax; the CPU twin is tensor/cpu/softmax.cpp).
//
// A group of threads owns a row (a warp for rows up to 1024 elements, the
// whole 256-thread block for longer rows such as a vocabulary) and makes
// three passes over it, each reading the row coalesced:
//   m = max_j x_j                 (subtracting it keeps exp from overflowing:
//                                  softmax(1000 + x) is as exact as softmax(x))
//   s = sum_j exp(x_j - m)        (accumulated in f32, f64 for f64)
//   softmax: exp(x_j - m) / s     log_softmax: x_j - m - log(s)
// The second and third passes re-read the row from L1/L2, which is cheaper
// than the extra exp of an online (single-pass) max/sum for these row sizes.
// Group reductions combine in a fixed order (cuda/block_reduce.cuh), so the
// result is deterministic. A row that is entirely -inf gives NaN, as in PyTorch.
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <int kGroup, typename T>
__global__ void softmax_kernel(const T* x, T* out, int64_t rows, int64_t cols, bool log) {
  using A = float_math_t<T>;
  constexpr int kRowsPerBlock = kThreads / kGroup;
  __shared__ A scratch[kThreads / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  if (row >= rows) return;  // whole groups leave together (see reduce_rows_kernel)
  const int lane = threadIdx.x % kGroup;
  const T* xr = x + row * cols;
  T* yr = out + row * cols;

  A m = lowest<A>();
  for (int64_t c = lane; c < cols; c += kGroup) m = max_nan(m, cast<A>(xr[c]));
  m = group_reduce<kGroup>(
      m, [](A a, A b) { return max_nan(a, b); }, scratch);

  A s = 0;
  for (int64_t c = lane; c < cols; c += kGroup) s += m_exp(cast<A>(xr[c]) - m);
  s = group_reduce<kGroup>(
      s, [](A a, A b) { return a + b; }, scratch);

  if (log) {
    // (x - m) - log(s), not x - (m + log s): for large logits the sum m + log s
    // rounds away the digits log s carries (the CPU kernel's formula too).
    const A log_s = m_log(s);
    for (int64_t c = lane; c < cols; c += kGroup) yr[c] = cast<T>((cast<A>(xr[c]) - m) - log_s);
  } else {
    for (int64_t c = lane; c < cols; c += kGroup) yr[c] = cast<T>(m_exp(cast<A>(xr[c]) - m) / s);
  }
}

void launch_softmax(const Tensor& x, const Tensor& out, bool log, cudaStream_t stream) {
  const int64_t rows = x.size(0), cols = x.size(1);
  if (rows == 0 || cols == 0) return;
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      const T* xp = static_cast<const T*>(x.data_ptr());
      T* yp = static_cast<T*>(out.data_ptr());
      if (cols > 1024) {
        softmax_kernel<kThreads, T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(xp, yp, rows, cols, log);
      } else {
        constexpr int kRowsPerBlock = kThreads / 32;
        const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
        softmax_kernel<32, T><<<blocks, kThreads, 0, stream>>>(xp, yp, rows, cols, log);
      }
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::softmax(const Tensor& x, Tensor& out, bool log) {
  const cudaStream_t stream = enter(log ? "log_softmax" : "softmax", {&x, &out});
  check_softmax_args(x, out, log);
  cuda::launch_softmax(x, out, log, stream);
}

}  // namespace lory
