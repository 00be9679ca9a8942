// block_reduce.cuh — combining one value per thread across a warp or a block,
// in a fixed order, so results are bitwise reproducible run to run.
//
// Within a warp: a butterfly of __shfl_xor_sync. At every step lane l
// combines its value with lane l^m's, so every lane ends with the whole
// warp's result (bit-identical for a sum, since a+b == b+a exactly in IEEE
// arithmetic; a max may differ in the sign of a zero, which no caller can
// observe). Across the warps of a block: lane 0 of each warp writes its
// result to shared memory and every thread folds those in warp order. No
// atomics anywhere, so the order of operations depends only on the block
// size, never on scheduling: results are reproducible run to run.
#pragma once

namespace lory::cuda {

template <typename A, typename Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
#pragma unroll
  for (int mask = 16; mask > 0; mask >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, mask));
  return v;
}

// Reduces v over groups of kGroup consecutive threads (32: each warp alone;
// a multiple of 32: the whole block, which must then have exactly kGroup
// threads). Every thread of the group gets the result. `scratch` holds at
// least kGroup/32 values; it may be reused right after the call returns.
template <int kGroup, typename A, typename Op>
__device__ __forceinline__ A group_reduce(A v, Op op, A* scratch) {
  static_assert(kGroup % 32 == 0, "groups are whole warps");
  v = warp_reduce(v, op);
  if constexpr (kGroup == 32) {
    return v;
  } else {
    constexpr int kWarps = kGroup / 32;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    A r = scratch[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) r = op(r, scratch[w]);
    __syncthreads();  // everyone has read scratch before anyone writes it again
    return r;
  }
}

}  // namespace lory::cuda
