// softmax.cpp — softmax and log_softmax of each row of a contiguous [R, C].
//
// Per row: subtract the row max (so exp never overflows), exponentiate with
// Eigen's vectorised exp, sum in f32 (f64 for f64), then scale (softmax) or
// shift by log of the sum (log_softmax, which never takes log of a rounded
// probability). Rows go to OpenMP threads; each row is one thread's, so the
// result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::softmax(const Tensor& x, Tensor& out, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_softmax_args(x, out, log);
  const int64_t R = x.size(0), C = x.size(1);
  if (R == 0 || C == 0) return;
  dispatch_floating(x, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Cmp = compute_t<T>;
    using ArrT = Eigen::Array<T, Eigen::Dynamic, 1>;
    using ArrC = Eigen::Array<Cmp, Eigen::Dynamic, 1>;
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, R, grain_for(C), [&](int64_t b, int64_t e) {
      // 16-bit inputs: the row widened, and its exponentials, in the compute type.
      std::vector<Cmp> wide_buf(std::is_same_v<T, Cmp> ? 0 : static_cast<size_t>(2 * C));
      for (int64_t r = b; r < e; ++r) {
        Eigen::Map<const ArrT> xr(xp + r * C, C);
        Eigen::Map<ArrT> orow(op + r * C, C);
        auto row_softmax = [&](const auto& xs) {
          const Cmp m = xs.template maxCoeff<Eigen::PropagateNaN>();
          if (log) {
            // (x - m) - log(sum), not x - (m + log(sum)): m + log(sum) would be
            // rounded at the magnitude of m (1000 + 0.92 keeps 4 digits in f32).
            const Cmp log_sum = std::log((xs - m).exp().sum());
            orow = ((xs - m) - log_sum).template cast<T>();
          } else if constexpr (std::is_same_v<T, Cmp>) {
            orow = (xs - m).exp();
            orow /= orow.sum();
          } else {
            Eigen::Map<ArrC> ex(wide_buf.data() + C, C);
            ex = (xs - m).exp();
            orow = (ex / ex.sum()).template cast<T>();
          }
        };
        if constexpr (std::is_same_v<T, Cmp>) {
          row_softmax(xr);
        } else {
          Eigen::Map<ArrC> xs(wide_buf.data(), C);
          xs = xr.template cast<Cmp>();
          row_softmax(xs);
        }
      }
    });
  });
}

}  // namespace lory
