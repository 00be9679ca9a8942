// attention.cu — scaled dot-product attention on CUDA: the Backend methods,
// which pick a kernel, and the general kernels behind the fast path.
//
// Semantics as tensor/cpu/attention.cpp: q [B, H, L, Dh], k, v [B, Hkv, S, Dh]
// contiguous; causal query i sees keys j <= i + S - L; lse f32 [B, H, L].
// Grouped-query attention: with group = H / Hkv, query head bh of [B * H]
// reads key/value head bh / group of [B * Hkv] (b H + h over group is
// b Hkv + h / group); dK and dV of a key/value head sum its group's query
// heads inside one thread or block, in a fixed order (no atomics).
//
//   * bf16/f16 heads of dim 64 or 128 (the models' heads): the tensor-core
//     FlashAttention-2 kernels of cuda/flash_attention.cu.
//   * Everything else (f32, f64, other head dims, views at odd addresses):
//     the kernels below, one warp per query row (forward, dQ) or key row
//     (dK, dV), Dh spread over the lanes, scores reduced with warp shuffles in
//     a fixed order, an online softmax over the keys. They are simple,
//     exact to the compute type, deterministic, and use no [L, S] buffer
//     either; they are slow next to the tensor-core path and exist for
//     correctness (f64 gradchecks, odd shapes), not for training speed.
//
// Backward of either path: D_i = dO_i . O_i first (attention_row_prep_kernel),
// then dQ and dK/dV from recomputed probabilities. For f64 the prep kernel
// also recomputes lse in f64 (the saved copy is f32), as the CPU does.
#include <algorithm>
#include <atomic>
#include <cmath>

#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

// flash_attention.cu
bool flash_attention_supports(const Tensor& q, std::initializer_list<const Tensor*> others);
void launch_flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    const Tensor& out, const Tensor& lse, cudaStream_t stream);
void launch_flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& lse, const Tensor& D, double scale, bool causal, const Tensor& dq,
                                     const Tensor& dk, const Tensor& dv, cudaStream_t stream);

namespace {

constexpr int kRowsPerBlock = 4;  // warps per block, one row each

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  return warp_reduce(v, [](A a, A b) { return a + b; });
}

// Keys query i can see: [0, visible).
__device__ __forceinline__ int64_t visible_keys(int64_t i, int64_t L, int64_t S, bool causal) {
  return causal ? max_i64(0, min_i64(S, i + S - L + 1)) : S;
}

// Loads element d = lane + 32 p of a row into r[p] (0 past Dh).
template <int kPer, typename T, typename A>
__device__ __forceinline__ void load_row(A (&r)[kPer], const T* row, int64_t Dh, int lane) {
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int64_t d = lane + 32 * p;
    r[p] = d < Dh ? cast<A>(row[d]) : A(0);
  }
}

template <int kPer, typename T, typename A>
__device__ __forceinline__ A row_dot(const A (&r)[kPer], const T* row, int64_t Dh, int lane) {
  A s = 0;
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int64_t d = lane + 32 * p;
    if (d < Dh) s += r[p] * cast<A>(row[d]);
  }
  return warp_sum(s);
}

template <int kPer, typename T>
__global__ void attention_forward_simt_kernel(const T* q, const T* k, const T* v, T* out, float* lse, int64_t BH,
                                              int64_t group, int64_t L, int64_t S, int64_t Dh, double scale,
                                              bool causal) {
  using A = float_math_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= BH * L) return;
  const int lane = threadIdx.x % 32;
  const int64_t bh = row / L, i = row % L, kvh = bh / group;
  A qv[kPer], o[kPer];
  load_row(qv, q + row * Dh, Dh, lane);
#pragma unroll
  for (int p = 0; p < kPer; ++p) o[p] = 0;
  A m = lowest<A>(), l = 0;
  const A sc = static_cast<A>(scale);
  const int64_t n = visible_keys(i, L, S, causal);
  for (int64_t j = 0; j < n; ++j) {
    const A s = row_dot(qv, k + (kvh * S + j) * Dh, Dh, lane) * sc;
    const A m_new = max_nan(m, s);
    const A correction = m == lowest<A>() ? A(0) : m_exp(m - m_new);
    const A e = m_exp(s - m_new);
    l = l * correction + e;
    const T* vr = v + (kvh * S + j) * Dh;
#pragma unroll
    for (int p = 0; p < kPer; ++p) {
      const int64_t d = lane + 32 * p;
      o[p] = o[p] * correction + (d < Dh ? e * cast<A>(vr[d]) : A(0));
    }
    m = m_new;
  }
  const A inv = l > A(0) ? A(1) / l : A(0);
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int64_t d = lane + 32 * p;
    if (d < Dh) out[row * Dh + d] = cast<T>(o[p] * inv);
  }
  if (lane == 0) lse[row] = static_cast<float>(l > A(0) ? m + m_log(l) : lowest<A>());
}

// D_i = dO_i . O_i, and the lse the backward uses (f64: recomputed in f64).
template <int kPer, typename T>
__global__ void attention_row_prep_kernel(const T* q, const T* k, const T* dout, const T* out, const float* lse,
                                          float_math_t<T>* D, float_math_t<T>* lse_out, int64_t BH, int64_t group,
                                          int64_t L, int64_t S, int64_t Dh, double scale, bool causal,
                                          bool recompute_lse) {
  using A = float_math_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= BH * L) return;
  const int lane = threadIdx.x % 32;
  A r[kPer];
  load_row(r, dout + row * Dh, Dh, lane);
  const A dot = row_dot(r, out + row * Dh, Dh, lane);
  A l_row = static_cast<A>(lse[row]);
  if (recompute_lse) {
    const int64_t kvh = row / L / group, i = row % L;
    load_row(r, q + row * Dh, Dh, lane);
    A m = lowest<A>(), l = 0;
    const int64_t n = visible_keys(i, L, S, causal);
    for (int64_t j = 0; j < n; ++j) {
      const A s = row_dot(r, k + (kvh * S + j) * Dh, Dh, lane) * static_cast<A>(scale);
      const A m_new = max_nan(m, s);
      l = (m == lowest<A>() ? A(0) : l * m_exp(m - m_new)) + m_exp(s - m_new);
      m = m_new;
    }
    l_row = l > A(0) ? m + m_log(l) : lowest<A>();
  }
  if (lane == 0) {
    D[row] = dot;
    if (lse_out) lse_out[row] = l_row;
  }
}

// dQ_i = scale Σ_j P_ij (dP_ij - D_i) k_j, one warp per query row.
template <int kPer, typename T>
__global__ void attention_dq_simt_kernel(const T* q, const T* k, const T* v, const T* dout,
                                         const float_math_t<T>* lse, const float_math_t<T>* D, T* dq, int64_t BH,
                                         int64_t group, int64_t L, int64_t S, int64_t Dh, double scale,
                                         bool causal) {
  using A = float_math_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= BH * L) return;
  const int lane = threadIdx.x % 32;
  const int64_t kvh = row / L / group, i = row % L;
  A qv[kPer], dov[kPer], acc[kPer];
  load_row(qv, q + row * Dh, Dh, lane);
  load_row(dov, dout + row * Dh, Dh, lane);
#pragma unroll
  for (int p = 0; p < kPer; ++p) acc[p] = 0;
  const A sc = static_cast<A>(scale), l_row = lse[row], d_row = D[row];
  const int64_t n = visible_keys(i, L, S, causal);
  for (int64_t j = 0; j < n; ++j) {
    const T* kr = k + (kvh * S + j) * Dh;
    const A prob = m_exp(row_dot(qv, kr, Dh, lane) * sc - l_row);
    const A ds = prob * (row_dot(dov, v + (kvh * S + j) * Dh, Dh, lane) - d_row);
#pragma unroll
    for (int p = 0; p < kPer; ++p) {
      const int64_t d = lane + 32 * p;
      if (d < Dh) acc[p] += ds * cast<A>(kr[d]);
    }
  }
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int64_t d = lane + 32 * p;
    if (d < Dh) dq[row * Dh + d] = cast<T>(acc[p] * sc);
  }
}

// dV_j = Σ_i P_ij dO_i,  dK_j = scale Σ_i P_ij (dP_ij - D_i) q_i, one warp per
// key row of [B * Hkv * S]; i runs over the queries of every head in its group.
template <int kPer, typename T>
__global__ void attention_dkdv_simt_kernel(const T* q, const T* k, const T* v, const T* dout,
                                           const float_math_t<T>* lse, const float_math_t<T>* D, T* dk, T* dv,
                                           int64_t BHkv, int64_t group, int64_t L, int64_t S, int64_t Dh,
                                           double scale, bool causal) {
  using A = float_math_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= BHkv * S) return;
  const int lane = threadIdx.x % 32;
  const int64_t kvh = row / S, j = row % S;
  A kv[kPer], vv[kPer], dk_acc[kPer], dv_acc[kPer];
  load_row(kv, k + row * Dh, Dh, lane);
  load_row(vv, v + row * Dh, Dh, lane);
#pragma unroll
  for (int p = 0; p < kPer; ++p) dk_acc[p] = dv_acc[p] = 0;
  const A sc = static_cast<A>(scale);
  const int64_t first = causal ? max_i64(0, j - (S - L)) : 0;
  for (int64_t bh = kvh * group; bh < (kvh + 1) * group; ++bh) {
    for (int64_t i = first; i < L; ++i) {
      const T* qr = q + (bh * L + i) * Dh;
      const T* dor = dout + (bh * L + i) * Dh;
      const A prob = m_exp(row_dot(kv, qr, Dh, lane) * sc - lse[bh * L + i]);
      const A ds = prob * (row_dot(vv, dor, Dh, lane) - D[bh * L + i]);
#pragma unroll
      for (int p = 0; p < kPer; ++p) {
        const int64_t d = lane + 32 * p;
        if (d < Dh) {
          dv_acc[p] += prob * cast<A>(dor[d]);
          dk_acc[p] += ds * cast<A>(qr[d]);
        }
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int64_t d = lane + 32 * p;
    if (d < Dh) {
      dk[row * Dh + d] = cast<T>(dk_acc[p] * sc);
      dv[row * Dh + d] = cast<T>(dv_acc[p]);
    }
  }
}

// Calls f(T tag, kPer) for the dtype and the lanes' share of Dh (<= 32 kPer).
template <typename F>
void dispatch_simt(const Tensor& q, F&& f) {
  const int64_t Dh = q.size(3);
  LORY_CHECK(Dh <= 256, "scaled_dot_product_attention: head dim ", Dh, " > 256 is not supported on CUDA: q is ",
             q.describe());
  dispatch_dtype(q.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      if (Dh <= 32)
        f(tag, std::integral_constant<int, 1>{});
      else if (Dh <= 64)
        f(tag, std::integral_constant<int, 2>{});
      else if (Dh <= 128)
        f(tag, std::integral_constant<int, 4>{});
      else
        f(tag, std::integral_constant<int, 8>{});
    } else {
      fail("scaled_dot_product_attention: expected a floating dtype, got ", q.describe());
    }
  });
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

}  // namespace lory::cuda

namespace lory {

void CudaBackend::set_flash_attention(bool enabled) { flash_attention_ = enabled; }

void CudaBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    Tensor& out, Tensor& lse) {
  const char* kernel = "scaled_dot_product_attention";
  const cudaStream_t stream = enter(kernel, {&q, &k, &v, &out, &lse});
  check_attention_args(q, k, v, out, lse, causal, kernel);
  if (lse.numel() == 0) return;  // no rows (Dh == 0 still has rows: the general kernel writes their lse)
  if (k.size(2) == 0) {  // nothing to attend to: zeros, lse -inf (what the CPU writes)
    fill(out, 0.0);
    fill(lse, -INFINITY);
    return;
  }
  if (flash_attention_ && cuda::flash_attention_supports(q, {&k, &v, &out})) {
    cuda::launch_flash_attention_forward(q, k, v, scale, causal, out, lse, stream);
    return;
  }
  const int64_t BH = q.size(0) * q.size(1), group = q.size(1) / k.size(1), L = q.size(2), S = k.size(2),
                Dh = q.size(3);
  cuda::dispatch_simt(q, [&](auto tag, auto per) {
    using T = typename decltype(tag)::type;
    cuda::attention_forward_simt_kernel<decltype(per)::value, T>
        <<<cuda::row_blocks(BH * L), cuda::kRowsPerBlock * 32, 0, stream>>>(
            static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()),
            static_cast<const T*>(v.data_ptr()), static_cast<T*>(out.data_ptr()), lse.data<float>(), BH, group, L,
            S, Dh, scale, causal);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& out, const Tensor& lse, double scale, bool causal, Tensor& dq,
                                     Tensor& dk, Tensor& dv) {
  const char* kernel = "scaled_dot_product_attention_backward";
  const cudaStream_t stream = enter(kernel, {&dout, &q, &k, &v, &out, &lse, &dq, &dk, &dv});
  check_attention_backward_args(dout, q, k, v, out, lse, causal, dq, dk, dv);
  const int64_t BH = q.size(0) * q.size(1), BHkv = k.size(0) * k.size(1), L = q.size(2), S = k.size(2),
                Dh = q.size(3);
  const int64_t group = BHkv > 0 ? BH / BHkv : 1;
  if (q.numel() == 0 || k.numel() == 0) {
    for (Tensor* t : {&dq, &dk, &dv})
      if (t->numel() > 0) fill(*t, 0.0);
    return;
  }
  const bool f64 = q.dtype() == DType::f64;
  const TensorOptions acc{f64 ? DType::f64 : DType::f32, q.device(), false};
  Tensor D = empty({BH * L}, acc);
  Tensor lse_acc = f64 ? empty({BH * L}, acc) : lse;  // f64 recomputes it; others use the saved f32
  cuda::dispatch_simt(q, [&](auto tag, auto per) {
    using T = typename decltype(tag)::type;
    using A = cuda::float_math_t<T>;
    cuda::attention_row_prep_kernel<decltype(per)::value, T>
        <<<cuda::row_blocks(BH * L), cuda::kRowsPerBlock * 32, 0, stream>>>(
            static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()),
            static_cast<const T*>(dout.data_ptr()), static_cast<const T*>(out.data_ptr()), lse.data<float>(),
            static_cast<A*>(D.data_ptr()), f64 ? static_cast<A*>(lse_acc.data_ptr()) : nullptr, BH, group, L, S, Dh,
            scale, causal, f64);
    CUDA_CHECK_LAUNCH();
  });
  if (flash_attention_ && cuda::flash_attention_supports(q, {&k, &v, &dout, &dq, &dk, &dv})) {
    cuda::launch_flash_attention_backward(dout, q, k, v, lse, D, scale, causal, dq, dk, dv, stream);
    return;
  }
  cuda::dispatch_simt(q, [&](auto tag, auto per) {
    using T = typename decltype(tag)::type;
    using A = cuda::float_math_t<T>;
    constexpr int kPer = decltype(per)::value;
    const T* qp = static_cast<const T*>(q.data_ptr());
    const T* kp = static_cast<const T*>(k.data_ptr());
    const T* vp = static_cast<const T*>(v.data_ptr());
    const T* dop = static_cast<const T*>(dout.data_ptr());
    const A* lp = static_cast<const A*>(lse_acc.data_ptr());
    const A* Dp = static_cast<const A*>(D.data_ptr());
    cuda::attention_dq_simt_kernel<kPer, T><<<cuda::row_blocks(BH * L), cuda::kRowsPerBlock * 32, 0, stream>>>(
        qp, kp, vp, dop, lp, Dp, static_cast<T*>(dq.data_ptr()), BH, group, L, S, Dh, scale, causal);
    CUDA_CHECK_LAUNCH();
    cuda::attention_dkdv_simt_kernel<kPer, T><<<cuda::row_blocks(BHkv * S), cuda::kRowsPerBlock * 32, 0, stream>>>(
        qp, kp, vp, dop, lp, Dp, static_cast<T*>(dk.data_ptr()), static_cast<T*>(dv.data_ptr()), BHkv, group, L, S,
        Dh, scale, causal);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lory
