// Kernels that the CUDA library brought to the backend interface, checked on
// the CPU against naive formulas: the fused residual add + RMSNorm, segment
// means, the fused AdamW update (with stochastic rounding) and the squared
// gradient norm. tests/cuda/ checks the CUDA versions against these.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tensor/graph.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

using namespace lory;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

Tensor randn_f(const Shape& shape, uint64_t seed, DType t = DType::f32) {
  manual_seed(seed);
  return randn(shape).to(t);
}

}  // namespace

TEST_CASE("fused: add_rms_norm equals the add followed by rms_norm, bit for bit") {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    const Tensor x = randn_f({3, 5, 16}, 1, t), r = randn_f({3, 5, 16}, 2, t), w = randn_f({16}, 3, t);
    const AddRmsNorm fused = add_rms_norm(x, r, w, 1e-5);
    const Tensor h = x + r;
    CHECK(max_abs_diff(fused.sum, h) == 0.0);
    CHECK(max_abs_diff(fused.normed, rms_norm(h, w, 1e-5)) == 0.0);
    CHECK(fused.normed.dtype() == t);
  }
  CHECK_THROWS_WITH_AS(add_rms_norm(zeros({2, 4}), zeros({2, 3}), ones({4}), 1e-5),
                       doctest::Contains("x and residual must have one shape"), Error);
}

// The CPU backend's own fused kernel (tensor/cpu/rms_norm.cpp), called
// directly, against the two kernels it fuses: binary(add) then
// rms_norm_forward. Rows long enough for the vector loops and their tails
// (D = 1000 is not a multiple of 8 or 16), and enough rows for several threads.
TEST_CASE("fused: the CPU add_rms_norm kernel equals binary(add) then rms_norm_forward, in f64 and f32") {
  Backend& be = cpu_backend();
  for (DType t : {DType::f64, DType::f32, DType::bf16}) {
    for (const auto& [R, D] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 13}, {300, 1000}}) {
      const Tensor x = randn_f({R, D}, 10, t), r = randn_f({R, D}, 11, t), w = randn_f({D}, 12, t);
      Tensor sum = empty({R, D}, {t}), out = empty({R, D}, {t}), rstd = empty({R});
      be.add_rms_norm_forward(x, r, w, 1e-6, sum, out, rstd);
      Tensor h = empty({R, D}, {t}), ref = empty({R, D}, {t}), ref_rstd = empty({R});
      be.binary(BinaryOp::add, x, r, h);
      be.rms_norm_forward(h, w, 1e-6, ref, ref_rstd);
      const std::string what = std::string(dtype_name(t)) + " [" + std::to_string(R) + ", " + std::to_string(D) + "]";
      CHECK_MESSAGE(max_abs_diff(sum, h) == 0.0, what);
      CHECK_MESSAGE(max_abs_diff(out, ref) == 0.0, what);
      CHECK_MESSAGE(max_abs_diff(rstd, ref_rstd) == 0.0, what);
    }
  }
  // In f64, also against the formula.
  const Tensor x = randn_f({4, 6}, 13, DType::f64), r = randn_f({4, 6}, 14, DType::f64),
               w = randn_f({6}, 15, DType::f64);
  Tensor sum = empty({4, 6}, {DType::f64}), out = empty({4, 6}, {DType::f64}), rstd = empty({4});
  be.add_rms_norm_forward(x, r, w, 1e-6, sum, out, rstd);
  const std::vector<double> xv = x.to_vector<double>(), rv = r.to_vector<double>(), wv = w.to_vector<double>(),
                            ov = out.to_vector<double>();
  for (size_t row = 0; row < 4; ++row) {
    double ss = 0;
    for (size_t c = 0; c < 6; ++c) ss += (xv[row * 6 + c] + rv[row * 6 + c]) * (xv[row * 6 + c] + rv[row * 6 + c]);
    const double inv = 1.0 / std::sqrt(ss / 6 + 1e-6);
    for (size_t c = 0; c < 6; ++c)
      CHECK(ov[row * 6 + c] == doctest::Approx((xv[row * 6 + c] + rv[row * 6 + c]) * inv * wv[c]).epsilon(1e-13));
  }
}

TEST_CASE("fused: segment_mean averages each segment over its real tokens") {
  const int64_t B = 2, L = 7, d = 3, T = 3;  // segments of 3, 3 and 1 tokens
  const Tensor x = randn_f({B, L, d}, 4, DType::f64);
  const Tensor m = segment_mean(x, T);
  REQUIRE(m.shape() == Shape{B, 3, d});
  const std::vector<double> xv = x.to_vector<double>(), mv = m.to_vector<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t c = 0; c < d; ++c) {
        const int64_t t0 = k * T, t1 = std::min(L, t0 + T);
        double s = 0;
        for (int64_t t = t0; t < t1; ++t) s += xv[static_cast<size_t>((b * L + t) * d + c)];
        CHECK(mv[static_cast<size_t>((b * 3 + k) * d + c)] == doctest::Approx(s / double(t1 - t0)).epsilon(1e-14));
      }
  // bf16 sums in f32: the mean of a constant segment is the constant.
  CHECK(max_abs_diff(segment_mean(full({1, 5, 2}, 0.375, {DType::bf16}), 2), full({1, 3, 2}, 0.375)) == 0.0);
  CHECK_THROWS_WITH_AS(segment_mean(zeros({2, 4}), 2), doctest::Contains("must be [B, L, d]"), Error);
}

namespace {

struct Flat {
  Tensor p, g, m, v;
};

Flat make_flat(int64_t n, uint64_t seed) {
  Flat f{randn_f({n}, seed), randn_f({n}, seed + 1), randn_f({n}, seed + 2) * 0.1,
         abs(randn_f({n}, seed + 3) * 0.1)};
  return f;
}

}  // namespace

TEST_CASE("fused: adamw_step applies PyTorch's AdamW per slot and leaves the padding alone") {
  const int64_t n = 40;
  Flat f = make_flat(n, 10);
  const Flat before{f.p.clone(), f.g.clone(), f.m.clone(), f.v.clone()};
  // Two slots with different step counts and decay; [13, 16) and [37, 40) are padding.
  const std::vector<Backend::AdamWSlot> slots{{0, 13, 1e-2 / (1 - 0.9), 1 / std::sqrt(1 - 0.95), 1 - 1e-2 * 0.1},
                                              {16, 21, 1e-2 / (1 - std::pow(0.9, 3)),
                                               1 / std::sqrt(1 - std::pow(0.95, 3)), 1.0}};
  const Backend::AdamWHyper h{0.9, 0.95, 1e-8, 0.5, 0};
  Tensor pub = zeros({n}, {DType::bf16});
  cpu_backend().adamw_step(f.p, f.g, f.m, f.v, &pub, slots, h);
  const std::vector<double> p0 = before.p.to_vector<double>(), g0 = before.g.to_vector<double>(),
                            m0 = before.m.to_vector<double>(), v0 = before.v.to_vector<double>();
  const std::vector<double> p1 = f.p.to_vector<double>(), m1 = f.m.to_vector<double>(), v1 = f.v.to_vector<double>(),
                            b1 = pub.to_vector<double>(), rounded = f.p.to(DType::bf16).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    const Backend::AdamWSlot* s = i < 13 ? &slots[0] : (i >= 16 && i < 37 ? &slots[1] : nullptr);
    if (!s) {  // padding: untouched
      CHECK(p1[k] == p0[k]);
      CHECK(m1[k] == m0[k]);
      CHECK(b1[k] == 0.0);
      continue;
    }
    const double g = g0[k] * 0.5;
    const double m = 0.9 * m0[k] + 0.1 * g, v = 0.95 * v0[k] + 0.05 * g * g;
    const double p = p0[k] * s->keep - s->step_size * m / (std::sqrt(v) * s->inv_sqrt_bc2 + 1e-8);
    CHECK(m1[k] == doctest::Approx(m).epsilon(1e-6));
    CHECK(v1[k] == doctest::Approx(v).epsilon(1e-6));
    CHECK(p1[k] == doctest::Approx(p).epsilon(1e-6));
    CHECK(b1[k] == rounded[k]);  // the bf16 copy is the new weight, rounded to nearest
  }
  // Overlapping or out-of-range slots are refused with the slot named.
  CHECK_THROWS_WITH_AS(cpu_backend().adamw_step(f.p, f.g, f.m, f.v, nullptr, {{30, 20, 1, 1, 1}}, h),
                       doctest::Contains("slot [30, 50) overlaps the slot before it or lies outside the 40 elements"), Error);
}

TEST_CASE("fused: stochastic rounding to bf16 is unbiased and stays within one bf16 step") {
  // x = 1 + 2^-9 lies a quarter of the way from 1 to its bf16 neighbour
  // 1 + 2^-7 (bf16 keeps 7 mantissa bits: the step above 1 is 2^-7).
  const int64_t n = 1 << 14;
  const float x = 1.0f + 0.25f * 0.0078125f;
  Tensor p = full({n}, x), g = zeros({n}), m = zeros({n}), v = zeros({n}), pub = zeros({n}, {DType::bf16});
  // lr 0: the update leaves p as is, so publish rounds x itself.
  cpu_backend().adamw_step(p, g, m, v, &pub, {{0, n, 0.0, 1.0, 1.0}}, {0.9, 0.95, 1e-8, 1.0, 12345});
  const std::vector<double> r = pub.to_vector<double>();
  int64_t up = 0;
  for (double y : r) {
    CHECK((y == 1.0 || y == 1.0078125));
    up += y > 1.0;
  }
  const double frac = static_cast<double>(up) / static_cast<double>(n);
  CHECK(frac == doctest::Approx(0.25).epsilon(0.08));  // about a quarter round up
  // Round-to-nearest (seed 0) always gives 1.
  cpu_backend().adamw_step(p, g, m, v, &pub, {{0, n, 0.0, 1.0, 1.0}}, {0.9, 0.95, 1e-8, 1.0, 0});
  CHECK(pub.to_vector<double>()[0] == 1.0);
}

TEST_CASE("fused: sum_squares is the f64 sum of squares") {
  const Tensor x = randn_f({200003}, 20);
  Tensor out = empty({1}, {DType::f64});
  cpu_backend().sum_squares(x, out);
  double ref = 0;
  for (double v : x.to_vector<double>()) ref += v * v;
  CHECK(out.to_vector<double>()[0] == doctest::Approx(ref).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(cpu_backend().sum_squares(x.to(DType::f64), out), doctest::Contains("contiguous f32"), Error);
}
