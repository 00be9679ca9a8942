// topk.cu — the positions of each row's k largest values (Backend::topk; the
// CPU twin is tensor/cpu/topk.cpp, which it matches index for index).
//
// Expert Choice routing asks it for each expert's top-k tokens: R = E rows of
// n scores, n up to every token of a micro-batch. One device-wide radix sort
// does all rows at once:
//   1. a 64-bit key per entry, row in the high bits, ~topk_key(value) in the
//      low 32 (so ascending key order is: row by row, largest value first);
//      the entry's position in its row rides along as the value;
//   2. CUB's radix sort over only the bits a key can have — stable, so equal
//      values keep position order, the CPU kernel's tie rule;
//   3. the first k positions of every row copied out (one 2-D memcpy).
// The sort is O(R n) work with no per-row block limits, whatever n is.
#include <cub/device/device_radix_sort.cuh>

#include <bit>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename T>
__global__ void topk_keys_kernel(const T* x, int64_t total, int64_t n, uint64_t* keys, int64_t* positions) {
  LORY_GRID_STRIDE_LOOP(i, total) {
    const int64_t row = i / n;
    const uint32_t rank = ~topk_key(cast<float>(x[i]));  // larger value -> smaller key
    keys[i] = (static_cast<uint64_t>(row) << 32) | rank;
    positions[i] = i - row * n;
  }
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::topk(const Tensor& x, int64_t k, Tensor& indices) {
  const cudaStream_t stream = enter("topk", {&x, &indices});
  check_topk_args(x, k, indices);
  const int64_t R = x.size(0), n = x.size(1), total = R * n;
  LORY_CHECK(R < (int64_t{1} << 31), "topk: ", R, " rows exceed the 2^31 the 64-bit sort key holds");
  const TensorOptions u64{DType::i64, x.device(), false};
  Tensor keys = empty({total}, u64), sorted_keys = empty({total}, u64);
  Tensor positions = empty({total}, u64), sorted_positions = empty({total}, u64);
  auto* key_in = static_cast<uint64_t*>(keys.data_ptr());
  auto* key_out = static_cast<uint64_t*>(sorted_keys.data_ptr());
  cuda::dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || cuda::is_half_v<T>) {
      cuda::topk_keys_kernel<T><<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
          static_cast<const T*>(x.data_ptr()), total, n, key_in, positions.data<int64_t>());
      CUDA_CHECK_LAUNCH();
    } else {
      fail("topk: expected a floating dtype, got ", x.describe());
    }
  });
  // Only the bits a key can have: 32 for the value, enough above them for R - 1.
  const int end_bit = 32 + static_cast<int>(std::bit_width(static_cast<uint64_t>(R - 1)));
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, key_in, key_out, positions.data<int64_t>(),
                                             sorted_positions.data<int64_t>(), total, 0, end_bit, stream));
  Tensor temp = empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, {DType::u8, x.device(), false});
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), bytes, key_in, key_out, positions.data<int64_t>(),
                                             sorted_positions.data<int64_t>(), total, 0, end_bit, stream));
  // Row r's winners are sorted_positions[r n, r n + k).
  CUDA_CHECK(cudaMemcpy2DAsync(indices.data_ptr(), static_cast<size_t>(k) * sizeof(int64_t),
                               sorted_positions.data_ptr(), static_cast<size_t>(n) * sizeof(int64_t),
                               static_cast<size_t>(k) * sizeof(int64_t), static_cast<size_t>(R),
                               cudaMemcpyDeviceToDevice, stream));
}

}  // namespace lory
