// random.cpp — uniform and normal numbers from the counter-based Philox
// generator (tensor/philox.h), the same numbers cuda/random.cu draws.
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"
#include "tensor/philox.h"

namespace lory {

using namespace cpu;

// Element i (row-major) is philox::uniform_at / normal_at(seed, offset, i):
// the same numbers the CUDA kernel draws, whatever the thread split.
void CpuBackend::random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) {
  check_fill_args(out, "random");
  dispatch(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = ptr<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()}, [&](int64_t i0, const auto& off, int64_t n, const auto& in) {
      T* p = o + off[0];
      if (dist == RandomDist::uniform) {
        const double width = b - a;
        for (int64_t j = 0; j < n; ++j)
          p[j * in[0]] = cast_to<T>(a + width * philox::uniform_at(seed, offset, static_cast<uint64_t>(i0 + j)));
      } else {
        for (int64_t j = 0; j < n; ++j)
          p[j * in[0]] = cast_to<T>(a + b * philox::normal_at(seed, offset, static_cast<uint64_t>(i0 + j)));
      }
    });
  });
}

}  // namespace lory
