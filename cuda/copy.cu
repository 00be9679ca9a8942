// copy.cu — strided copies with dtype conversion, fill, and arange
// (Backend::copy, fill, arange; the CPU twin is tensor/cpu/copy.cpp). The
// launchers launch_copy and launch_fill are also building blocks of other
// kernels' host code (cuda/kernels.h); those callers pass operands that
// already meet the contract, so the checks sit in the Backend methods.
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/kernels.h"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"

namespace lory::cuda {

namespace {

// dst[i] = cast(src[i]) for every element i of dst's shape. Both sides may be
// views (transposed, narrowed, or src broadcast); the contiguous fast path
// skips the index arithmetic. Memory-bound: one read and one write per element.
template <typename S, typename D>
__global__ void copy_kernel(const S* src, D* dst, int64_t n, StridedIndex<2> index, bool contiguous) {
  LORY_GRID_STRIDE_LOOP(i, n) {
    if (contiguous) {
      dst[i] = cast<D>(src[i]);
    } else {
      int64_t off[2];
      index.offsets(i, off);
      dst[off[0]] = cast<D>(src[off[1]]);
    }
  }
}

// out[i] = value. Each thread converts the value once, with the device's
// rounding (through f32 for bf16/f16, like every other conversion here).
template <typename T>
__global__ void fill_kernel(T* out, int64_t n, double value) {
  const T v = cast<T>(value);
  LORY_GRID_STRIDE_LOOP(i, n) { out[i] = v; }
}

// out[i] = start + i * step, in f64 and rounded once (as the CPU does), so
// position ids in i64 are exact.
template <typename T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  LORY_GRID_STRIDE_LOOP(i, n) { out[i] = cast<T>(start + static_cast<double>(i) * step); }
}

void launch_arange(const Tensor& out, double start, double step, cudaStream_t stream) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    arange_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<T*>(out.data_ptr()), n, start, step);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void launch_copy(const Tensor& src, const Tensor& dst, cudaStream_t stream) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const bool contiguous = src.is_contiguous() && dst.is_contiguous();
  if (contiguous && src.dtype() == dst.dtype()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const auto index = make_strided_index<2>(dst.shape(), {&dst.strides(), &src.strides()}, "copy");
  dispatch_dtype(src.dtype(), [&](auto s) {
    using S = typename decltype(s)::type;
    dispatch_dtype(dst.dtype(), [&](auto d) {
      using D = typename decltype(d)::type;
      copy_kernel<S, D><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const S*>(src.data_ptr()),
                                                                static_cast<D*>(dst.data_ptr()), n, index, contiguous);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void launch_fill(const Tensor& out, double value, cudaStream_t stream) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    fill_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<T*>(out.data_ptr()), n, value);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lory::cuda

namespace lory {

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  const cudaStream_t stream = enter("copy", {&src, &dst});
  check_copy_args(src, dst);
  cuda::launch_copy(src, dst, stream);
}

void CudaBackend::fill(Tensor& out, double value) {
  const cudaStream_t stream = enter("fill", {&out});
  check_fill_args(out, "fill");
  cuda::launch_fill(out, value, stream);
}

void CudaBackend::arange(Tensor& out, double start, double step) {
  const cudaStream_t stream = enter("arange", {&out});
  check_fill_args(out, "arange");
  cuda::launch_arange(out, start, step, stream);
}

}  // namespace lory
