// copy.cpp — moving and making elements: strided copy with dtype conversion,
// fill and arange (random numbers are random.cpp).
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/strided.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

constexpr int64_t kTile = 32;

// A transpose-like copy: in the two innermost (merged) dims [rows, cols], dst
// steps along cols with stride 1 but src along rows. Walking dst's order would
// touch a new cache line of src on every element; 32x32 tiles keep both sides
// in cache. Returns false (and does nothing) for any other layout.
template <typename S, typename D>
bool copy_transposed(const S* s, D* d, const StridedLayout<2>& lay) {
  const size_t nd = lay.sizes.size();
  if (nd < 2) return false;
  const std::vector<int64_t>& ds = lay.strides[0];
  const std::vector<int64_t>& ss = lay.strides[1];
  if (!(ds[nd - 1] == 1 && ss[nd - 1] != 1 && ss[nd - 2] == 1)) return false;
  const int64_t rows = lay.sizes[nd - 2], cols = lay.sizes[nd - 1];
  if (rows < kTile || cols < kTile) return false;  // a thin plane: the plain walk does as well
  const int64_t d_row = ds[nd - 2], s_col = ss[nd - 1];
  // Offsets (dst, src) of every [rows, cols] plane, from the outer dims.
  const Shape outer(lay.sizes.begin(), lay.sizes.end() - 2);
  const Strides od(ds.begin(), ds.end() - 2), os(ss.begin(), ss.end() - 2);
  const StridedLayout<2> planes_layout(outer, {&od, &os});
  std::vector<std::array<int64_t, 2>> planes;
  auto collect = [&](int64_t, const auto& off, int64_t n, const auto& in) {
    for (int64_t j = 0; j < n; ++j) planes.push_back({off[0] + j * in[0], off[1] + j * in[1]});
  };
  planes_layout.walk(0, planes_layout.numel, collect);
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t items = static_cast<int64_t>(planes.size()) * row_tiles;
  parallel_for(0, items, grain_for(kTile * cols), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const auto [pd, ps] = planes[static_cast<size_t>(item / row_tiles)];
      const int64_t r0 = (item % row_tiles) * kTile, r1 = std::min(rows, r0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) d[pd + r * d_row + c] = cast_to<D>(s[ps + r + c * s_col]);
      }
    }
  });
  return true;
}

}  // namespace

// dst[i] = src[i] over dst's shape. Same dtype and both contiguous is a
// memcpy (split across threads: one core does not saturate memory bandwidth);
// a transpose goes tile by tile; anything else walks both views and converts
// element by element.
void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  check_copy_args(src, dst);
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const size_t elem = dtype_size(dst.dtype());
    const char* s = static_cast<const char*>(src.data_ptr());
    char* d = static_cast<char*>(dst.data_ptr());
    if (s == d) return;
    const size_t bytes = static_cast<size_t>(dst.numel()) * elem;
    if (s < d + bytes && d < s + bytes) {  // overlapping views of one storage: one memmove keeps the order right
      std::memmove(d, s, bytes);
      return;
    }
    parallel_for(0, dst.numel(), kParallelGrain * 8 / static_cast<int64_t>(elem), [&](int64_t b, int64_t e) {
      std::memmove(d + b * elem, s + b * elem, static_cast<size_t>(e - b) * elem);
    });
    return;
  }
  dispatch(src.dtype(), [&](auto stag) {
    using S = typename decltype(stag)::type;
    dispatch(dst.dtype(), [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      const S* s = ptr<S>(src);
      D* d = ptr<D>(dst);
      if (copy_transposed(s, d, StridedLayout<2>(dst.shape(), {&dst.strides(), &src.strides()}))) return;
      for_each_segment<2>(dst.shape(), {&dst.strides(), &src.strides()},
                          [&](int64_t, const auto& off, int64_t n, const auto& in) {
                            D* dp = d + off[0];
                            const S* sp = s + off[1];
                            if (in[0] == 1 && in[1] == 1) {
                              LORY_SIMD
                              for (int64_t j = 0; j < n; ++j) dp[j] = cast_to<D>(sp[j]);
                            } else {
                              for (int64_t j = 0; j < n; ++j) dp[j * in[0]] = cast_to<D>(sp[j * in[1]]);
                            }
                          });
    });
  });
}

void CpuBackend::fill(Tensor& out, double value) {
  check_fill_args(out, "fill");
  dispatch(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = cast_to<T>(value);
    T* o = ptr<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()}, [&](int64_t, const auto& off, int64_t n, const auto& in) {
      T* p = o + off[0];
      if (in[0] == 1) {
        LORY_SIMD
        for (int64_t j = 0; j < n; ++j) p[j] = v;
      } else {
        for (int64_t j = 0; j < n; ++j) p[j * in[0]] = v;
      }
    });
  });
}

// Computed in double from the index (not by repeated addition), so element i
// is exact whatever the length, then converted to out's dtype.
void CpuBackend::arange(Tensor& out, double start, double step) {
  check_fill_args(out, "arange");
  dispatch(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = ptr<T>(out);
    for_each_segment<1>(out.shape(), {&out.strides()}, [&](int64_t i0, const auto& off, int64_t n, const auto& in) {
      for (int64_t j = 0; j < n; ++j) o[off[0] + j * in[0]] = cast_to<T>(start + static_cast<double>(i0 + j) * step);
    });
  });
}

}  // namespace lory
