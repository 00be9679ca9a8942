// where.cu — out = cond ? a : b elementwise (Backend::where; the CPU twin is
// tensor/cpu/where.cpp). cond, a and b are views of out's shape (stride 0
// where broadcast), read at their strided offsets (cuda/strided_index.cuh),
// or at i directly when all are contiguous. Elements are moved, never
// converted.
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

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

void launch_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream) {
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

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const cudaStream_t stream = enter("where", {&cond, &a, &b, &out});
  check_where_args(cond, a, b, out);
  cuda::launch_where(cond, a, b, out, stream);
}

}  // namespace lory
