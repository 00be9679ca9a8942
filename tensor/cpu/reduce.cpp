// reduce.cpp — row reductions of an [O, R] view, and (log-)softmax of rows.
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
  const char* name = op_name(op);
  LORY_CHECK(x.dim() == 2, name, ": kernel expects a [O, R] view, got ", x.describe());
  LORY_CHECK(out.numel() == x.size(0) && out.is_contiguous(), name, ": out must be contiguous with ", x.size(0),
             " elements, got ", out.describe());
  LORY_CHECK(out.dtype() == x.dtype(), name, ": dtypes differ: x is ", x.describe(), ", out is ", out.describe());
  LORY_CHECK(op == ReduceOp::sum || x.size(1) > 0, name, ": cannot reduce over zero elements of ", x.describe());
  dispatch(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case ReduceOp::sum: return reduce_typed<T, ReduceOp::sum>(x, out);
      case ReduceOp::max: return reduce_typed<T, ReduceOp::max>(x, out);
      case ReduceOp::min: return reduce_typed<T, ReduceOp::min>(x, out);
    }
  });
}

// (log-)softmax of each row of a contiguous [R, C]: subtract the row max
// (so exp never overflows), exponentiate with Eigen's vectorised exp, sum in
// f32 (f64 for f64), then scale (softmax) or shift by log of the sum
// (log_softmax, which never takes log of a rounded probability).
void CpuBackend::softmax(const Tensor& x, Tensor& out, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  LORY_CHECK(x.dim() == 2 && x.is_contiguous() && out.is_contiguous() && x.shape() == out.shape(), name,
             ": kernel expects contiguous [R, C] input and output of one shape, got x ", x.describe(), ", out ",
             out.describe());
  LORY_CHECK(x.dtype() == out.dtype(), name, ": dtypes differ: x is ", x.describe(), ", out is ", out.describe());
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
