// rope.cpp — rotary position embedding (Su et al. 2021, RoFormer), in the
// Hugging Face LLaMA "rotate_half" layout: element i of a head is paired with
// element i + Dh/2 (not with its neighbour), so checkpoints from HF load as is.
//
// For pair i in [0, Dh/2) at position p = pos_offset + l:
//   inv_freq_i = theta^(-2i / Dh),  angle = p * inv_freq_i
//   out[i]        = x[i] cos(angle) - x[i + Dh/2] sin(angle)
//   out[i + Dh/2] = x[i + Dh/2] cos(angle) + x[i] sin(angle)
// A rotation's inverse (and transpose, hence its backward) is the rotation by
// -angle. Angles are computed in f64: at position 4096 an f32 angle is off by
// ~2e-4 rad, which f64 avoids for free since the table is built once per call.
#include <cmath>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::rope(const Tensor& x, Tensor& out, int64_t pos_offset, double theta, bool inverse) {
  const char* kernel = inverse ? "rope_backward" : "rope";
  check_rope_args(x, out, kernel);
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), Dh = x.size(3), half = Dh / 2;
  if (x.numel() == 0) return;
  dispatch_floating(x, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    // cos/sin of every (position, pair): [L, half].
    std::vector<C> cos_t(static_cast<size_t>(L * half)), sin_t(static_cast<size_t>(L * half));
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
      inv_freq[static_cast<size_t>(i)] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(Dh));
    const double sign = inverse ? -1.0 : 1.0;
    parallel_for(0, L, grain_for(half * 16), [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const double pos = static_cast<double>(pos_offset + l);
        for (int64_t i = 0; i < half; ++i) {
          const double angle = pos * inv_freq[static_cast<size_t>(i)];
          cos_t[static_cast<size_t>(l * half + i)] = static_cast<C>(std::cos(angle));
          sin_t[static_cast<size_t>(l * half + i)] = static_cast<C>(sign * std::sin(angle));
        }
      }
    });
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, B * L * H, grain_for(Dh), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t l = (row / H) % L;
        const C* c = cos_t.data() + l * half;
        const C* s = sin_t.data() + l * half;
        const T* xr = xp + row * Dh;
        T* orow = op + row * Dh;
        LORY_SIMD
        for (int64_t i = 0; i < half; ++i) {
          const C x1 = static_cast<C>(xr[i]), x2 = static_cast<C>(xr[i + half]);
          orow[i] = cast_to<T>(x1 * c[i] - x2 * s[i]);
          orow[i + half] = cast_to<T>(x2 * c[i] + x1 * s[i]);
        }
      }
    });
  });
}

}  // namespace lory
