// segment_mean.cu — the mean hidden state of each routing segment (Lory
// §3.1; Backend::segment_mean, the CPU twin is tensor/cpu/segment_mean.cpp):
// x [B, L, d] -> out [B, N, d], N = ceil(L/T), the last segment averaged over
// its real tokens.
//
// One thread per output element (segment, channel): consecutive threads take
// consecutive channels, so each of the T token rows it sums is read
// coalesced, and every sum runs in token order (deterministic). The work is
// one read of x, about the cost of a copy.
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename T>
__global__ void segment_mean_kernel(const T* x, T* out, int64_t B, int64_t L, int64_t d, int64_t T_, int64_t N) {
  using A = float_math_t<T>;
  LORY_GRID_STRIDE_LOOP(e, B * N * d) {
    const int64_t c = e % d, seg = e / d, k = seg % N, b = seg / N;
    const int64_t t0 = k * T_, t1 = min_i64(L, t0 + T_);
    A acc = 0;
    for (int64_t t = t0; t < t1; ++t) acc += cast<A>(x[(b * L + t) * d + c]);
    out[e] = cast<T>(acc / static_cast<A>(t1 - t0));
  }
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::segment_mean(const Tensor& x, int64_t T, Tensor& out) {
  const cudaStream_t stream = enter("segment_mean", {&x, &out});
  const int64_t N = check_segment_mean_args(x, T, out);
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2);
  if (out.numel() == 0) return;
  cuda::dispatch_dtype(x.dtype(), [&](auto tag) {
    using E = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<E> || cuda::is_half_v<E>) {
      cuda::segment_mean_kernel<E><<<cuda::blocks_for(out.numel()), cuda::kThreads, 0, stream>>>(
          static_cast<const E*>(x.data_ptr()), static_cast<E*>(out.data_ptr()), B, L, d, T, N);
      CUDA_CHECK_LAUNCH();
    } else {
      fail("segment_mean: expected a floating dtype, got ", x.describe());
    }
  });
}

}  // namespace lory
