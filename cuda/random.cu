// random.cu — uniform and normal numbers from the counter-based Philox
// generator (Backend::random; the CPU twin is tensor/cpu/random.cpp, and both
// call the same tensor/philox.h, so they draw the same numbers).
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// out[i] = a + (b - a) * U_i (uniform) or a + b * N_i (normal), where U_i and
// N_i are philox::uniform_at / normal_at of (seed, offset, i): the same
// header functions the CPU calls, evaluated in f64 and rounded once, so both
// devices draw the same numbers. Each element is independent, so any thread
// computes any element; the four words of one Philox call are recomputed per
// element, which costs ALU the memory-bound kernel has to spare.
template <typename T>
__global__ void random_kernel(T* out, int64_t n, bool normal, uint64_t seed, uint64_t offset, double a, double b) {
  LORY_GRID_STRIDE_LOOP(i, n) {
    const uint64_t k = static_cast<uint64_t>(i);
    const double v =
        normal ? a + b * philox::normal_at(seed, offset, k) : a + (b - a) * philox::uniform_at(seed, offset, k);
    out[i] = cast<T>(v);
  }
}

void launch_random(const Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b,
                   cudaStream_t stream) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    random_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<T*>(out.data_ptr()), n,
                                                             dist == RandomDist::normal, seed, offset, a, b);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) {
  const cudaStream_t stream = enter("random", {&out});
  check_fill_args(out, "random");
  cuda::launch_random(out, dist, seed, offset, a, b, stream);
}

}  // namespace lory
