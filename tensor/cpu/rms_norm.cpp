// rms_norm.cpp — RMSNorm (Zhang & Sennrich 2019) over the last dim, fused:
// Backend::rms_norm_forward, add_rms_norm_forward and rms_norm_backward
// (the CUDA versions are cuda/rms_norm.cu; the ops, tensor/ops/nn.cpp).
//
// Forward, per row x of length D:
//   r = 1 / sqrt(mean(x^2) + eps),   y = x * r * w
// and r is saved (f32 [R]). add_rms_norm first forms the row h = x + residual,
// rounded to the storage dtype exactly as binary(add) rounds it, writes it to
// `sum`, and normalises h while the row is still in cache: one pass over the
// rows instead of an add pass and a norm pass, and the same bits as the two
// (the norm of h is the very code rms_norm runs). Backward, with g = dy * w:
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

namespace {

// One row h of length D (a row of x, or of add_rms_norm's sum): y = h * r * w
// and *rstd = r. One code path for both forwards, so add_rms_norm normalises
// exactly as rms_norm does.
template <typename T>
void normalize_row(const T* h, const Vec<compute_t<T>>& w, int64_t D, double eps, T* y, float* rstd) {
  using C = compute_t<T>;
  const auto hs = Eigen::Map<const Vec<T>>(h, D).template cast<C>();  // lazy: no copy
  const C inv = C(1) / std::sqrt(hs.square().sum() / static_cast<C>(D) + static_cast<C>(eps));
  Eigen::Map<Vec<T>>(y, D) = (hs * inv * w).template cast<T>();
  *rstd = static_cast<float>(inv);
}

}  // namespace

void CpuBackend::rms_norm_forward(const Tensor& x, const Tensor& weight, double eps, Tensor& out, Tensor& rstd) {
  check_rms_norm_args(x, weight, out, rstd);
  const int64_t R = x.size(0), D = x.size(1);
  if (R == 0 || D == 0) return;
  float* rp = ptr<float>(rstd);
  dispatch_floating(x, "rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Vec<compute_t<T>> w = widened<T>(weight);
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, R, grain_for(D), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) normalize_row<T>(xp + r * D, w, D, eps, op + r * D, rp + r);
    });
  });
}

void CpuBackend::add_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                      Tensor& sum, Tensor& out, Tensor& rstd) {
  check_add_rms_norm_args(x, residual, weight, sum, out, rstd);
  const int64_t R = x.size(0), D = x.size(1);
  if (R == 0 || D == 0) return;
  float* rp = ptr<float>(rstd);
  dispatch_floating(x, "add_rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const Vec<C> w = widened<T>(weight);
    const T* xp = ptr<T>(x);
    const T* resp = ptr<T>(residual);
    T* sp = ptr<T>(sum);
    T* op = ptr<T>(out);
    parallel_for(0, R, grain_for(2 * D), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = xp + r * D;
        const T* rr = resp + r * D;
        T* h = sp + r * D;
        // h = x + residual, rounded as binary(add) rounds it (tensor/cpu/binary.cpp).
        LORY_SIMD
        for (int64_t c = 0; c < D; ++c) h[c] = cast_to<T>(static_cast<C>(xr[c]) + static_cast<C>(rr[c]));
        normalize_row<T>(h, w, D, eps, op + r * D, rp + r);
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
