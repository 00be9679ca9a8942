// index.cpp — gather (index_select) and its adjoint scatter-add (index_add).
//
// Both see a tensor as [outer, size, inner] around the indexed dim: outer is
// the product of the dims before it, inner of the dims after. A selected
// slice is then `outer` runs of `inner` elements.
//
// Every index is checked before any element moves, so a bad index throws a
// message naming the value and the bound, and leaves `out` untouched.
#include <cstring>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

// The indices (contiguous i32/i64: check_index_*_args) as int64, each
// checked against [0, size).
std::vector<int64_t> checked_indices(const Tensor& idx, int64_t size, const char* kernel, int64_t dim,
                                     const Tensor& x) {
  const int64_t n = idx.numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  dispatch_index(idx, kernel, [&](auto tag) {
    using I = typename decltype(tag)::type;
    const I* p = ptr<I>(idx);
    for (int64_t j = 0; j < n; ++j) {
      const auto v = static_cast<int64_t>(p[j]);
      LORY_CHECK(v >= 0 && v < size, kernel, ": index ", v, " (position ", j, ") is out of range for dim ", dim,
                 " of size ", size, " (tensor ", x.describe(), ")");
      out[static_cast<size_t>(j)] = v;
    }
  });
  return out;
}

// Element offsets (in x) of every outer position, from x's strides of dims [0, dim).
std::vector<int64_t> outer_offsets(const Tensor& x, int64_t dim, int64_t outer) {
  std::vector<int64_t> off(static_cast<size_t>(outer), 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, acc = 0;
    for (int64_t d = dim - 1; d >= 0; --d) {
      acc += (rem % x.shape()[d]) * x.strides()[d];
      rem /= x.shape()[d];
    }
    off[static_cast<size_t>(o)] = acc;
  }
  return off;
}

}  // namespace

// out[o, j, i] = x[o, idx[j], i]; out is contiguous, x any strides.
void CpuBackend::index_select(const Tensor& x, int64_t dim, const Tensor& idx, Tensor& out) {
  const DimSplit s = check_index_select_args(x, dim, idx, out);
  const std::vector<int64_t> index = checked_indices(idx, s.size, "index_select", dim, x);
  const int64_t n = static_cast<int64_t>(index.size());
  if (out.numel() == 0) return;
  const std::vector<int64_t> x_outer = outer_offsets(x, dim, s.outer);
  const int64_t x_dim_stride = x.stride(dim);
  // The inner dims of x, merged where they can be: one run (the usual case,
  // e.g. an embedding row) is a memcpy or a strided loop; several need a walk.
  const Shape inner_shape(x.shape().begin() + dim + 1, x.shape().end());
  const Strides inner_strides(x.strides().begin() + dim + 1, x.strides().end());
  const StridedLayout<1> inner(inner_shape, {&inner_strides});
  const bool one_run = inner.sizes.size() <= 1;
  const int64_t run_stride = inner.sizes.empty() ? 1 : inner.strides[0][0];
  dispatch(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, s.outer * n, grain_for(s.inner), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t o = row / n, j = row % n;
        const T* src = xp + x_outer[static_cast<size_t>(o)] + index[static_cast<size_t>(j)] * x_dim_stride;
        T* dst = op + row * s.inner;
        if (one_run && run_stride == 1) {
          std::memcpy(static_cast<void*>(dst), static_cast<const void*>(src), sizeof(T) * s.inner);
        } else if (one_run) {
          for (int64_t i = 0; i < s.inner; ++i) dst[i] = src[i * run_stride];
        } else {
          auto copy_run = [&](int64_t pos, const auto& off, int64_t cnt, const auto& in) {
            for (int64_t i = 0; i < cnt; ++i) dst[pos + i] = src[off[0] + i * in[0]];
          };
          inner.walk(0, s.inner, copy_run);
        }
      }
    });
  });
}

// out[o, idx[j], i] += src[o, j, i] for j = 0, 1, ... in order, so repeated
// indices accumulate the same way on every run. Threads split the (o, i)
// columns, never j: each output element is owned by one thread, which adds
// its contributions in index order (no atomics, deterministic).
void CpuBackend::index_add(Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  const DimSplit s = check_index_add_args(out, dim, idx, src);
  const std::vector<int64_t> index = checked_indices(idx, s.size, "index_add", dim, out);
  const int64_t n = static_cast<int64_t>(index.size());
  if (src.numel() == 0) return;
  dispatch(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    const T* sp = ptr<T>(src);  // contiguous (check_index_add_args): rows are runs of s.inner
    T* op = ptr<T>(out);
    // Columns in chunks of >= 64 elements, so two threads never share a cache line.
    const int64_t width = std::min<int64_t>(s.inner, 64);
    const int64_t chunks = (s.inner + width - 1) / width;
    parallel_for(0, s.outer * chunks, grain_for(n * width), [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t o = item / chunks, i0 = (item % chunks) * width, w = std::min(width, s.inner - i0);
        for (int64_t j = 0; j < n; ++j) {
          T* dst = op + (o * s.size + index[static_cast<size_t>(j)]) * s.inner + i0;
          const T* from = sp + (o * n + j) * s.inner + i0;
          LORY_SIMD
          for (int64_t i = 0; i < w; ++i) dst[i] = cast_to<T>(static_cast<C>(dst[i]) + static_cast<C>(from[i]));
        }
      }
    });
  });
}

}  // namespace lory
