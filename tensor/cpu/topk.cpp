// topk.cpp — the positions of each row's k largest values (Backend::topk).
//
// Expert Choice routing (nn/expert_choice_ffn.h) is its user: every expert
// (a row of the [E, n] scores) picks the k tokens or segments it scores
// highest. Each row is ranked by (topk_key(value) descending, position
// ascending) — a total order, so ties and NaN are decided the same way here
// and in cuda/topk.cu — and std::partial_sort keeps only the first k:
// O(n log k) per row, rows in parallel.
#include <algorithm>
#include <numeric>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::topk(const Tensor& x, int64_t k, Tensor& indices) {
  check_topk_args(x, k, indices);
  const int64_t R = x.size(0), n = x.size(1);
  int64_t* out = ptr<int64_t>(indices);
  dispatch_floating(x, "topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = ptr<T>(x);
    parallel_for(0, R, grain_for(n * 8), [&](int64_t b, int64_t e) {
      std::vector<uint32_t> key(static_cast<size_t>(n));
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t r = b; r < e; ++r) {
        const T* row = xp + r * n;
        for (int64_t j = 0; j < n; ++j) key[static_cast<size_t>(j)] = topk_key(static_cast<float>(row[j]));
        std::iota(order.begin(), order.end(), int64_t{0});
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t c) {
          const uint32_t ka = key[static_cast<size_t>(a)], kc = key[static_cast<size_t>(c)];
          return ka != kc ? ka > kc : a < c;
        });
        std::copy(order.begin(), order.begin() + k, out + r * k);
      }
    });
  });
}

}  // namespace lory
