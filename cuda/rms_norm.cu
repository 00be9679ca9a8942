// rms_norm.cu — RMSNorm over the last dim, forward (optionally fused with the
// residual add before it) and backward. Formulas as in tensor/cpu/rms_norm.cpp:
//   forward:   r = 1 / sqrt(mean(x^2) + eps),   y = x * r * w      (r saved, f32 [R])
//   backward:  g = dy * w,  dx = r * g - (r^3 / D) (g . x) x,  dw = Σ_rows dy * x * r
//
// Forward: a warp owns a row of up to 2048 elements (a whole 256-thread
// block owns longer rows), reads it once to sum squares and again (from L1)
// to write y, with 16-byte vectors when rows are aligned. The fused variant
// (add_rms_norm) first forms h = x + residual, rounded to the storage dtype
// exactly as a separate add would round it, writes h, and normalises h: one
// pass over memory instead of the add's three plus the norm's two.
//
// Backward: dw is a sum over every row, so it is made deterministic the way
// the CPU kernel makes it: a fixed number of blocks (set by R alone), each
// summing its own rows in order into its own partial row of dw, then a second
// kernel adds the partials in block order. A 256-thread block keeps the row
// pieces it works on, and its share of the dw partial, in registers (up to
// 16 elements per thread: D <= 4096); longer rows take a path that re-reads
// the row and keeps the partial in global memory.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/kernels.h"
#include "cuda/strided_index.cuh"
#include "cuda/vec.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// ---- forward ----

// kVec elements per access (1 when rows are not 16-byte aligned).
template <int kGroup, int kVec, bool kAdd, typename T>
__global__ void rms_norm_forward_kernel(const T* x, const T* residual, const T* weight, T* sum_out, T* out,
                                        float* rstd, int64_t R, int64_t D, float_math_t<T> eps) {
  using A = float_math_t<T>;
  constexpr int kRowsPerBlock = kThreads / kGroup;
  __shared__ A scratch[kThreads / 32];
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  if (r >= R) return;  // whole groups leave together
  const int lane = threadIdx.x % kGroup;
  const T* xr = x + r * D;
  const T* src = xr;  // what is normalised: x, or h = x + residual once written
  A ss = 0;
  for (int64_t c = static_cast<int64_t>(lane) * kVec; c < D; c += static_cast<int64_t>(kGroup) * kVec) {
    T v[kVec];
    if constexpr (kVec > 1) {
      const Vec<T> xv = load_vec(xr + c);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] = xv.v[k];
    } else {
      v[0] = xr[c];
    }
    if constexpr (kAdd) {
      const T* rr = residual + r * D + c;
      T* hr = sum_out + r * D + c;
      if constexpr (kVec > 1) {
        const Vec<T> rv = load_vec(rr);
        Vec<T> hv;
#pragma unroll
        for (int k = 0; k < kVec; ++k) hv.v[k] = v[k] = cast<T>(cast<A>(v[k]) + cast<A>(rv.v[k]));
        store_vec(hr, hv);
      } else {
        hr[0] = v[0] = cast<T>(cast<A>(v[0]) + cast<A>(rr[0]));
      }
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const A a = cast<A>(v[k]);
      ss += a * a;
    }
  }
  if constexpr (kAdd) src = sum_out + r * D;  // this thread re-reads only what it wrote itself
  ss = group_reduce<kGroup>(ss, [](A a, A b) { return a + b; }, scratch);
  const A inv = A(1) / m_sqrt(ss / static_cast<A>(D) + eps);
  T* yr = out + r * D;
  for (int64_t c = static_cast<int64_t>(lane) * kVec; c < D; c += static_cast<int64_t>(kGroup) * kVec) {
    if constexpr (kVec > 1) {
      const Vec<T> xv = load_vec(src + c), wv = load_vec(weight + c);
      Vec<T> yv;
#pragma unroll
      for (int k = 0; k < kVec; ++k) yv.v[k] = cast<T>(cast<A>(xv.v[k]) * inv * cast<A>(wv.v[k]));
      store_vec(yr + c, yv);
    } else {
      yr[c] = cast<T>(cast<A>(src[c]) * inv * cast<A>(weight[c]));
    }
  }
  if (lane == 0) rstd[r] = static_cast<float>(inv);
}

// ---- backward ----

constexpr int kBackwardThreads = 256;
constexpr int kMaxElemsPerThread = 16;  // x, dy, w and the dw partial: 64 registers

// Block b handles rows [b * rows_per_block, ...), and writes its dw partial
// to partial[b, :]. kPer > 0: each thread holds kPer vectors of kVec columns
// (columns (t + 256 j) * kVec + k) in registers; kPer == 0: any D, two passes.
template <int kVec, int kPer, typename T>
__global__ void rms_norm_backward_kernel(const T* dy, const T* x, const T* weight, const float* rstd, T* dx,
                                         float_math_t<T>* partial, int64_t R, int64_t D, int64_t rows_per_block) {
  using A = float_math_t<T>;
  __shared__ A scratch[kBackwardThreads / 32];
  const int t = threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows_per_block, r1 = min_i64(R, r0 + rows_per_block);
  A* pw = partial + static_cast<int64_t>(blockIdx.x) * D;
  const A inv_d = A(1) / static_cast<A>(D);

  if constexpr (kPer > 0) {
    A w[kPer][kVec], dw[kPer][kVec];
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = (static_cast<int64_t>(t) + kBackwardThreads * j) * kVec;
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        w[j][k] = c + k < D ? cast<A>(weight[c + k]) : A(0);
        dw[j][k] = 0;
      }
    }
    for (int64_t r = r0; r < r1; ++r) {
      A xs[kPer][kVec], gs[kPer][kVec];
      A dot = 0;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int64_t c = (static_cast<int64_t>(t) + kBackwardThreads * j) * kVec;
        if (c < D) {
          if constexpr (kVec > 1) {
            const Vec<T> xv = load_vec(x + r * D + c), gv = load_vec(dy + r * D + c);
#pragma unroll
            for (int k = 0; k < kVec; ++k) xs[j][k] = cast<A>(xv.v[k]), gs[j][k] = cast<A>(gv.v[k]);
          } else {
            xs[j][0] = cast<A>(x[r * D + c]), gs[j][0] = cast<A>(dy[r * D + c]);
          }
        } else {
#pragma unroll
          for (int k = 0; k < kVec; ++k) xs[j][k] = gs[j][k] = A(0);
        }
#pragma unroll
        for (int k = 0; k < kVec; ++k) dot += gs[j][k] * w[j][k] * xs[j][k];
      }
      dot = group_reduce<kBackwardThreads>(dot, [](A a, A b) { return a + b; }, scratch);
      const A inv = static_cast<A>(rstd[r]);
      const A coef = inv * inv * inv * inv_d * dot;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int64_t c = (static_cast<int64_t>(t) + kBackwardThreads * j) * kVec;
        if (c >= D) continue;
        if constexpr (kVec > 1) {
          Vec<T> out;
#pragma unroll
          for (int k = 0; k < kVec; ++k) out.v[k] = cast<T>(inv * gs[j][k] * w[j][k] - coef * xs[j][k]);
          store_vec(dx + r * D + c, out);
        } else {
          dx[r * D + c] = cast<T>(inv * gs[j][0] * w[j][0] - coef * xs[j][0]);
        }
#pragma unroll
        for (int k = 0; k < kVec; ++k) dw[j][k] += gs[j][k] * xs[j][k] * inv;
      }
    }
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = (static_cast<int64_t>(t) + kBackwardThreads * j) * kVec;
#pragma unroll
      for (int k = 0; k < kVec; ++k)
        if (c + k < D) pw[c + k] = dw[j][k];
    }
  } else {  // long rows: read each row twice, keep the partial in global memory
    for (int64_t c = t; c < D; c += kBackwardThreads) pw[c] = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      const T* gr = dy + r * D;
      A dot = 0;
      for (int64_t c = t; c < D; c += kBackwardThreads) dot += cast<A>(gr[c]) * cast<A>(weight[c]) * cast<A>(xr[c]);
      dot = group_reduce<kBackwardThreads>(dot, [](A a, A b) { return a + b; }, scratch);
      const A inv = static_cast<A>(rstd[r]);
      const A coef = inv * inv * inv * inv_d * dot;
      for (int64_t c = t; c < D; c += kBackwardThreads) {
        const A g = cast<A>(gr[c]), xv = cast<A>(xr[c]);
        dx[r * D + c] = cast<T>(inv * g * cast<A>(weight[c]) - coef * xv);
        pw[c] += g * xv * inv;  // this thread's own column: no race
      }
    }
  }
}

// dw[c] = Σ_b partial[b, c], in block order.
template <typename T>
__global__ void sum_partials_kernel(const float_math_t<T>* partial, int64_t blocks, int64_t D, T* dw) {
  using A = float_math_t<T>;
  LORY_GRID_STRIDE_LOOP(c, D) {
    A s = 0;
    for (int64_t b = 0; b < blocks; ++b) s += partial[b * D + c];
    dw[c] = cast<T>(s);
  }
}

// Calls f(kVec) with 16 bytes' worth of elements when every row start is aligned, else 1.
template <typename T, typename F>
void with_vec_width(int64_t D, std::initializer_list<const void*> ptrs, F&& f) {
  if constexpr (sizeof(T) <= 4) {
    if (can_vectorize<T>(D, ptrs)) {
      f(std::integral_constant<int, Vec<T>::kSize>{});
      return;
    }
  }
  f(std::integral_constant<int, 1>{});
}

}  // namespace

void launch_rms_norm_forward(const Tensor& x, const Tensor* residual, const Tensor& weight, double eps,
                             const Tensor* sum_out, const Tensor& out, const Tensor& rstd, cudaStream_t stream) {
  if (residual)
    check_add_rms_norm_args(x, *residual, weight, *sum_out, out, rstd);
  else
    check_rms_norm_args(x, weight, out, rstd);
  const int64_t R = x.size(0), D = x.size(1);
  if (R == 0 || D == 0) return;
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      using A = float_math_t<T>;
      const T* rp = residual ? static_cast<const T*>(residual->data_ptr()) : nullptr;
      T* sp = sum_out ? static_cast<T*>(sum_out->data_ptr()) : nullptr;
      with_vec_width<T>(D, {x.data_ptr(), weight.data_ptr(), out.data_ptr(), rp, sp}, [&](auto vec) {
        constexpr int kVec = decltype(vec)::value;
        auto go = [&](auto group, auto add) {
          constexpr int kGroup = decltype(group)::value;
          constexpr int kRows = kThreads / kGroup;
          const auto blocks = static_cast<unsigned>((R + kRows - 1) / kRows);
          rms_norm_forward_kernel<kGroup, kVec, decltype(add)::value, T><<<blocks, kThreads, 0, stream>>>(
              static_cast<const T*>(x.data_ptr()), rp, static_cast<const T*>(weight.data_ptr()), sp,
              static_cast<T*>(out.data_ptr()), rstd.data<float>(), R, D, static_cast<A>(eps));
          CUDA_CHECK_LAUNCH();
        };
        auto by_add = [&](auto group) {
          if (residual)
            go(group, std::true_type{});
          else
            go(group, std::false_type{});
        };
        if (D <= 2048)
          by_add(std::integral_constant<int, 32>{});
        else
          by_add(std::integral_constant<int, kThreads>{});
      });
    }
  });
}

void launch_rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                              const Tensor& dx, const Tensor& dweight, cudaStream_t stream) {
  check_rms_norm_backward_args(dy, x, weight, rstd, dx, dweight);
  const int64_t R = x.size(0), D = x.size(1);
  if (D == 0) return;
  // Blocks: a number set by R alone (so the summation order is too), enough
  // to fill the GPU twice, each with at least 8 rows.
  const int64_t blocks = std::clamp<int64_t>((R + 7) / 8, 1, 264);
  const int64_t rows_per_block = std::max<int64_t>(1, (R + blocks - 1) / blocks);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      using A = float_math_t<T>;
      Tensor partial = empty({blocks, D}, TensorOptions{std::is_same_v<A, double> ? DType::f64 : DType::f32,
                                                        x.device(), false});
      with_vec_width<T>(D, {dy.data_ptr(), x.data_ptr(), weight.data_ptr(), dx.data_ptr()}, [&](auto vec) {
        constexpr int kVec = decltype(vec)::value;
        const int64_t per = (D / kVec + kBackwardThreads - 1) / kBackwardThreads;  // vectors per thread
        auto go = [&](auto kper) {
          rms_norm_backward_kernel<kVec, decltype(kper)::value, T>
              <<<static_cast<unsigned>(blocks), kBackwardThreads, 0, stream>>>(
                  static_cast<const T*>(dy.data_ptr()), static_cast<const T*>(x.data_ptr()),
                  static_cast<const T*>(weight.data_ptr()), rstd.data<float>(), static_cast<T*>(dx.data_ptr()),
                  static_cast<A*>(partial.data_ptr()), R, D, rows_per_block);
          CUDA_CHECK_LAUNCH();
        };
        const int64_t elems = per * kVec;
        if (R == 0) {
        } else if (per <= 1) {
          go(std::integral_constant<int, 1>{});
        } else if (per <= 2 && elems <= kMaxElemsPerThread) {
          go(std::integral_constant<int, 2>{});
        } else if (per <= 4 && elems <= kMaxElemsPerThread) {
          go(std::integral_constant<int, 4>{});
        } else if constexpr (kVec == 1) {
          if (per <= 8)
            go(std::integral_constant<int, 8>{});
          else if (per <= 16)
            go(std::integral_constant<int, 16>{});
          else
            go(std::integral_constant<int, 0>{});
        } else {
          go(std::integral_constant<int, 0>{});
        }
      });
      if (R == 0) {
        launch_fill(dweight, 0.0, stream);
        return;
      }
      sum_partials_kernel<T><<<blocks_for(D), kThreads, 0, stream>>>(static_cast<const A*>(partial.data_ptr()), blocks,
                                                                    D, static_cast<T*>(dweight.data_ptr()));
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace lory::cuda

namespace lory {

void CudaBackend::rms_norm_forward(const Tensor& x, const Tensor& weight, double eps, Tensor& out, Tensor& rstd) {
  cuda::launch_rms_norm_forward(x, nullptr, weight, eps, nullptr, out, rstd,
                                enter("rms_norm", {&x, &weight, &out, &rstd}));
}

void CudaBackend::add_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                       Tensor& sum, Tensor& out, Tensor& rstd) {
  cuda::launch_rms_norm_forward(x, &residual, weight, eps, &sum, out, rstd,
                                enter("add_rms_norm", {&x, &residual, &weight, &sum, &out, &rstd}));
}

void CudaBackend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                    Tensor& dx, Tensor& dweight) {
  cuda::launch_rms_norm_backward(dy, x, weight, rstd, dx, dweight,
                                 enter("rms_norm_backward", {&dy, &x, &weight, &rstd, &dx, &dweight}));
}

}  // namespace lory
