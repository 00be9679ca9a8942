// optimizer.cu — the fused AdamW update over every parameter in one launch,
// and the squared global gradient norm. Contract in tensor/backend.h, CPU
// reference in tensor/cpu/optimizer.cpp, algorithm in train/adamw.h.
//
// AdamW is memory-bound: per element it reads the f32 weight, gradient and
// two moments and writes the weight, the moments and (in bf16 training) the
// model's bf16 copy — 30 bytes, a handful of flops. So one kernel does all of
// it (apex's and PyTorch's "fused"/"multi-tensor" AdamW) instead of a chain
// of elementwise ops that would each make a pass. Parameters differ only in
// their step count (bias corrections) and whether they decay, so they live in
// one flat buffer (train/flat_parameters.h) and a small table of slots
// carries the per-parameter numbers. Block b updates elements
// [b * 8192, (b + 1) * 8192) of the flat buffer: it finds the first slot that
// reaches into its range by binary search and walks the slots it overlaps,
// 16 bytes per load where the range allows. Alignment padding between slots
// is left alone.
//
// sum_squares: one block per chunk of 65536 elements sums squares in f64
// (threads in a fixed stride order, then a fixed-order block reduction), a
// second kernel adds the chunk sums in order: the same bits on every run.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

constexpr int64_t kAdamChunk = 8192;
constexpr int64_t kNormChunk = 1 << 16;  // must match tensor/cpu/optimizer.cpp

struct SlotArgs {
  int64_t offset, numel;
  float step_size, inv_sqrt_bc2, keep, unused;
};

struct AdamConsts {
  float b1, b2, eps, clip;
  uint64_t seed;  // 0: round to nearest even
};

__device__ __forceinline__ __nv_bfloat16 round_bf16(float x, int64_t i, uint64_t seed) {
  if (seed == 0) return __float2bfloat16_rn(x);
  const uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);
  const uint32_t r = bits + (philox::philox4x32_10(static_cast<uint64_t>(i) / 4, seed).w[i % 4] & 0xffffu);
  if ((r & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);  // carried into Inf
  return __ushort_as_bfloat16(static_cast<unsigned short>(r >> 16));
}

template <typename P>
__device__ __forceinline__ void publish_one(P* out, int64_t i, float x, uint64_t seed) {
  if constexpr (std::is_same_v<P, __nv_bfloat16>) {
    out[i] = round_bf16(x, i, seed);
  } else if constexpr (std::is_same_v<P, __half>) {
    out[i] = __float2half_rn(x);
  }
}

// One element: returns the new weight.
__device__ __forceinline__ float adam_update(float& p, float g, float& m, float& v, const SlotArgs& s,
                                             const AdamConsts& c) {
  const float gi = g * c.clip;
  m = c.b1 * m + (1.0f - c.b1) * gi;
  v = c.b2 * v + (1.0f - c.b2) * gi * gi;
  p = p * s.keep - s.step_size * m / (sqrtf(v) * s.inv_sqrt_bc2 + c.eps);
  return p;
}

// P: __nv_bfloat16 or __half for a published copy, float for none.
template <typename P>
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, P* pub, const SlotArgs* slots, int nslots,
                             int64_t n, AdamConsts c) {
  constexpr bool kPublish = !std::is_same_v<P, float>;
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * kAdamChunk, hi = min_i64(n, lo + kAdamChunk);
  int a = 0, b = nslots;  // first slot that ends after lo
  while (a < b) {
    const int mid = (a + b) / 2;
    if (slots[mid].offset + slots[mid].numel <= lo)
      a = mid + 1;
    else
      b = mid;
  }
  for (int k = a; k < nslots && slots[k].offset < hi; ++k) {
    const SlotArgs s = slots[k];
    const int64_t i0 = max_i64(lo, s.offset), i1 = min_i64(hi, s.offset + s.numel);
    if (i0 >= i1) continue;
    const int64_t v0 = min_i64(i1, (i0 + 3) / 4 * 4), v1 = max_i64(v0, i1 / 4 * 4);
    auto scalar = [&](int64_t i) {
      const float w = adam_update(p[i], g[i], m[i], v[i], s, c);
      if constexpr (kPublish) publish_one(pub, i, w, c.seed);
    };
    for (int64_t i = i0 + threadIdx.x; i < v0; i += blockDim.x) scalar(i);
    for (int64_t j = v0 / 4 + threadIdx.x; j < v1 / 4; j += blockDim.x) {  // 16-byte loads and stores
      float4 pv = reinterpret_cast<float4*>(p)[j], mv = reinterpret_cast<float4*>(m)[j];
      float4 vv = reinterpret_cast<float4*>(v)[j];
      const float4 gv = reinterpret_cast<const float4*>(g)[j];
      const float w0 = adam_update(pv.x, gv.x, mv.x, vv.x, s, c), w1 = adam_update(pv.y, gv.y, mv.y, vv.y, s, c);
      const float w2 = adam_update(pv.z, gv.z, mv.z, vv.z, s, c), w3 = adam_update(pv.w, gv.w, mv.w, vv.w, s, c);
      reinterpret_cast<float4*>(p)[j] = pv;
      reinterpret_cast<float4*>(m)[j] = mv;
      reinterpret_cast<float4*>(v)[j] = vv;
      if constexpr (kPublish) {
        publish_one(pub, 4 * j, w0, c.seed);
        publish_one(pub, 4 * j + 1, w1, c.seed);
        publish_one(pub, 4 * j + 2, w2, c.seed);
        publish_one(pub, 4 * j + 3, w3, c.seed);
      }
    }
    for (int64_t i = v1 + threadIdx.x; i < i1; i += blockDim.x) scalar(i);
  }
}

__global__ void sum_squares_chunks_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double scratch[kThreads / 32];
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * kNormChunk, hi = min_i64(n, lo + kNormChunk);
  double s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    const double v = x[i];
    s += v * v;
  }
  s = group_reduce<kThreads>(s, [](double a, double b) { return a + b; }, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_in_order_kernel(const double* partial, int64_t count, double* out) {
  double s = 0;
  for (int64_t i = 0; i < count; ++i) s += partial[i];
  *out = s;
}

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* publish,
                             const std::vector<AdamWSlot>& slots, const AdamWHyper& h) {
  const cudaStream_t stream = publish ? enter("adamw_step", {&param, &grad, &exp_avg, &exp_avg_sq, publish})
                                      : enter("adamw_step", {&param, &grad, &exp_avg, &exp_avg_sq});
  check_adamw_args(param, grad, exp_avg, exp_avg_sq, publish, slots, h);
  const int64_t n = param.numel();
  if (slots.empty() || n == 0) return;
  std::vector<cuda::SlotArgs> table;
  table.reserve(slots.size());
  for (const AdamWSlot& s : slots) {
    table.push_back({s.offset, s.numel, static_cast<float>(s.step_size), static_cast<float>(s.inv_sqrt_bc2),
                     static_cast<float>(s.keep), 0.f});
  }
  // The table travels with the stream (pageable copies are staged at once).
  Tensor dev_table = empty({static_cast<int64_t>(table.size() * sizeof(cuda::SlotArgs))},
                           TensorOptions{DType::u8, device(), false});
  copy_from_host(dev_table.data_ptr(), table.data(), table.size() * sizeof(cuda::SlotArgs));
  const cuda::AdamConsts c{static_cast<float>(h.beta1), static_cast<float>(h.beta2), static_cast<float>(h.eps),
                           static_cast<float>(h.clip), h.rounding_seed};
  const auto blocks = static_cast<unsigned>((n + cuda::kAdamChunk - 1) / cuda::kAdamChunk);
  const auto* st = static_cast<const cuda::SlotArgs*>(dev_table.data_ptr());
  const int ns = static_cast<int>(table.size());
  auto go = [&](auto* pub) {
    using P = std::remove_pointer_t<decltype(pub)>;
    cuda::adamw_kernel<P><<<blocks, cuda::kThreads, 0, stream>>>(param.data<float>(), grad.data<float>(),
                                                                 exp_avg.data<float>(), exp_avg_sq.data<float>(), pub,
                                                                 st, ns, n, c);
    CUDA_CHECK_LAUNCH();
  };
  if (!publish)
    go(static_cast<float*>(nullptr));
  else if (publish->dtype() == DType::bf16)
    go(static_cast<__nv_bfloat16*>(publish->data_ptr()));
  else
    go(static_cast<__half*>(publish->data_ptr()));
  param.bump_version();
  if (publish) publish->bump_version();
}

void CudaBackend::sum_squares(const Tensor& x, Tensor& out) {
  const cudaStream_t stream = enter("sum_squares", {&x, &out});
  check_sum_squares_args(x, out);
  const int64_t n = x.numel(), chunks = std::max<int64_t>(1, (n + cuda::kNormChunk - 1) / cuda::kNormChunk);
  Tensor partial = empty({chunks}, TensorOptions{DType::f64, device(), false});
  if (n == 0) {
    fill(partial, 0.0);
  } else {
    cuda::sum_squares_chunks_kernel<<<static_cast<unsigned>(chunks), cuda::kThreads, 0, stream>>>(
        x.data<float>(), n, partial.data<double>());
    CUDA_CHECK_LAUNCH();
  }
  cuda::sum_in_order_kernel<<<1, 1, 0, stream>>>(partial.data<double>(), chunks, out.data<double>());
  CUDA_CHECK_LAUNCH();
}

}  // namespace lory
