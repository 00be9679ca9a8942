// cross_entropy.cpp — fused softmax cross-entropy over the rows of [N, V] logits.
//
// Forward, per row n with target t:
//   lse_n  = m + log(sum_v exp(x[n, v] - m)),  m = max_v x[n, v]
//   loss_n = lse_n - x[n, t]                   (0 where t == ignore_index)
// Backward: dx[n, v] = scale * (exp(x[n, v] - lse_n) - [v == t]), 0 on ignored rows.
// Only lse (one float per row) is kept between the two; the [N, V] softmax is
// never stored. Math is in f32 (f64 for f64 logits, where backward recomputes
// lse in f64 rather than trust the f32 copy: gradcheck needs the digits).
#include <cmath>
#include <utility>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// The targets (i64 [N], contiguous: check_cross_entropy_args), each checked
// to be in [0, V) or equal to ignore_index.
const int64_t* checked_targets(const Tensor& targets, int64_t V, int64_t ignore_index, const char* kernel) {
  const int64_t* t = ptr<int64_t>(targets);
  for (int64_t n = 0; n < targets.numel(); ++n)
    LORY_CHECK(t[n] == ignore_index || (t[n] >= 0 && t[n] < V), kernel, ": target ", t[n], " at row ", n,
               " is out of range for ", V, " classes (ignore_index is ", ignore_index, ")");
  return t;
}

// Calls f(row) with row n of the logits as an Eigen array of the compute type
// (a map for f32/f64, a widened copy in `buf`, V elements, for bf16/f16).
template <typename T, typename F>
void with_row(const T* x, int64_t n, int64_t V, compute_t<T>* buf, F&& f) {
  using C = compute_t<T>;
  Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> row(x + n * V, V);
  if constexpr (std::is_same_v<T, C>) {
    f(row);
  } else {
    Eigen::Map<Eigen::Array<C, Eigen::Dynamic, 1>> wide(buf, V);
    wide = row.template cast<C>();
    f(wide);
  }
}

// The row's max m and log(sum(exp(x - m))): lse = m + log_sum, kept apart so
// that the loss (m - x[t]) + log_sum never rounds at the magnitude of m.
template <typename Row>
auto row_max_logsum(const Row& r) {
  using C = typename Row::Scalar;
  const C m = r.template maxCoeff<Eigen::PropagateNaN>();
  if (std::isinf(m)) return std::pair<C, C>{m, C(0)};  // every logit -inf (lse -inf), or one +inf (lse +inf)
  return std::pair<C, C>{m, std::log((r - m).exp().sum())};
}

}  // namespace

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                       Tensor& row_loss, Tensor& lse) {
  const char* kernel = "cross_entropy";
  check_cross_entropy_args(logits, targets, row_loss, lse);
  const int64_t N = logits.size(0), V = logits.size(1);
  const int64_t* t = checked_targets(targets, V, ignore_index, kernel);
  float* loss_p = ptr<float>(row_loss);
  float* lse_p = ptr<float>(lse);
  dispatch_floating(logits, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const T* x = ptr<T>(logits);
    parallel_for(0, N, grain_for(V), [&](int64_t b, int64_t e) {
      std::vector<C> buf(is_half_v<T> ? static_cast<size_t>(V) : 0);
      for (int64_t n = b; n < e; ++n) {
        with_row(x, n, V, buf.data(), [&](const auto& row) {
          const auto [m, log_sum] = row_max_logsum(row);
          const int64_t target = t[n];
          lse_p[n] = static_cast<float>(m + log_sum);
          loss_p[n] = target == ignore_index ? 0.0f : static_cast<float>((m - row[target]) + log_sum);
        });
      }
    });
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                        int64_t ignore_index, const Tensor& scale, Tensor& dlogits) {
  const char* kernel = "cross_entropy_backward";
  check_cross_entropy_backward_args(logits, targets, lse, scale, dlogits);
  const int64_t N = logits.size(0), V = logits.size(1);
  const int64_t* t = checked_targets(targets, V, ignore_index, kernel);
  const double g = *ptr<float>(scale);
  const float* lse_p = ptr<float>(lse);
  dispatch_floating(logits, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const T* x = ptr<T>(logits);
    T* dx = ptr<T>(dlogits);
    const C s = static_cast<C>(g);
    parallel_for(0, N, grain_for(V), [&](int64_t b, int64_t e) {
      std::vector<C> buf(is_half_v<T> ? static_cast<size_t>(V) : 0);
      for (int64_t n = b; n < e; ++n) {
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> drow(dx + n * V, V);
        const int64_t target = t[n];
        if (target == ignore_index) {
          drow.setZero();
          continue;
        }
        with_row(x, n, V, buf.data(), [&](const auto& row) {
          C l = static_cast<C>(lse_p[n]);
          if constexpr (std::is_same_v<C, double>) {
            const auto [m, log_sum] = row_max_logsum(row);
            l = m + log_sum;
          }
          C at_target = std::exp(row[target] - l) * s - s;
          drow = ((row - l).exp() * s).template cast<T>();
          drow[target] = cast_to<T>(at_target);
        });
      }
    });
  });
}

}  // namespace lory
