// reduce.cu — sum, max and min of each row of x: [O, R] (any strides) -> out: [O]
// (Backend::reduce; the CPU twin is tensor/cpu/reduce.cpp).
//
// Three kernels, chosen by layout, all deterministic: each output is
// combined in an order fixed by the shapes alone (no atomics, nothing that
// depends on scheduling or on the GPU model), so a run reproduces bit for bit.
//
//   * reduce_rows_kernel — a row's elements are adjacent (stride 1): a group
//     of threads (a warp, or the whole 256-thread block for long rows) reads
//     the row coalesced, each thread folding every kGroup-th element, then the
//     group combines (cuda/block_reduce.cuh).
//   * reduce_cols_kernel — the rows are adjacent instead (stride_o == 1, e.g.
//     a bias gradient summing [B*L, d] over B*L): thread x of a 32x8 block
//     owns one row, so a warp reads 32 neighbouring rows at once (coalesced),
//     and the 8 y-threads split the row's elements, combined in y order.
//     Also used for very short rows, where a warp per row would idle.
//   * When there are too few rows to fill the GPU, either kernel splits each
//     row into chunks (grid.y) that write partial results to scratch memory,
//     and reduce_partials_kernel folds the chunks in chunk order.
//
// Accumulation is in acc_t: f32 for f32/bf16/f16, f64 for f64, int64 for
// integers. max/min propagate NaN.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/kernels.h"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename A>
struct SumOp {
  __device__ static A identity() { return A(0); }
  __device__ A operator()(A a, A b) const { return a + b; }
};
template <typename A>
struct MaxOp {
  __device__ static A identity() { return lowest<A>(); }
  __device__ A operator()(A a, A b) const { return max_nan(a, b); }
};
template <typename A>
struct MinOp {
  __device__ static A identity() { return highest<A>(); }
  __device__ A operator()(A a, A b) const { return min_nan(a, b); }
};

// Row `row` of x, elements [c0, c1): group of kGroup threads per row, 256/kGroup
// rows per block, grid.y chunks per row. Writes out[row] when there is one
// chunk, else partial[chunk * rows + row].
template <int kGroup, typename T, typename A, typename Op>
__global__ void reduce_rows_kernel(const T* x, T* out, A* partial, int64_t rows, int64_t cols, int64_t stride_o,
                                   int64_t stride_r, int64_t chunk, Op op) {
  constexpr int kRowsPerBlock = kThreads / kGroup;
  __shared__ A scratch[kThreads / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  // With kGroup == kThreads the whole block leaves together, so the
  // __syncthreads in group_reduce is reached by all or none of its threads.
  if (row >= rows) return;
  const int lane = threadIdx.x % kGroup;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * chunk, c1 = min(cols, c0 + chunk);
  const T* xr = x + row * stride_o;
  A acc = Op::identity();
  for (int64_t c = c0 + lane; c < c1; c += kGroup) acc = op(acc, cast<A>(xr[c * stride_r]));
  acc = group_reduce<kGroup>(acc, op, scratch);
  if (lane == 0) {
    if (partial)
      partial[blockIdx.y * rows + row] = acc;
    else
      out[row] = cast<T>(acc);
  }
}

constexpr int kColsX = 32, kColsY = 8;  // reduce_cols_kernel's block: 32 rows x 8 lanes per row

template <typename T, typename A, typename Op>
__global__ void reduce_cols_kernel(const T* x, T* out, A* partial, int64_t rows, int64_t cols, int64_t stride_o,
                                   int64_t stride_r, int64_t chunk, Op op) {
  __shared__ A scratch[kColsY][kColsX + 1];  // +1: no bank conflicts on the column read below
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kColsX + threadIdx.x;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * chunk, c1 = min(cols, c0 + chunk);
  A acc = Op::identity();
  if (row < rows)
    for (int64_t c = c0 + threadIdx.y; c < c1; c += kColsY) acc = op(acc, cast<A>(x[row * stride_o + c * stride_r]));
  scratch[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && row < rows) {
    A r = scratch[0][threadIdx.x];
#pragma unroll
    for (int y = 1; y < kColsY; ++y) r = op(r, scratch[y][threadIdx.x]);
    if (partial)
      partial[blockIdx.y * rows + row] = r;
    else
      out[row] = cast<T>(r);
  }
}

// out[row] = fold of partial[0..chunks)[row], in chunk order.
template <typename T, typename A, typename Op>
__global__ void reduce_partials_kernel(const A* partial, T* out, int64_t rows, int64_t chunks, Op op) {
  LORY_GRID_STRIDE_LOOP(row, rows) {
    A r = partial[row];
    for (int64_t k = 1; k < chunks; ++k) r = op(r, partial[k * rows + row]);
    out[row] = cast<T>(r);
  }
}

// How many chunks to split each row into: enough blocks to fill the GPU
// (~1024 blocks; a constant, not the SM count, so the result does not depend
// on the GPU model), each chunk at least kMinChunk elements long.
int64_t chunks_for(int64_t blocks, int64_t cols) {
  constexpr int64_t kTargetBlocks = 1024, kMinChunk = 2048;
  if (blocks >= kTargetBlocks / 4) return 1;
  const int64_t wanted = (kTargetBlocks + blocks - 1) / blocks;
  return std::clamp<int64_t>(std::min(wanted, cols / kMinChunk), 1, 1024);
}

template <typename T, typename A, typename Op>
void reduce_as(const Tensor& x, const Tensor& out, Op op, CachingAllocator& allocator, cudaStream_t stream) {
  const int64_t rows = x.size(0), cols = x.size(1);
  const int64_t so = x.stride(0), sr = x.stride(1);
  const T* xp = static_cast<const T*>(x.data_ptr());
  T* outp = static_cast<T*>(out.data_ptr());

  // Adjacent rows with spread-out elements: a thread per row reads coalesced.
  // Rows of at most 16 elements: a warp per row would leave most lanes idle.
  const bool by_columns = (sr != 1 && so == 1 && rows > 1) || cols <= 16;
  const int64_t row_blocks = by_columns     ? (rows + kColsX - 1) / kColsX
                             : cols >= 1024 ? rows
                                            : (rows + kThreads / 32 - 1) / (kThreads / 32);
  int64_t chunks = chunks_for(row_blocks, cols);
  const int64_t chunk = (cols + chunks - 1) / chunks;
  chunks = (cols + chunk - 1) / chunk;  // no empty chunk

  // Scratch for the partial results. Returned to the allocator right after
  // the launches: the next user of the block is queued behind them on the
  // same stream (cuda/caching_allocator.h).
  A* partial = nullptr;
  if (chunks > 1) partial = static_cast<A*>(allocator.allocate(static_cast<size_t>(chunks * rows) * sizeof(A)));

  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(chunks));
  if (by_columns) {
    reduce_cols_kernel<T, A>
        <<<grid, dim3(kColsX, kColsY), 0, stream>>>(xp, outp, partial, rows, cols, so, sr, chunk, op);
  } else if (cols >= 1024) {
    reduce_rows_kernel<kThreads, T, A><<<grid, kThreads, 0, stream>>>(xp, outp, partial, rows, cols, so, sr, chunk, op);
  } else {
    reduce_rows_kernel<32, T, A><<<grid, kThreads, 0, stream>>>(xp, outp, partial, rows, cols, so, sr, chunk, op);
  }
  CUDA_CHECK_LAUNCH();
  if (partial) {
    reduce_partials_kernel<T, A><<<blocks_for(rows), kThreads, 0, stream>>>(partial, outp, rows, chunks, op);
    CUDA_CHECK_LAUNCH();
    allocator.deallocate(partial);
  }
}

void launch_reduce(ReduceOp op, const Tensor& x, const Tensor& out, CachingAllocator& allocator, cudaStream_t stream) {
  const char* name = op_name(op);
  if (x.size(0) == 0) return;
  if (x.size(1) == 0) {  // a sum over no elements (check_reduce_args refuses max and min)
    launch_fill(out, 0.0, stream);
    return;
  }
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = typename decltype(t)::type;
    using A = acc_t<T>;
    switch (op) {
      case ReduceOp::sum:
        reduce_as<T, A>(x, out, SumOp<A>{}, allocator, stream);
        return;
      case ReduceOp::max:
        reduce_as<T, A>(x, out, MaxOp<A>{}, allocator, stream);
        return;
      case ReduceOp::min:
        reduce_as<T, A>(x, out, MinOp<A>{}, allocator, stream);
        return;
    }
    fail(name, ": unknown reduction ", static_cast<int>(op));
  });
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::reduce(ReduceOp op, const Tensor& x, Tensor& out) {
  const cudaStream_t stream = enter(op_name(op), {&x, &out});
  check_reduce_args(op, x, out);
  cuda::launch_reduce(op, x, out, allocator_, stream);
}

}  // namespace lory
