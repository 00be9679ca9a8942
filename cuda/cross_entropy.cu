// cross_entropy.cu — softmax cross-entropy over the rows of [N, V] logits, fused.
//
// Forward, per row n with target t (tensor/cpu/cross_entropy.cpp has the same
// formulas; only the row's log-sum-exp is kept for the backward):
//   m = max_v x[n, v],   log_sum = log Σ_v exp(x[n, v] - m)
//   lse_n = m + log_sum,  loss_n = (m - x[n, t]) + log_sum   (0 where t == ignore_index)
// Backward:
//   dx[n, v] = scale * (exp(x[n, v] - lse_n) - [v == t])      (0 on ignored rows)
// so the [N, V] softmax is never stored, in any precision: the backward
// recomputes it on the fly and writes dx, in the logits' dtype, once.
//
// A row (a vocabulary: 32K-128K logits) belongs to one 256-thread block, or
// to one warp when it has at most 1024 logits. The forward reads the row once:
// each thread keeps a running max m and a sum s rescaled whenever m grows
// ("online softmax", Milakov & Gimelshein 2018); then the group takes the max
// of the m's, rescales each s to it, and sums. bf16 rows are read 8 logits per
// 16-byte load. Group reductions are in a fixed order (cuda/block_reduce.cuh):
// the result is the same on every run. f64 logits are computed in f64, and the
// f64 backward recomputes lse rather than trust its f32 copy (as the CPU does).
//
// A target outside [0, V) that is not ignore_index is reported through
// cuda/kernel_error.h and gives a NaN loss for its row.
#include <cmath>

#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/kernel_error.h"
#include "cuda/strided_index.cuh"
#include "cuda/vec.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

// Calls f(v) for this thread's share of row[0, V): element c goes to lane
// (c / kVec) % kGroup, read kVec at a time when the row allows.
template <int kGroup, typename T, typename F>
__device__ __forceinline__ void for_row(const T* row, int64_t V, int lane, bool vec, F&& f) {
  constexpr int kVec = Vec<T>::kSize;
  if (vec) {
    for (int64_t c = static_cast<int64_t>(lane) * kVec; c < V; c += static_cast<int64_t>(kGroup) * kVec) {
      const Vec<T> v = load_vec(row + c);
#pragma unroll
      for (int k = 0; k < kVec; ++k) f(c + k, v.v[k]);
    }
  } else {
    for (int64_t c = lane; c < V; c += kGroup) f(c, row[c]);
  }
}

// (m, log Σ exp(x - m)) of one row, combined over the group in a fixed order.
template <int kGroup, typename T, typename A>
__device__ __forceinline__ void row_max_logsum(const T* row, int64_t V, int lane, bool vec, A* scratch, A& m_out,
                                               A& log_sum_out) {
  A m = lowest<A>(), s = 0;
  bool saw_nan = false;
  for_row<kGroup>(row, V, lane, vec, [&](int64_t, T raw) {
    const A x = cast<A>(raw);
    if (x != x) {
      saw_nan = true;
    } else if (x > m) {  // rescale what we have to the new max (s * exp(-inf) = 0 at the start)
      s = s * m_exp(m - x) + A(1);
      m = x;
    } else if (x != lowest<A>()) {  // exp(-inf) adds nothing (and -inf - -inf would be NaN)
      s += m_exp(x - m);
    }
  });
  // A NaN anywhere makes the row's max NaN (the CPU's PropagateNaN), even next to a +inf.
  if (saw_nan) m = x_nan<A>();
  const A row_m = group_reduce<kGroup>(m, [](A a, A b) { return max_nan(a, b); }, scratch);
  if (isinf(row_m) || isnan(row_m)) {  // all -inf (lse -inf), a +inf (lse +inf), or NaN
    m_out = row_m;
    log_sum_out = 0;
    return;
  }
  const A scaled = s == A(0) ? A(0) : s * m_exp(m - row_m);
  const A total = group_reduce<kGroup>(scaled, [](A a, A b) { return a + b; }, scratch);
  m_out = row_m;
  log_sum_out = m_log(total);
}

template <int kGroup, typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* targets, int64_t N, int64_t V,
                                             int64_t ignore_index, bool vec, float* row_loss, float* lse,
                                             KernelError* err) {
  using A = float_math_t<T>;
  constexpr int kRowsPerBlock = kThreads / kGroup;
  __shared__ A scratch[kThreads / 32];
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  if (n >= N) return;  // whole groups leave together
  const int lane = threadIdx.x % kGroup;
  const T* row = logits + n * V;
  A m, log_sum;
  row_max_logsum<kGroup>(row, V, lane, vec, scratch, m, log_sum);
  if (lane != 0) return;
  const int64_t t = targets[n];
  lse[n] = static_cast<float>(m + log_sum);
  if (t == ignore_index) {
    row_loss[n] = 0.0f;
  } else if (t < 0 || t >= V) {
    report_out_of_range(err, KernelCheck::cross_entropy, t, n, V, 1);
    row_loss[n] = __int_as_float(0x7fc00000);  // NaN
  } else {
    row_loss[n] = static_cast<float>((m - cast<A>(row[t])) + log_sum);
  }
}

template <int kGroup, typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* targets, const float* lse,
                                              const float* scale, int64_t N, int64_t V, int64_t ignore_index,
                                              bool vec, T* dlogits) {
  using A = float_math_t<T>;
  constexpr int kRowsPerBlock = kThreads / kGroup;
  constexpr int kVec = Vec<T>::kSize;
  __shared__ A scratch[kThreads / 32];
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
  if (n >= N) return;
  const int lane = threadIdx.x % kGroup;
  const T* row = logits + n * V;
  T* drow = dlogits + n * V;
  const int64_t t = targets[n];
  const bool ignored = t == ignore_index || t < 0 || t >= V;  // a bad target was reported by the forward
  A l = static_cast<A>(lse[n]);
  if constexpr (std::is_same_v<A, double>) {
    if (!ignored) {
      A m, log_sum;
      row_max_logsum<kGroup>(row, V, lane, vec, scratch, m, log_sum);
      l = m + log_sum;
    }
  }
  const A s = static_cast<A>(scale[0]);
  auto grad = [&](int64_t c, T raw) -> T {
    if (ignored) return cast<T>(A(0));
    const A p = m_exp(cast<A>(raw) - l) * s;
    return cast<T>(c == t ? p - s : p);
  };
  if (vec) {
    for (int64_t c = static_cast<int64_t>(lane) * kVec; c < V; c += static_cast<int64_t>(kGroup) * kVec) {
      const Vec<T> x = load_vec(row + c);
      Vec<T> d;
#pragma unroll
      for (int k = 0; k < kVec; ++k) d.v[k] = grad(c + k, x.v[k]);
      store_vec(drow + c, d);
    }
  } else {
    for (int64_t c = lane; c < V; c += kGroup) drow[c] = grad(c, row[c]);
  }
}

template <typename Launch>
void by_row_length(int64_t N, int64_t V, Launch&& launch) {
  if (V > 1024) {
    launch(std::integral_constant<int, kThreads>{}, static_cast<unsigned>(N));
  } else {
    constexpr int kRowsPerBlock = kThreads / 32;
    launch(std::integral_constant<int, 32>{}, static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock));
  }
}

// The shared checks (tensor/kernel_args.h) plus this launch's limit.
void check_rows_fit(const Tensor& logits, const char* kernel) {
  LORY_CHECK(logits.size(0) <= INT32_MAX, kernel, ": too many rows for one launch: ", logits.describe());
}

}  // namespace

void launch_cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                  const Tensor& row_loss, const Tensor& lse, KernelError* err, cudaStream_t stream) {
  check_cross_entropy_args(logits, targets, row_loss, lse);
  check_rows_fit(logits, "cross_entropy");
  const int64_t N = logits.size(0), V = logits.size(1);
  if (N == 0) return;
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      const bool vec = can_vectorize<T>(V, {logits.data_ptr()});
      by_row_length(N, V, [&](auto group, unsigned blocks) {
        cross_entropy_forward_kernel<decltype(group)::value, T><<<blocks, kThreads, 0, stream>>>(
            static_cast<const T*>(logits.data_ptr()), targets.data<int64_t>(), N, V, ignore_index, vec,
            row_loss.data<float>(), lse.data<float>(), err);
        CUDA_CHECK_LAUNCH();
      });
    }
  });
}

void launch_cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                   int64_t ignore_index, const Tensor& scale, const Tensor& dlogits,
                                   cudaStream_t stream) {
  check_cross_entropy_backward_args(logits, targets, lse, scale, dlogits);
  check_rows_fit(logits, "cross_entropy_backward");
  const int64_t N = logits.size(0), V = logits.size(1);
  if (N == 0) return;
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      const bool vec = can_vectorize<T>(V, {logits.data_ptr(), dlogits.data_ptr()});
      by_row_length(N, V, [&](auto group, unsigned blocks) {
        cross_entropy_backward_kernel<decltype(group)::value, T><<<blocks, kThreads, 0, stream>>>(
            static_cast<const T*>(logits.data_ptr()), targets.data<int64_t>(), lse.data<float>(),
            scale.data<float>(), N, V, ignore_index, vec, static_cast<T*>(dlogits.data_ptr()));
        CUDA_CHECK_LAUNCH();
      });
    }
  });
}

}  // namespace lory::cuda

namespace lory {

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                        Tensor& row_loss, Tensor& lse) {
  const cudaStream_t stream = enter("cross_entropy", {&logits, &targets, &row_loss, &lse});
  cuda::launch_cross_entropy_forward(logits, targets, ignore_index, row_loss, lse, cuda::kernel_error_slot(index_),
                                     stream);
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                         int64_t ignore_index, const Tensor& scale, Tensor& dlogits) {
  const cudaStream_t stream = enter("cross_entropy_backward", {&logits, &targets, &lse, &scale, &dlogits});
  cuda::launch_cross_entropy_backward(logits, targets, lse, ignore_index, scale, dlogits, stream);
}

}  // namespace lory
