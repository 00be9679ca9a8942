// segment_mean.cpp — the mean hidden state of each routing segment (Lory §3.1).
//
// x: [B, L, d] -> out: [B, N, d], N = ceil(L / T). Segment k covers tokens
// [kT, min(L, (k+1)T)); its mean is over the tokens it really has, so a short
// last segment (a sequence not a multiple of T, or a prompt) is not diluted
// by padding. Sums are in the compute type (f32 for bf16/f16), in token order.
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::segment_mean(const Tensor& x, int64_t T, Tensor& out) {
  const int64_t N = check_segment_mean_args(x, T, out);
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2);
  if (out.numel() == 0) return;
  dispatch_floating(x, "segment_mean", [&](auto tag) {
    using T_ = typename decltype(tag)::type;
    using C = compute_t<T_>;
    const T_* xp = ptr<T_>(x);
    T_* op = ptr<T_>(out);
    parallel_for(0, B * N, grain_for(T * d), [&](int64_t b, int64_t e) {
      std::vector<C> acc(static_cast<size_t>(d));
      for (int64_t seg = b; seg < e; ++seg) {
        const int64_t batch = seg / N, k = seg % N;
        const int64_t t0 = k * T, t1 = std::min(L, t0 + T);
        std::fill(acc.begin(), acc.end(), C(0));
        for (int64_t t = t0; t < t1; ++t) {
          const T_* row = xp + (batch * L + t) * d;
          for (int64_t c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += static_cast<C>(row[c]);
        }
        const C count = static_cast<C>(t1 - t0);
        for (int64_t c = 0; c < d; ++c) op[seg * d + c] = cast_to<T_>(acc[static_cast<size_t>(c)] / count);
      }
    });
  });
}

}  // namespace lory
