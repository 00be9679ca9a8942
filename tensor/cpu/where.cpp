// where.cpp — out = cond ? a : b elementwise; cond, a and b are views of
// out's shape (stride 0 where broadcast), a and b of out's dtype.
//
// A selection, not arithmetic: elements are moved, never converted, so one
// loop serves every dtype. All-contiguous runs get a vectorised loop, anything
// else a strided one.
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  check_where_args(cond, a, b, out);
  dispatch(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool* cp = ptr<bool>(cond);
    const T* ap = ptr<T>(a);
    const T* bp = ptr<T>(b);
    T* op = ptr<T>(out);
    for_each_segment<4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()},
                        [&](int64_t, const auto& off, int64_t n, const auto& in) {
                          T* o = op + off[0];
                          const bool* c = cp + off[1];
                          const T* x = ap + off[2];
                          const T* y = bp + off[3];
                          if (in[0] == 1 && in[1] == 1 && in[2] == 1 && in[3] == 1) {
                            LORY_SIMD
                            for (int64_t j = 0; j < n; ++j) o[j] = c[j] ? x[j] : y[j];
                          } else {
                            for (int64_t j = 0; j < n; ++j)
                              o[j * in[0]] = c[j * in[1]] ? x[j * in[2]] : y[j * in[3]];
                          }
                        });
  });
}

}  // namespace lory
