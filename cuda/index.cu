// index.cu — gather (index_select) and its adjoint, a deterministic scatter-add (index_add).
//
// Both see a tensor as [outer, size, inner] around the indexed dim (an
// embedding table is outer = 1, size = vocab, inner = d).
//
// index_select: out[o, j, i] = x[o, idx[j], i]. Memory-bound; one warp per
// output row (o, j) copies `inner` elements, with 16-byte vectors when the
// rows are contiguous and aligned (an embedding lookup), element by element
// through the strided index otherwise.
//
// index_add: out[o, idx[j], i] += src[o, j, i] (src contiguous), repeated indices added in
// the order j = 0, 1, ... like the CPU kernel, so the result is the same on
// every run and equal to the CPU's bit for bit. Atomics would be faster to
// write but add in whatever order the threads arrive: an embedding gradient
// would then change from run to run. Instead (PyTorch's deterministic
// embedding backward does the same):
//   1. sort the positions j by index, stably (CUB radix sort over only the
//      bits an index can have): equal indices keep their order j;
//   2. run-length encode the sorted indices: one run per distinct row;
//   3. one thread per (o, run, i) walks its run in order and adds.
// Each output element is written by exactly one thread.
//
// Indices are checked in the kernels (cuda/kernel_error.h): a bad one is
// skipped (zeros for select, nothing added for add) and reported at the next
// synchronisation with its value, position and bound.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include <bit>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/kernel_error.h"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename I>
__device__ __forceinline__ int64_t checked_index(const I* idx, int64_t j, int64_t size, KernelError* err,
                                                 KernelCheck check, int32_t dim) {
  const int64_t v = static_cast<int64_t>(idx[j]);
  if (v < 0 || v >= size) {
    report_out_of_range(err, check, v, j, size, dim);
    return -1;
  }
  return v;
}

// ---- index_select ----

// One warp per output row; `inner` elements in 16-byte vectors (V of them
// per vector). x rows start at x + o * outer_stride + idx * dim_stride.
template <typename V, typename I>
__global__ void select_rows_kernel(const V* x, const I* idx, V* out, int64_t outer, int64_t n, int64_t size,
                                   int64_t vecs, int64_t outer_stride_v, int64_t dim_stride_v, KernelError* err,
                                   int32_t dim) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < outer * n;
       row += warps) {
    const int64_t o = row / n, j = row - o * n;
    const int64_t v = checked_index(idx, j, size, err, KernelCheck::index_select, dim);
    V* dst = out + row * vecs;
    if (v < 0) {
      for (int64_t c = lane; c < vecs; c += 32) dst[c] = V{};
      continue;
    }
    const V* src = x + o * outer_stride_v + v * dim_stride_v;
    for (int64_t c = lane; c < vecs; c += 32) dst[c] = src[c];
  }
}

// Any layout: element e of out is (o, j, i); its x offset is the strided
// offset of (o, 0, i) plus idx[j] * dim_stride.
template <typename T, typename I>
__global__ void select_strided_kernel(const T* x, const I* idx, T* out, StridedIndex<1> rest, int64_t numel, int64_t n,
                                      int64_t inner, int64_t size, int64_t dim_stride, KernelError* err, int32_t dim) {
  LORY_GRID_STRIDE_LOOP(e, numel) {
    const int64_t j = (e / inner) % n;
    const int64_t v = checked_index(idx, j, size, err, KernelCheck::index_select, dim);
    int64_t off[1];
    rest.offsets(e, off);
    out[e] = v < 0 ? T{} : x[off[0] + v * dim_stride];
  }
}

// ---- index_add ----

// keys[j] = idx[j] (size for a bad index: it sorts last and is skipped), pos[j] = j.
template <typename I>
__global__ void index_keys_kernel(const I* idx, int64_t n, int64_t size, int64_t* keys, int64_t* pos,
                                  KernelError* err, int32_t dim) {
  LORY_GRID_STRIDE_LOOP(j, n) {
    const int64_t v = checked_index(idx, j, size, err, KernelCheck::index_add, dim);
    keys[j] = v < 0 ? size : v;
    pos[j] = j;
  }
}

// Work item = (o, run, chunk of kThreads columns): the block's threads take
// the chunk's columns, so reads of src rows and writes of out rows coalesce.
// The number of runs is on the device (from the run-length encode), so the
// grid is sized for the worst case and loops.
template <typename T>
__global__ void add_runs_kernel(T* out, const T* src, const int64_t* run_keys, const int64_t* run_starts,
                                const int64_t* run_lengths, const int64_t* num_runs_ptr, const int64_t* sorted_pos,
                                int64_t outer, int64_t n, int64_t size, int64_t inner) {
  using C = acc_t<T>;
  const int64_t num_runs = *num_runs_ptr;
  const int64_t chunks = (inner + blockDim.x - 1) / blockDim.x;
  const int64_t items = outer * num_runs * chunks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t chunk = item % chunks, run = (item / chunks) % num_runs, o = item / (chunks * num_runs);
    const int64_t key = run_keys[run];
    const int64_t i = chunk * blockDim.x + threadIdx.x;
    if (key >= size || i >= inner) continue;  // the bad-index run, or past the row's end
    T* dst = out + (o * size + key) * inner + i;
    T acc = *dst;
    const int64_t first = run_starts[run], last = first + run_lengths[run];
    for (int64_t q = first; q < last; ++q)  // in order of j: the CPU's order and rounding
      acc = cast<T>(cast<C>(acc) + cast<C>(src[(o * n + sorted_pos[q]) * inner + i]));
    *dst = acc;
  }
}

Tensor scratch(int64_t n, DType t, Device d) { return empty({n}, TensorOptions{t, d, false}); }

template <typename F>
void dispatch_index_type(const Tensor& idx, const char* op, F&& f) {
  if (idx.dtype() == DType::i64)
    f(TypeTag<int64_t>{});
  else if (idx.dtype() == DType::i32)
    f(TypeTag<int32_t>{});
  else
    fail(op, ": index must be i32 or i64, got ", idx.describe());
}

}  // namespace

void launch_index_select(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& out, KernelError* err,
                         cudaStream_t stream) {
  const DimSplit s = check_index_select_args(x, dim, idx, out);
  const int64_t n = idx.numel();
  if (out.numel() == 0) return;
  const int32_t d32 = static_cast<int32_t>(dim);

  // The dims after `dim` contiguous, and those before it one stride apart?
  bool inner_contiguous = true;
  for (int64_t d = x.dim() - 1, expect = 1; d > dim; --d) {
    if (x.size(d) != 1 && x.stride(d) != expect) inner_contiguous = false;
    expect *= x.size(d);
  }
  int64_t outer_stride = 0;
  bool outer_uniform = true;
  for (int64_t d = dim - 1, expect = -1; d >= 0; --d) {
    if (x.size(d) == 1) continue;
    if (expect < 0) {
      outer_stride = x.stride(d);
    } else if (x.stride(d) != expect) {
      outer_uniform = false;
    }
    expect = x.stride(d) * x.size(d);
  }
  const size_t elem = dtype_size(x.dtype());
  const bool vec16 = inner_contiguous && outer_uniform && (s.inner * elem) % 16 == 0 &&
                     (x.stride(dim) * elem) % 16 == 0 && (outer_stride * elem) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0;
  dispatch_index_type(idx, "index_select", [&](auto it) {
    using I = typename decltype(it)::type;
    const I* ip = static_cast<const I*>(idx.data_ptr());
    if (vec16) {
      const int64_t per = static_cast<int64_t>(16 / elem);
      const int64_t rows = s.outer * n;
      const auto blocks = static_cast<unsigned>(std::clamp<int64_t>((rows + 7) / 8, 1, 8192));
      select_rows_kernel<int4, I><<<blocks, kThreads, 0, stream>>>(
          static_cast<const int4*>(x.data_ptr()), ip, static_cast<int4*>(out.data_ptr()), s.outer, n, s.size,
          s.inner / per, outer_stride / per, x.stride(dim) / per, err, d32);
      CUDA_CHECK_LAUNCH();
      return;
    }
    // Strides of x with the indexed dim's stride zeroed: the offset of (o, 0, i).
    Strides rest_strides = x.strides();
    rest_strides[dim] = 0;
    const StridedIndex<1> rest = make_strided_index<1>(out.shape(), {&rest_strides}, "index_select");
    dispatch_dtype(x.dtype(), [&](auto t) {
      using T = typename decltype(t)::type;
      select_strided_kernel<T, I><<<blocks_for(out.numel()), kThreads, 0, stream>>>(
          static_cast<const T*>(x.data_ptr()), ip, static_cast<T*>(out.data_ptr()), rest, out.numel(), n, s.inner,
          s.size, x.stride(dim), err, d32);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void launch_index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src, KernelError* err,
                      cudaStream_t stream) {
  const DimSplit s = check_index_add_args(out, dim, idx, src);
  const int64_t n = idx.numel();
  if (src.numel() == 0) return;
  // CUB's run-length encode counts items in an int.
  LORY_CHECK(n <= INT32_MAX, "index_add: ", n, " indices exceed the 2^31 - 1 one CUDA call handles; split the call");
  const Device dev = out.device();

  // 1. keys and positions; 2. stable sort by key over the bits a key can have.
  Tensor keys = scratch(n, DType::i64, dev), pos = scratch(n, DType::i64, dev);
  Tensor sorted_keys = scratch(n, DType::i64, dev), sorted_pos = scratch(n, DType::i64, dev);
  dispatch_index_type(idx, "index_add", [&](auto it) {
    using I = typename decltype(it)::type;
    index_keys_kernel<I><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const I*>(idx.data_ptr()), n, s.size,
                                                                 keys.data<int64_t>(), pos.data<int64_t>(), err,
                                                                 static_cast<int32_t>(dim));
    CUDA_CHECK_LAUNCH();
  });
  const int end_bit = std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(s.size))));
  Tensor run_keys = scratch(n, DType::i64, dev), run_lengths = scratch(n, DType::i64, dev);
  Tensor run_starts = scratch(n, DType::i64, dev), num_runs = scratch(1, DType::i64, dev);
  size_t sort_bytes = 0, rle_bytes = 0, scan_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys.data<int64_t>(), sorted_keys.data<int64_t>(),
                                             pos.data<int64_t>(), sorted_pos.data<int64_t>(), n, 0, end_bit,
                                             stream));
  CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(nullptr, rle_bytes, sorted_keys.data<int64_t>(),
                                                run_keys.data<int64_t>(), run_lengths.data<int64_t>(),
                                                num_runs.data<int64_t>(), n, stream));
  CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, run_lengths.data<int64_t>(),
                                           run_starts.data<int64_t>(), n, stream));
  Tensor temp = scratch(static_cast<int64_t>(std::max({sort_bytes, rle_bytes, scan_bytes, size_t{1}})), DType::u8,
                        dev);
  // The scan below reads lengths past num_runs, which the encode leaves unset: zero them first.
  CUDA_CHECK(cudaMemsetAsync(run_lengths.data_ptr(), 0, static_cast<size_t>(n) * sizeof(int64_t), stream));
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), sort_bytes, keys.data<int64_t>(),
                                             sorted_keys.data<int64_t>(), pos.data<int64_t>(),
                                             sorted_pos.data<int64_t>(), n, 0, end_bit, stream));
  // 3. runs of equal keys, and where each starts in the sorted order (only
  // the first num_runs starts are used).
  CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(temp.data_ptr(), rle_bytes, sorted_keys.data<int64_t>(),
                                                run_keys.data<int64_t>(), run_lengths.data<int64_t>(),
                                                num_runs.data<int64_t>(), n, stream));
  CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.data_ptr(), scan_bytes, run_lengths.data<int64_t>(),
                                           run_starts.data<int64_t>(), n, stream));
  // 4. one thread per (o, run, column).
  const int64_t chunks = (s.inner + kThreads - 1) / kThreads;
  const auto blocks = static_cast<unsigned>(std::clamp<int64_t>(s.outer * n * chunks, 1, 132 * 16));
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    add_runs_kernel<T><<<blocks, kThreads, 0, stream>>>(
        static_cast<T*>(out.data_ptr()), static_cast<const T*>(src.data_ptr()), run_keys.data<int64_t>(),
        run_starts.data<int64_t>(), run_lengths.data<int64_t>(), num_runs.data<int64_t>(), sorted_pos.data<int64_t>(),
        s.outer, n, s.size, s.inner);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lory::cuda

namespace lory {

void CudaBackend::index_select(const Tensor& x, int64_t dim, const Tensor& idx, Tensor& out) {
  const cudaStream_t stream = enter("index_select", {&x, &idx, &out});
  cuda::launch_index_select(x, dim, idx, out, cuda::kernel_error_slot(index_), stream);
}

void CudaBackend::index_add(Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  const cudaStream_t stream = enter("index_add", {&out, &idx, &src});
  cuda::launch_index_add(out, dim, idx, src, cuda::kernel_error_slot(index_), stream);
}

}  // namespace lory
