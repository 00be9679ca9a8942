// rms_norm.cpp — RMSNorm (Zhang & Sennrich 2019) over the last dim, fused.
//
// Forward, per row x of length D:
//   r = 1 / sqrt(mean(x^2) + eps),   y = x * r * w
// and r is saved (f32 [R]). Backward, with g = dy * w:
//   dx = r * g - (r^3 / D) * (g . x) * x
//   dw = sum over rows of dy * x * r
// dw is a sum over every row, so it is computed deterministically: rows are
// cut into blocks whose count depends only on R, each block sums its rows in
// order into its own partial, and the partials are added in block order.
// Math is in f32 (f64 for f64). Backward has no eps to recompute r with, so
// even f64 uses the saved f32 r: its gradients carry a ~1e-7 relative error,
// well inside what gradcheck's finite differences resolve.
#include <cmath>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

template <typename T>
using Vec = Eigen::Array<T, Eigen::Dynamic, 1>;

// The weight in the compute type, once per call.
template <typename T>
Vec<compute_t<T>> widened(const Tensor& w) {
  Eigen::Map<const Vec<T>> m(ptr<T>(w), w.numel());
  return m.template cast<compute_t<T>>();
}

}  // namespace

void CpuBackend::rms_norm_forward(const Tensor& x, const Tensor& weight, double eps, Tensor& out, Tensor& rstd) {
  const char* kernel = "rms_norm";
  check_rms_norm_args(x, weight, rstd, kernel);
  check_rows_like(out, x, kernel, "out");
  const int64_t R = x.size(0), D = x.size(1);
  if (R == 0 || D == 0) return;
  float* rp = ptr<float>(rstd);
  dispatch_floating(x, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const Vec<C> w = widened<T>(weight);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, R, grain_for(D), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const auto xs = Eigen::Map<const Vec<T>>(xp + r * D, D).template cast<C>();  // lazy: no copy
        Eigen::Map<Vec<T>> orow(op + r * D, D);
        const C inv = C(1) / std::sqrt(xs.square().sum() / static_cast<C>(D) + static_cast<C>(eps));
        orow = (xs * inv * w).template cast<T>();
        rp[r] = static_cast<float>(inv);
      }
    });
  });
}

void CpuBackend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                   Tensor& dx, Tensor& dweight) {
  const char* kernel = "rms_norm_backward";
  check_rms_norm_backward_args(dy, x, weight, rstd, dx, dweight);
  const int64_t R = x.size(0), D = x.size(1);
  if (D == 0) return;
  const float* rp = ptr<float>(rstd);
  dispatch_floating(x, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const Vec<C> w = widened<T>(weight);
    const T* xp = ptr<T>(x);
    const T* gp = ptr<T>(dy);
    T* dxp = ptr<T>(dx);
    // At most 128 blocks of at least 64 rows: partials cost <= 128 * D values.
    const int64_t block_rows = std::max<int64_t>(64, (R + 127) / 128);
    const int64_t nblocks = (R + block_rows - 1) / block_rows;
    std::vector<Vec<C>> partial(static_cast<size_t>(nblocks));
    parallel_for(0, nblocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        Vec<C>& dw = partial[static_cast<size_t>(blk)];
        dw = Vec<C>::Zero(D);
        const int64_t r1 = std::min(R, (blk + 1) * block_rows);
        for (int64_t r = blk * block_rows; r < r1; ++r) {
          // Lazy expressions: the rows are read in place, nothing is allocated per row.
          const auto xs = Eigen::Map<const Vec<T>>(xp + r * D, D).template cast<C>();
          const auto gs = Eigen::Map<const Vec<T>>(gp + r * D, D).template cast<C>();
          const C inv = static_cast<C>(rp[r]);
          const C dot = (gs * w * xs).sum();
          const C k = inv * inv * inv / static_cast<C>(D) * dot;
          Eigen::Map<Vec<T>>(dxp + r * D, D) = (inv * gs * w - k * xs).template cast<T>();
          dw += gs * xs * inv;
        }
      }
    });
    Vec<C> total = Vec<C>::Zero(D);
    for (const Vec<C>& p : partial) total += p;
    Eigen::Map<Vec<T>>(ptr<T>(dweight), D) = total.template cast<T>();
  });
}

}  // namespace lory
