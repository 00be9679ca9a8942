// strided_index.cuh — from a linear element index to each operand's offset.
//
// Elementwise kernels walk the output in row-major order, one linear index i
// per element. An operand that is a view (transposed, narrowed, broadcast
// with stride 0) keeps its element i at sum_d coord_d(i) * stride_d, which
// the kernel computes with one div/mod per dim. The shape and every
// operand's strides travel to the kernel as one small struct passed by value
// (kernel parameters live in constant memory: no allocation, no copy).
//
// Before that, dims are merged where no operand needs them apart: size-1
// dims are dropped, and dims d, d+1 merge when every operand has
// stride[d] == stride[d+1] * size[d+1]. A contiguous tensor becomes one dim,
// a bias broadcast over [B, L, d] becomes [B*L, d] with strides (0, 1), so
// the div/mod chain is short in the common cases.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "tensor/error.h"
#include "tensor/shape.h"

namespace lory::cuda {

constexpr int kMaxDims = 8;
constexpr int kThreads = 256;  // threads per block of the elementwise kernels

template <int N>
struct StridedIndex {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  // off[k] = offset (in elements) of linear element i in operand k.
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t coord = i % sizes[d];
      i /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += coord * strides[k][d];
    }
  }
};

// Builds the index of N operands that all have `shape`; strides[k] are operand k's.
template <int N>
StridedIndex<N> make_strided_index(const Shape& shape, const std::array<const Strides*, N>& strides, const char* op) {
  // Merge from the innermost dim outwards.
  int64_t sizes[64];
  int64_t merged[N][64];
  int n = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool mergeable = n > 0;
    for (int k = 0; k < N && mergeable; ++k) mergeable = (*strides[k])[d] == merged[k][n - 1] * sizes[n - 1];
    if (mergeable) {
      sizes[n - 1] *= shape[d];
      continue;
    }
    LORY_CHECK(n < 64, op, ": too many dims (", shape.size(), ") for the CUDA kernels");
    sizes[n] = shape[d];
    for (int k = 0; k < N; ++k) merged[k][n] = (*strides[k])[d];
    ++n;
  }
  LORY_CHECK(n <= kMaxDims, op, ": a view of shape ", shape_str(shape), " has ", n,
             " dims that cannot be merged; the CUDA kernels take at most ", kMaxDims,
             " (make the operand contiguous first)");
  StridedIndex<N> index;
  index.ndim = n;
  for (int d = 0; d < n; ++d) {  // back to outermost-first
    index.sizes[d] = sizes[n - 1 - d];
    for (int k = 0; k < N; ++k) index.strides[k][d] = merged[k][n - 1 - d];
  }
  return index;
}

// Blocks for a grid-stride loop over n elements: enough to fill an H100
// (132 SMs x 2048 threads) several times over, each thread looping beyond that.
inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 8192));
}

}  // namespace lory::cuda

// for (int64_t i = <this thread's first>; i < n; i += <all threads>)
#define LORY_GRID_STRIDE_LOOP(i, n)                                                      \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
