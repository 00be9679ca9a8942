// reduce.cpp — row reductions of an [O, R] view.
//
// reduce: out[o] = sum/max/min over r of x[o, r]. Sums of floating types
// accumulate in double (a million f32 values keep ~f32 precision), integer
// sums in int64; max/min propagate NaN as torch.amax does.
//
// Two loop orders, picked from the strides (never from the thread count, so
// the result is the same on any number of threads):
//   * rows: each row is read along r. A row longer than kBlock is cut into
//     fixed blocks whose partial results are combined in block order, which
//     lets a few long rows (a full sum) use every thread deterministically.
//   * columns: when o is the unit-stride dim (a sum over dim 0 of [N, D], the
//     bias gradient), a row is scattered through memory; instead every thread
//     takes a range of o and streams over r, adding whole contiguous runs.
#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

constexpr int64_t kBlock = 32768;

// The accumulator of one reduction: what it starts from, how it takes an
// element, how two partial results combine.
template <typename T, ReduceOp Op>
struct Reducer {
  using A = std::conditional_t<Op == ReduceOp::sum, accum_t<T>, compute_t<T>>;
  static A init() {
    if constexpr (Op == ReduceOp::sum) return A(0);
    else if constexpr (std::is_same_v<A, bool>) return Op == ReduceOp::min;
    else if constexpr (std::numeric_limits<A>::has_infinity)
      return Op == ReduceOp::max ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
    else return Op == ReduceOp::max ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
  }
  static A combine(A acc, A v) {
    if constexpr (Op == ReduceOp::sum) return acc + v;
    else if constexpr (is_float_v<T>) return Op == ReduceOp::max ? max_nan(acc, v) : min_nan(acc, v);
    else return Op == ReduceOp::max ? (acc >= v ? acc : v) : (acc <= v ? acc : v);
  }
  static A take(T v) { return static_cast<A>(static_cast<compute_t<T>>(v)); }

  // One run of n elements at stride s.
  static A run(const T* p, int64_t n, int64_t s) {
    A acc = init();
    if constexpr (Op == ReduceOp::sum) {
      if (s == 1) {
        LORY_SIMD_SUM(acc)
        for (int64_t j = 0; j < n; ++j) acc += take(p[j]);
        return acc;
      }
    }
    for (int64_t j = 0; j < n; ++j) acc = combine(acc, take(p[j * s]));
    return acc;
  }
};

template <typename T, ReduceOp Op>
void reduce_rows(const T* x, int64_t O, int64_t R, int64_t so, int64_t sr, T* out) {
  using Red = Reducer<T, Op>;
  using A = typename Red::A;
  const int64_t nblocks = (R + kBlock - 1) / kBlock;
  if (nblocks == 1) {
    parallel_for(0, O, grain_for(R), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = cast_to<T>(Red::run(x + o * so, R, sr));
    });
    return;
  }
  std::vector<A> partial(static_cast<size_t>(O * nblocks));
  parallel_for(0, O * nblocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t o = item / nblocks, blk = item % nblocks;
      const int64_t r0 = blk * kBlock, n = std::min(kBlock, R - r0);
      partial[item] = Red::run(x + o * so + r0 * sr, n, sr);
    }
  });
  for (int64_t o = 0; o < O; ++o) {
    A acc = Red::init();
    for (int64_t blk = 0; blk < nblocks; ++blk) acc = Red::combine(acc, partial[o * nblocks + blk]);
    out[o] = cast_to<T>(acc);
  }
}

// x[o, r] at o + r * sr (o has unit stride).
template <typename T, ReduceOp Op>
void reduce_columns(const T* x, int64_t O, int64_t R, int64_t sr, T* out) {
  using Red = Reducer<T, Op>;
  using A = typename Red::A;
  parallel_for(0, O, std::max<int64_t>(16, grain_for(R)), [&](int64_t b, int64_t e) {
    std::unique_ptr<A[]> acc(new A[static_cast<size_t>(e - b)]);  // not vector: vector<bool> has no data()
    A* a = acc.get();
    std::fill(a, a + (e - b), Red::init());
    for (int64_t r = 0; r < R; ++r) {
      const T* row = x + r * sr + b;
      if constexpr (Op == ReduceOp::sum) {
        LORY_SIMD
        for (int64_t j = 0; j < e - b; ++j) a[j] += Red::take(row[j]);
      } else {
        for (int64_t j = 0; j < e - b; ++j) a[j] = Red::combine(a[j], Red::take(row[j]));
      }
    }
    for (int64_t j = 0; j < e - b; ++j) out[b + j] = cast_to<T>(a[j]);
  });
}

template <typename T, ReduceOp Op>
void reduce_typed(const Tensor& x, Tensor& out) {
  const int64_t O = x.size(0), R = x.size(1), so = x.stride(0), sr = x.stride(1);
  const T* xp = ptr<T>(x);
  T* op = ptr<T>(out);
  if (R == 0) {
    for (int64_t o = 0; o < O; ++o) op[o] = cast_to<T>(Reducer<T, Op>::init());
    return;
  }
  // Column order pays off when o is the unit-stride dim and there are enough
  // columns to fill a vector.
  if (so == 1 && sr != 1 && O >= 8 && R > 1) {
    reduce_columns<T, Op>(xp, O, R, sr, op);
  } else {
    reduce_rows<T, Op>(xp, O, R, so, sr, op);
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& x, Tensor& out) {
  check_reduce_args(op, x, out);
  dispatch(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case ReduceOp::sum: return reduce_typed<T, ReduceOp::sum>(x, out);
      case ReduceOp::max: return reduce_typed<T, ReduceOp::max>(x, out);
      case ReduceOp::min: return reduce_typed<T, ReduceOp::min>(x, out);
    }
  });
}

}  // namespace lory
