// optimizer.cpp — the fused AdamW update and the squared gradient norm on
// the CPU: the reference for cuda/optimizer.cu (tensor/backend.h has the
// contract, train/adamw.h the algorithm).
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"
#include "tensor/philox.h"

namespace lory {

using namespace cpu;

namespace {

constexpr int64_t kNormChunk = 1 << 16;  // elements per f64 partial of sum_squares

// f32 -> bf16 by adding 16 random bits below the kept ones and truncating
// (NaN and Inf, and values that would carry into Inf, round to nearest).
Eigen::bfloat16 round_stochastic(float x, uint32_t random) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u) return Eigen::bfloat16(x);
  const uint32_t r = bits + (random & 0xffffu);
  if ((r & 0x7f800000u) == 0x7f800000u) return Eigen::bfloat16(x);  // carried into Inf
  return Eigen::numext::bit_cast<Eigen::bfloat16>(static_cast<uint16_t>(r >> 16));
}

}  // namespace

void CpuBackend::adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* publish,
                            const std::vector<AdamWSlot>& slots, const AdamWHyper& h) {
  check_adamw_args(param, grad, exp_avg, exp_avg_sq, publish, slots, h);
  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2), eps = static_cast<float>(h.eps);
  const float clip = static_cast<float>(h.clip);
  for (const AdamWSlot& s : slots) {
    const float step_size = static_cast<float>(s.step_size), inv_sqrt_bc2 = static_cast<float>(s.inv_sqrt_bc2);
    const float keep = static_cast<float>(s.keep);
    const int64_t begin = s.offset, end = s.offset + s.numel;
#pragma omp parallel for schedule(static) if (s.numel > 32768)
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i] * clip;
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      p[i] = p[i] * keep - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
    if (!publish) continue;
    if (publish->dtype() == DType::f16) {
      Eigen::half* out = publish->data<Eigen::half>();
#pragma omp parallel for schedule(static) if (s.numel > 32768)
      for (int64_t i = begin; i < end; ++i) out[i] = Eigen::half(p[i]);
    } else if (h.rounding_seed == 0) {
      Eigen::bfloat16* out = publish->data<Eigen::bfloat16>();
#pragma omp parallel for schedule(static) if (s.numel > 32768)
      for (int64_t i = begin; i < end; ++i) out[i] = Eigen::bfloat16(p[i]);
    } else {
      Eigen::bfloat16* out = publish->data<Eigen::bfloat16>();
#pragma omp parallel for schedule(static) if (s.numel > 32768)
      for (int64_t i = begin; i < end; ++i) {
        const philox::Words r = philox::philox4x32_10(static_cast<uint64_t>(i) / 4, h.rounding_seed);
        out[i] = round_stochastic(p[i], r.w[i % 4]);
      }
    }
  }
  param.bump_version();
  if (publish) publish->bump_version();
}

void CpuBackend::sum_squares(const Tensor& x, Tensor& out) {
  check_sum_squares_args(x, out);
  const float* g = x.data<float>();
  const int64_t n = x.numel(), chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    const int64_t end = std::min(n, (c + 1) * kNormChunk);
    // Vector lanes of partial sums (combined in a fixed order): without
    // them the sum is one dependency chain, 4x slower than memory.
    LORY_SIMD_SUM(s)
    for (int64_t i = c * kNormChunk; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0;
  for (double s : partial) total += s;  // fixed order: deterministic
  *out.data<double>() = total;
}

}  // namespace lory
