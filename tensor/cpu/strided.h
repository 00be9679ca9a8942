// strided.h — visiting every element of N views of one shape, in row-major
// order, one contiguous-in-index run at a time.
//
// for_each_segment(shape, {&s0, &s1, ...}, f) calls
//   f(linear, offsets, count, inner)
// for runs of `count` elements that differ only in the innermost index:
// element j of the run (0 <= j < count) is element linear + j in row-major
// order, and sits at offsets[k] + j * inner[k] elements from operand k's
// data_ptr(). The kernel's inner loop over j is then a plain (vectorisable)
// loop, with a fast path when inner[k] == 1.
//
// Before walking, dims of size 1 are dropped and neighbouring dims that every
// operand steps through as one (stride[d] == stride[d+1] * size[d+1]) are
// merged, so contiguous operands of any shape become one flat run, and a
// broadcast [N, 1] -> [N, D] keeps D as its run with stride 0.
//
// The runs are split across threads in ranges of at least kParallelGrain
// elements; f must only write the elements it is given.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/cpu/parallel.h"
#include "tensor/shape.h"

namespace lory::cpu {

template <size_t N>
struct StridedLayout {
  std::vector<int64_t> sizes;                   // outermost first, after merging
  std::array<std::vector<int64_t>, N> strides;  // per operand, per merged dim
  int64_t numel = 1;

  StridedLayout(const Shape& shape, const std::array<const Strides*, N>& in) {
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {  // innermost first
      const int64_t size = shape[d];
      numel *= size;
      if (size == 1) continue;
      bool merge = !sizes.empty();
      for (size_t k = 0; k < N && merge; ++k) merge = (*in[k])[d] == strides[k].back() * sizes.back();
      if (merge) {  // the merged dim keeps the inner stride
        sizes.back() *= size;
      } else {
        sizes.push_back(size);
        for (size_t k = 0; k < N; ++k) strides[k].push_back((*in[k])[d]);
      }
    }
    // Built innermost-first; store outermost-first.
    std::reverse(sizes.begin(), sizes.end());
    for (auto& s : strides) std::reverse(s.begin(), s.end());
  }

  // Visits elements [begin, end) in row-major order.
  template <typename F>
  void walk(int64_t begin, int64_t end, F& f) const {
    std::array<int64_t, N> offsets{}, inner{};
    if (sizes.empty()) {  // a single element (0-d, or all dims of size 1)
      inner.fill(1);
      if (begin < end) f(int64_t{0}, offsets, int64_t{1}, inner);
      return;
    }
    const int64_t nd = static_cast<int64_t>(sizes.size());
    const int64_t inner_size = sizes[nd - 1];
    for (size_t k = 0; k < N; ++k) inner[k] = strides[k][nd - 1];
    // Multi-index of `begin` and the offsets of its outer dims.
    std::vector<int64_t> idx(nd);
    std::array<int64_t, N> base{};
    int64_t rem = begin;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
      if (d < nd - 1)
        for (size_t k = 0; k < N; ++k) base[k] += idx[d] * strides[k][d];
    }
    int64_t pos = begin;
    while (pos < end) {
      const int64_t count = std::min(inner_size - idx[nd - 1], end - pos);
      for (size_t k = 0; k < N; ++k) offsets[k] = base[k] + idx[nd - 1] * inner[k];
      f(pos, offsets, count, inner);
      pos += count;
      idx[nd - 1] = 0;
      for (int64_t d = nd - 2; d >= 0; --d) {  // carry into the outer dims
        for (size_t k = 0; k < N; ++k) base[k] += strides[k][d];
        if (++idx[d] < sizes[d]) break;
        for (size_t k = 0; k < N; ++k) base[k] -= strides[k][d] * sizes[d];
        idx[d] = 0;
      }
    }
  }
};

template <size_t N, typename F>
void for_each_segment(const Shape& shape, const std::array<const Strides*, N>& strides, F&& f) {
  const StridedLayout<N> layout(shape, strides);
  if (layout.numel == 0) return;
  parallel_for(0, layout.numel, kParallelGrain, [&](int64_t b, int64_t e) { layout.walk(b, e, f); });
}

}  // namespace lory::cpu
