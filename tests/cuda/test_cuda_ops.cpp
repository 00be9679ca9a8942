// Every CUDA kernel against the CPU backend (ggml test-backend-ops style):
// each case builds its inputs on the CPU, runs the same public op
// (tensor/ops.h) on those inputs and on copies moved to cuda:0, and compares
// the two results element by element with a tolerance per dtype. Views
// (transpose, narrow, expand) are taken inside the case, on each device, so
// the CUDA strided paths see real views and not packed copies.
//
// Runs only where a GPU is present: tests/cuda/main.cpp exits 77 (skipped)
// otherwise.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/graph.h"
#include "cuda/cuda_backend.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/cuda/compare.h"

using namespace lory;
using namespace lory::cuda_test;

// ---------------------------------------------------------------------------
// Memory, copies and conversions
// ---------------------------------------------------------------------------

TEST_CASE("cuda: every dtype survives a round trip to the GPU bit for bit") {
  const std::vector<double> values = {0.0, 1.0, -2.5, 3.75, 100.0, -0.1, 7.0, 1e-3, 0.0, 255.0, -1.0};
  for (DType t : kAllTypes) {
    const Tensor cpu = from_vector(values, {11}).to(t);
    const Tensor back = cpu.to(kGpu).to(cpu_device());
    CHECK(back.device() == cpu_device());
    expect_close(cpu, back.to(kGpu), Tol{0, 0}, name_of("round trip", t));
  }
}

TEST_CASE("cuda: dtype conversions between every pair of dtypes equal the CPU's exactly") {
  // Non-negative values for u8 (a negative float to u8 is undefined in C);
  // 0.1 and 1/3 exercise round-to-nearest-even into bf16/f16.
  const std::vector<double> unsigned_values = {0.0, 0.1, 1.0, 1.0 / 3.0, 2.25, 3.75, 7.5, 100.0, 200.9, 255.0};
  const std::vector<double> signed_values = {-200.9, -7.5, -1.0, -0.1, 0.0, 0.1, 1.0 / 3.0, 3.75, 1000.5, 65000.0};
  for (DType from : kAllTypes) {
    for (DType to : kAllTypes) {
      const bool unsigned_only = from == DType::u8 || to == DType::u8;
      const std::vector<double>& v = unsigned_only ? unsigned_values : signed_values;
      const Tensor src = from_vector(v, {2, 5}).to(from);
      check_same(
          std::string("convert ") + dtype_name(from) + " -> " + dtype_name(to), Tol{0, 0},
          [to](const Tensor& x) { return x.to(to); }, src);
      // The same through a transposed (strided) source.
      check_same(
          std::string("convert transposed ") + dtype_name(from) + " -> " + dtype_name(to), Tol{0, 0},
          [to](const Tensor& x) { return x.t().to(to); }, src);
    }
  }
}

TEST_CASE("cuda: strided copies of views match the CPU") {
  const Tensor x = randn_as({4, 5, 6}, DType::f32, 11);
  check_same(
      "permute().contiguous()", tol_for(DType::f32),
      [](const Tensor& t) {
        return t.permute({2, 0, 1}).contiguous();
      },
      x);
  check_same(
      "narrow().contiguous()", tol_for(DType::f32), [](const Tensor& t) { return t.narrow(1, 1, 3).contiguous(); }, x);
  check_same(
      "narrow().transpose() to bf16", tol_for(DType::bf16),
      [](const Tensor& t) { return t.narrow(2, 2, 3).transpose(0, 2).to(DType::bf16); }, x);
  check_same(
      "select().unsqueeze().expand().contiguous()", tol_for(DType::f32),
      [](const Tensor& t) {
        return t.select(1, 2).unsqueeze(1).expand({4, 7, 6}).contiguous();
      },
      x);
  check_same(
      "reshape of a transposed view", tol_for(DType::f32),
      [](const Tensor& t) {
        return t.transpose(0, 1).reshape({20, 6});
      },
      x);

  // copy_ into a strided destination, with a dtype conversion and a broadcast source.
  for (DType dst_type : {DType::f32, DType::bf16, DType::i64}) {
    const Tensor src = randn_as({4, 6}, DType::f64, 12);
    auto write = [dst_type](const Tensor& s) {
      NoGradGuard no_grad;
      Tensor base = zeros({6, 4}, {dst_type, s.device()});
      Tensor view = base.t();  // [4, 6], strides (1, 4)
      view.copy_(s);
      Tensor row = base.narrow(0, 1, 1);  // [1, 4], a view with an offset
      row.copy_(mul(s.narrow(1, 0, 1).t(), 10.0));
      return base;
    };
    check_same(name_of("copy_ into a transposed destination", dst_type), tol_for(dst_type), write, src);
  }
}

TEST_CASE("cuda: fill, zeros, ones, full and arange match the CPU in every dtype") {
  for (DType t : kAllTypes) {
    expect_close(full({5, 7}, 2.7, {t}), full({5, 7}, 2.7, {t, kGpu}), Tol{0, 0}, name_of("full 2.7", t));
    expect_close(zeros({3}, {t}), zeros({3}, {t, kGpu}), Tol{0, 0}, name_of("zeros", t));
    expect_close(ones({2, 2}, {t}), ones({2, 2}, {t, kGpu}), Tol{0, 0}, name_of("ones", t));
    if (t != DType::boolean && t != DType::u8) {
      expect_close(arange(-3, 300, 1.0, {t}), arange(-3, 300, 1.0, {t, kGpu}), Tol{0, 0}, name_of("arange", t));
    }
  }
  expect_close(arange(0, 10, 0.37, {DType::f32}), arange(0, 10, 0.37, {DType::f32, kGpu}), Tol{0, 0},
               "arange with a fractional step");
  expect_close(arange(5, -3, -1, {DType::i64}), arange(5, -3, -1, {DType::i64, kGpu}), Tol{0, 0},
               "arange counting down");
  // fill_ of a view with an offset writes only the view.
  auto fill_rows = [](const Tensor& base) {
    NoGradGuard no_grad;
    Tensor t = base.clone();
    t.narrow(0, 1, 2).fill_(3.5);
    return t;
  };
  check_same("fill_ of a narrowed view", Tol{0, 0}, fill_rows, zeros({4, 5}));
}

TEST_CASE("cuda: random numbers are the CPU's numbers") {
  for (DType t : kFloatTypes) {
    for (RandomDist dist : {RandomDist::uniform, RandomDist::normal}) {
      const char* dname = dist == RandomDist::uniform ? "uniform" : "normal";
      // 1001 elements: the last Philox call is used for one of its four words.
      const Tensor cpu = random_with_key({7, 143}, dist, 1234, 77, -0.5, 2.0, {t});
      const Tensor gpu = random_with_key({7, 143}, dist, 1234, 77, -0.5, 2.0, {t, kGpu});
      expect_close(cpu, gpu, t == DType::f32 ? Tol{1e-6, 1e-7} : tol_for(t), name_of(dname, t));
    }
  }
  // The global generator: same seed, same sequence, same offset afterwards.
  manual_seed(99);
  const Tensor a = randn({2000});
  const GeneratorState after_cpu = generator_state();
  manual_seed(99);
  const Tensor b = randn({2000}, {DType::f32, kGpu});
  const GeneratorState after_gpu = generator_state();
  expect_close(a, b, Tol{1e-6, 1e-7}, "randn from the global generator");
  CHECK(after_cpu.offset == after_gpu.offset);
  manual_seed(5);
  const Tensor u = rand({3, 333});
  manual_seed(5);
  expect_close(u, rand({3, 333}, {DType::f32, kGpu}), Tol{0, 0}, "rand: 24-bit uniforms are exact in f32");
}

// ---------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------

TEST_CASE("cuda: every unary op matches the CPU on contiguous and strided inputs") {
  using Fn = std::function<Tensor(const Tensor&)>;
  struct Case {
    const char* name;
    Fn fn;
    bool positive;  // needs x > 0
  };
  const std::vector<Case> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, true},
      {"tanh", [](const Tensor& x) { return tanh(x); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false},
      {"silu", [](const Tensor& x) { return silu(x); }, false},
      {"abs", [](const Tensor& x) { return abs(x); }, false},
      {"add_scalar", [](const Tensor& x) { return x + 1.5; }, false},
      {"mul_scalar", [](const Tensor& x) { return x * -2.25; }, false},
      {"div_scalar", [](const Tensor& x) { return x / 3.0; }, false},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, false},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, false},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, true},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, true},
  };
  for (DType t : kFloatTypes) {
    Tensor x = mul(randn_as({37, 53}, DType::f32, 21), 3.0);
    Tensor xpos = add(abs(x), 0.1);
    x = x.to(t), xpos = xpos.to(t);
    for (const Case& c : cases) {
      const Tensor& in = c.positive ? xpos : x;
      check_same(name_of(c.name, t), tol_for(t), c.fn, in);
      check_same(
          name_of(std::string(c.name) + " of a transposed view", t), tol_for(t),
          [&c](const Tensor& v) { return c.fn(v.t()); }, in);
      check_same(
          name_of(std::string(c.name) + " of a broadcast view", t), tol_for(t),
          [&c](const Tensor& v) {
            return c.fn(v.narrow(0, 3, 1).expand({4, 53}));
          },
          in);
    }
  }
  // Integer inputs: neg/abs/scalar ops stay integer (and wrap), the rest compute in f32.
  for (DType t : {DType::i32, DType::i64}) {
    const Tensor x = mul(randn_as({6, 9}, DType::f32, 22), 50.0).to(t);
    check_same(
        name_of("neg", t), Tol{0, 0}, [](const Tensor& v) { return neg(v); }, x);
    check_same(
        name_of("abs", t), Tol{0, 0}, [](const Tensor& v) { return abs(v.t()); }, x);
    check_same(
        name_of("add 7", t), Tol{0, 0}, [](const Tensor& v) { return v + 7.0; }, x);
    check_same(
        name_of("mul -3", t), Tol{0, 0}, [](const Tensor& v) { return v * -3.0; }, x);
    check_same(
        name_of("mul 0.5", t), Tol{0, 0}, [](const Tensor& v) { return v * 0.5; }, x);
    check_same(
        name_of("exp of an integer tensor", t), tol_for(DType::f32),
        [](const Tensor& v) { return exp(div(v.to(DType::f32), 50.0).to(v.dtype())); }, x);
  }
}

TEST_CASE("cuda: every binary op and comparison matches the CPU, with broadcasting") {
  using Fn = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, Fn>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
  };
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    // Small integers (as floats for the float types) so that eq/le/ge see ties;
    // the divisor is kept away from zero.
    const Tensor a = mul(randn_as({3, 1, 5}, DType::f32, 31), 3.0).to(DType::i64).to(t);
    const Tensor b = add(abs(mul(randn_as({4, 5}, DType::f32, 32), 3.0)), 1.0).to(DType::i64).to(t);
    const Tensor c = mul(randn_as({5, 4}, DType::f32, 33), 2.0).to(t);
    const Tol tol = tol_for(t);
    for (const auto& [name, fn] : ops) {
      check_same(name_of(std::string(name) + " [3,1,5] with [4,5]", t), tol, fn, a, b);
      check_same(
          name_of(std::string(name) + " with a transposed operand", t), tol,
          [&fn](const Tensor& x, const Tensor& y) { return fn(x.t(), y); }, c, b);
      check_same(
          name_of(std::string(name) + " with a 0-d operand", t), tol,
          [&fn](const Tensor& x, const Tensor& y) { return fn(x, y.select(0, 2).select(0, 1)); }, a, b);
    }
  }
  // Mixed dtypes promote before the kernel.
  check_same(
      "add bf16 + f16 promotes to f32", tol_for(DType::bf16),
      [](const Tensor& x, const Tensor& y) { return add(x, y); }, randn_as({8}, DType::bf16, 34),
      randn_as({8}, DType::f16, 35));
  // Bool arithmetic: add is "or", mul is "and".
  const Tensor p = gt(randn_as({16}, DType::f32, 36), scalar_tensor(0.0));
  const Tensor q = gt(randn_as({16}, DType::f32, 37), scalar_tensor(0.0));
  check_same(
      "bool add", Tol{0, 0}, [](const Tensor& x, const Tensor& y) { return add(x, y); }, p, q);
  check_same(
      "bool mul", Tol{0, 0}, [](const Tensor& x, const Tensor& y) { return mul(x, y); }, p, q);
  // NaN propagates through maximum/minimum on both devices.
  const Tensor with_nan = from_vector(std::vector<float>{1.0f, NAN, -2.0f, 3.0f}, {4});
  check_same(
      "maximum with NaN", tol_for(DType::f32),
      [](const Tensor& x) {
        return maximum(x, scalar_tensor(0.0, {DType::f32, x.device()}));
      },
      with_nan);
}

TEST_CASE("cuda: where and masked_fill match the CPU") {
  for (DType t : {DType::f32, DType::bf16, DType::i64}) {
    const Tensor a = mul(randn_as({3, 4, 5}, DType::f32, 41), 4.0).to(t);
    const Tensor b = mul(randn_as({4, 1}, DType::f32, 42), 4.0).to(t);
    check_same(
        name_of("where(a > b, a, b)", t), tol_for(t),
        [](const Tensor& x, const Tensor& y) { return where(gt(x, y), x, y); }, a, b);
    check_same(
        name_of("where on transposed views", t), tol_for(t),
        [](const Tensor& x, const Tensor& y) {
          const Tensor xt = x.transpose(1, 2);
          return where(lt(xt, scalar_tensor(0.0, {xt.dtype(), xt.device()})), xt, y.t());
        },
        a, b);
  }
  const Tensor x = randn_as({6, 7}, DType::f32, 43);
  check_same(
      "masked_fill with -inf", tol_for(DType::f32),
      [](const Tensor& v) {
        return masked_fill(v, gt(v, scalar_tensor(0.5, {v.dtype(), v.device()})), -INFINITY);
      },
      x);
}

// ---------------------------------------------------------------------------
// Reductions and softmax
// ---------------------------------------------------------------------------

TEST_CASE("cuda: sum, mean, amax and amin match the CPU on every kernel path") {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    const char* path;
  };
  const std::vector<Case> cases = {
      {{6, 7, 8}, {}, "everything"},
      {{6, 7, 8}, {0}, "leading dim (columns kernel)"},
      {{6, 7, 8}, {1}, "middle dim (packed, short rows)"},
      {{6, 7, 8}, {2}, "last dim (short rows)"},
      {{6, 7, 8}, {0, 2}, "two dims"},
      {{100, 200}, {1}, "a warp per row"},
      {{3, 5000}, {1}, "a block per row"},
      {{3, 5000}, {0}, "columns, 3 elements each"},
      {{4096, 33}, {0}, "columns split into chunks"},
      {{1, 300000}, {}, "one long row split into chunks"},
      {{1000, 3}, {1}, "very short rows"},
  };
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    for (const Case& c : cases) {
      // Positive values keep the sums away from cancellation, so the
      // tolerance measures the kernels, not the conditioning of the sum.
      const Tensor x = add(rand(c.shape), 0.5).to(t);
      const int64_t count = [&] {
        int64_t n = 1;
        for (size_t d = 0; d < c.shape.size(); ++d)
          if (c.dims.empty() || std::find(c.dims.begin(), c.dims.end(), static_cast<int64_t>(d)) != c.dims.end())
            n *= c.shape[d];
        return n;
      }();
      // The CPU accumulates f32 sums in f64, CUDA in f32: allow f32 rounding per element summed.
      const Tol sum_tol = t == DType::f32 ? Tol{1e-6 * std::sqrt(static_cast<double>(count)) + 1e-6, 0} : tol_for(t);
      const std::string where = std::string(c.path) + " of " + shape_str(c.shape);
      check_same(
          name_of("sum: " + where, t), sum_tol, [&c](const Tensor& v) { return sum(v, c.dims); }, x);
      check_same(
          name_of("mean keepdim: " + where, t), sum_tol, [&c](const Tensor& v) { return mean(v, c.dims, true); }, x);
      check_same(
          name_of("amax: " + where, t), Tol{0, 0}, [&c](const Tensor& v) { return amax(v, c.dims); }, x);
      check_same(
          name_of("amin: " + where, t), Tol{0, 0}, [&c](const Tensor& v) { return amin(v, c.dims); }, x);
    }
  }
  // Integers and bool: exact.
  const Tensor xi = mul(randn_as({40, 3000}, DType::f32, 51), 1000.0).to(DType::i64);
  check_same(
      "sum i64", Tol{0, 0}, [](const Tensor& v) { return sum(v, {1}); }, xi);
  check_same(
      "sum i64 over columns", Tol{0, 0}, [](const Tensor& v) { return sum(v, {0}); }, xi);
  check_same(
      "amax i32", Tol{0, 0}, [](const Tensor& v) { return amax(v.to(DType::i32), {0}); }, xi);
  check_same(
      "amin i64", Tol{0, 0}, [](const Tensor& v) { return amin(v, {}); }, xi);
  check_same(
      "sum of bool counts", Tol{0, 0},
      [](const Tensor& v) {
        return sum(gt(v, scalar_tensor(0.0, {v.dtype(), v.device()})), {1});
      },
      xi);
  // A NaN makes max NaN wherever it sits.
  const Tensor nan_row = from_vector(std::vector<float>{1.0f, 2.0f, NAN, 0.5f, 3.0f, 1.0f}, {2, 3});
  check_same(
      "amax with NaN", Tol{0, 0}, [](const Tensor& v) { return amax(v, {1}); }, nan_row);
}

TEST_CASE("cuda: reductions are deterministic run to run") {
  const Tensor x = randn({1, 1 << 20}, {DType::f32, kGpu});
  const std::vector<float> first = sum(x).to_vector<float>();
  for (int i = 0; i < 3; ++i) CHECK(sum(x).to_vector<float>() == first);
  const Tensor cols = randn({8192, 48}, {DType::f32, kGpu});
  const std::vector<float> first_cols = sum(cols, {0}).to_vector<float>();
  for (int i = 0; i < 3; ++i) CHECK(sum(cols, {0}).to_vector<float>() == first_cols);
}

TEST_CASE("cuda: softmax and log_softmax match the CPU") {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    const Tol tol = tol_for(t);
    for (const Shape& shape : {Shape{7, 33}, Shape{5, 3000}, Shape{2, 1024}, Shape{3, 1025}}) {
      const Tensor x = randn_as(shape, t, 61);
      const std::string s = shape_str(shape);
      check_same(
          name_of("softmax " + s, t), tol, [](const Tensor& v) { return softmax(v, -1); }, x);
      check_same(
          name_of("log_softmax " + s, t), tol, [](const Tensor& v) { return log_softmax(v, -1); }, x);
    }
    const Tensor y = randn_as({6, 9, 4}, t, 62);
    check_same(
        name_of("softmax over a middle dim", t), tol, [](const Tensor& v) { return softmax(v, 1); }, y);
    check_same(
        name_of("log_softmax over dim 0", t), tol, [](const Tensor& v) { return log_softmax(v, 0); }, y);
    check_same(
        name_of("softmax of 1000 + x (max subtraction)", t), tol,
        [](const Tensor& v) { return softmax(add(v, 1000.0), -1); }, y);
    check_same(
        name_of("log_softmax of 1000 + x (max subtraction)", t), tol,
        [](const Tensor& v) { return log_softmax(add(v, 1000.0), -1); }, y);
  }
  // Masked scores (-inf): a fully masked row is NaN on both devices.
  const Tensor s = randn_as({4, 8}, DType::f32, 63);
  auto masked = [](const Tensor& v, bool log_form) {
    const Tensor cols = arange(0, 8, 1, {DType::f32, v.device()});
    const Tensor rows = mul(arange(0, 4, 1, {DType::f32, v.device()}).unsqueeze(1), 3.0);
    const Tensor m = masked_fill(v, gt(cols, rows), -INFINITY);
    const Tensor all = masked_fill(m, eq(rows, scalar_tensor(9.0, {DType::f32, v.device()})), -INFINITY);
    return log_form ? log_softmax(all, -1) : softmax(all, -1);
  };
  check_same(
      "causally masked softmax", tol_for(DType::f32), [&](const Tensor& v) { return masked(v, false); }, s);
  check_same(
      "causally masked log_softmax", tol_for(DType::f32), [&](const Tensor& v) { return masked(v, true); }, s);
}

// ---------------------------------------------------------------------------
// Matrix products
// ---------------------------------------------------------------------------

TEST_CASE("cuda: matmul matches the CPU for f32, bf16, f16 and f64 in every layout") {
  for (DType t : kFloatTypes) {
    // Accumulation order differs between cuBLAS and Eigen: allow f32 rounding
    // per term of the K-long dot products, and a 16-bit rounding of the output.
    const Tol tol = t == DType::f64 ? Tol{1e-11, 1e-11} : t == DType::f32 ? Tol{1e-4, 1e-4} : Tol{2e-2, 2e-2};
    const Tensor a = randn_as({2, 33, 17}, t, 71), b = randn_as({2, 17, 9}, t, 72);
    const Tensor at = randn_as({2, 17, 33}, t, 73), bt = randn_as({2, 9, 17}, t, 74);
    auto mm = [](const Tensor& x, const Tensor& y) { return matmul(x, y); };
    check_same(name_of("[2,33,17] @ [2,17,9]", t), tol, mm, a, b);
    check_same(
        name_of("a transposed", t), tol, [](const Tensor& x, const Tensor& y) { return matmul(x.transpose(1, 2), y); },
        at, b);
    check_same(
        name_of("b transposed", t), tol, [](const Tensor& x, const Tensor& y) { return matmul(x, y.transpose(1, 2)); },
        a, bt);
    check_same(
        name_of("both transposed", t), tol,
        [](const Tensor& x, const Tensor& y) { return matmul(x.transpose(1, 2), y.transpose(1, 2)); }, at, bt);
    check_same(name_of("batch broadcast [2,1,5,7] @ [3,7,4]", t), tol, mm, randn_as({2, 1, 5, 7}, t, 75),
               randn_as({3, 7, 4}, t, 76));
    check_same(
        name_of("bmm with a stride-0 batch", t), tol,
        [](const Tensor& x, const Tensor& y) {
          return bmm(x, y.unsqueeze(0).expand({2, 17, 9}));
        },
        a, randn_as({17, 9}, t, 77));
    check_same(name_of("[4,6,17] @ [17,9] (batch folded into M)", t), tol, mm, randn_as({4, 6, 17}, t, 78),
               randn_as({17, 9}, t, 79));
    check_same(name_of("vector @ matrix", t), tol, mm, randn_as({17}, t, 80), randn_as({17, 9}, t, 81));
    check_same(name_of("matrix @ vector", t), tol, mm, randn_as({33, 17}, t, 82), randn_as({17}, t, 83));
    check_same(
        name_of("a row expanded over M (packed first)", t), tol,
        [](const Tensor& x, const Tensor& y) {
          return matmul(x.expand({5, 17}), y);
        },
        randn_as({1, 17}, t, 84), randn_as({17, 9}, t, 85));
    check_same(
        name_of("operands at odd offsets (unaligned)", t), tol,
        [](const Tensor& x, const Tensor& y) { return matmul(x.narrow(1, 1, 17), y.narrow(0, 3, 17)); },
        randn_as({12, 19}, t, 86), randn_as({21, 7}, t, 87));
    check_same(name_of("K = 0 gives zeros", t), Tol{0, 0}, mm, zeros({3, 0}, {t}), zeros({0, 4}, {t}));
    check_same(name_of("[128,256] @ [256,192]", t), tol, mm, randn_as({128, 256}, t, 88), randn_as({256, 192}, t, 89));
  }
}

TEST_CASE("cuda: TF32 matmul is opt-in and close to f32") {
  const Tensor a = randn_as({64, 128}, DType::f32, 91), b = randn_as({128, 32}, DType::f32, 92);
  const Tensor exact = matmul(a, b);
  gpu_backend().set_allow_tf32(true);
  const Tensor fast = matmul(a.to(kGpu), b.to(kGpu));
  gpu_backend().set_allow_tf32(false);
  expect_close(exact, fast, Tol{1e-2, 5e-2}, "tf32 matmul");
  expect_close(exact, matmul(a.to(kGpu), b.to(kGpu)), Tol{1e-4, 1e-4}, "f32 matmul after turning tf32 off");
}

// ---------------------------------------------------------------------------
// Autograd on the GPU, the allocator, errors
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Fused neural-network ops
// ---------------------------------------------------------------------------

TEST_CASE("cuda: swiglu matches the CPU, forward and backward, on contiguous and row-strided inputs") {
  for (DType t : kFloatTypes) {
    const Tol tol = tol_for(t);
    for (const Shape& shape : {Shape{7, 33}, Shape{2, 5, 1000}, Shape{1}}) {
      const Tensor g = mul(randn_as(shape, t, 81), 3.0), u = randn_as(shape, t, 82);
      check_same(
          name_of("swiglu " + shape_str(shape), t), tol,
          [](const Tensor& a, const Tensor& b) { return swiglu(a, b); }, g, u);
    }
    const Tensor both = randn_as({9, 2 * 37}, t, 83);
    check_same(
        name_of("swiglu of the halves of one projection", t), tol,
        [](const Tensor& x) { return swiglu(x.narrow(1, 0, 37), x.narrow(1, 37, 37)); }, both);
    check_same(
        name_of("swiglu of a transposed gate", t), tol,
        [](const Tensor& a, const Tensor& b) { return swiglu(a.t(), b); }, randn_as({6, 4}, t, 84),
        randn_as({4, 6}, t, 85));
  }
  auto grads = [](Device d) {
    manual_seed(86);
    Tensor gate = randn({5, 12}).to(d), up = randn({5, 12}).to(d), w = randn({5, 12}).to(d);
    gate.set_requires_grad(true);
    up.set_requires_grad(true);
    sum(mul(swiglu(gate, up), w)).backward();
    return std::vector<Tensor>{gate.grad(), up.grad()};
  };
  const std::vector<Tensor> cpu = grads(cpu_device()), gpu = grads(kGpu);
  expect_close(cpu[0], gpu[0], Tol{1e-5, 1e-6}, "dswiglu/dgate");
  expect_close(cpu[1], gpu[1], Tol{1e-5, 1e-6}, "dswiglu/dup");
}

TEST_CASE("cuda: gradients of a small network match the CPU's") {
  manual_seed(101);
  const Tensor x0 = randn({4, 6}), w0 = randn({6, 5}), c0 = randn({4, 5});
  auto grads = [&](Device d) {
    Tensor x = x0.to(d).clone(), w = w0.to(d).clone();
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    const Tensor c = c0.to(d);
    const Tensor h = matmul(x, w);
    const Tensor loss = sum(mul(softmax(h, -1), c)) + mean(mul(silu(x), x)) + sum(amax(h, {1})) +
                        sum(log_softmax(h, 0)) * 0.1 + sum(where(gt(h, scalar_tensor(0.0, {DType::f32, d})), h, c));
    loss.backward();
    return std::vector<Tensor>{loss.detach(), x.grad(), w.grad()};
  };
  const std::vector<Tensor> cpu = grads(cpu_device()), gpu = grads(kGpu);
  expect_close(cpu[0], gpu[0], Tol{1e-5, 1e-5}, "loss");
  expect_close(cpu[1], gpu[1], Tol{1e-5, 1e-5}, "dloss/dx");
  expect_close(cpu[2], gpu[2], Tol{1e-5, 1e-5}, "dloss/dw");
}

TEST_CASE("cuda: the caching allocator rounds sizes and reuses freed blocks") {
  using cuda::CachingAllocator;
  CHECK(CachingAllocator::round_size(1) == 512);
  CHECK(CachingAllocator::round_size(512) == 512);
  CHECK(CachingAllocator::round_size(513) == 1024);
  CHECK(CachingAllocator::round_size(size_t{1} << 20) == size_t{1} << 20);
  CHECK(CachingAllocator::round_size((size_t{1} << 20) + 1) == size_t{2} << 20);
  CHECK(CachingAllocator::round_size((size_t{5} << 20) + 3) == size_t{6} << 20);

  CudaBackend& backend = gpu_backend();
  void* p = backend.allocate(1000);
  backend.deallocate(p, 1000);
  void* q = backend.allocate(900);  // same 1024-byte block
  CHECK(q == p);
  backend.deallocate(q, 900);
}

TEST_CASE("cuda: after a warm-up step no op calls cudaMalloc") {
  CudaBackend& backend = gpu_backend();
  auto step = [] {
    const Tensor x = randn({64, 128}, {DType::f32, kGpu});
    const Tensor w = randn({128, 96}, {DType::f32, kGpu});
    const Tensor y = softmax(matmul(x, w), -1);
    const Tensor s = sum(mul(y, y), {1});
    const Tensor big = sum(randn({1, 300000}, {DType::f32, kGpu}));  // uses reduction scratch
    return s.to_vector<float>()[0] + big.to_vector<float>()[0];
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: fills the cache (and creates the GEMM workspace)
  const cuda::AllocatorStats before = backend.allocator().stats();
  for (int i = 0; i < 5; ++i) step();
  const cuda::AllocatorStats after = backend.allocator().stats();
  CHECK(after.device_mallocs == before.device_mallocs);
  CHECK(after.cache_hits > before.cache_hits);
  CHECK(after.allocated_bytes == before.allocated_bytes);  // nothing leaked across steps
  CHECK(after.cached_bytes > 0);
}

// The argument contract of each kernel is one function in tensor/kernel_args.h
// that both backends call: the same bad call gives the same message on both.
TEST_CASE("cuda: a kernel refuses what the CPU kernel refuses, with the same message") {
  auto message = [](const std::function<void(Backend&, Device)>& call, Backend& be, Device dev) {
    try {
      call(be, dev);
    } catch (const Error& e) {
      // Drop the device from the operands' descriptions: "(f32, cpu)" vs "(f32, cuda:0)".
      std::string m = e.what();
      const std::string device = ", " + dev.str() + ")";
      for (size_t p = m.find(device); p != std::string::npos; p = m.find(device)) m.replace(p, device.size(), ")");
      return m;
    }
    return std::string("(no error)");
  };
  const std::vector<std::pair<std::string, std::function<void(Backend&, Device)>>> calls{
      {"matmul inner dims",
       [](Backend& be, Device d) {
         Tensor out = empty({2, 3, 5}, {DType::f32, d});
         be.matmul(zeros({2, 3, 4}, {DType::f32, d}), zeros({2, 3, 5}, {DType::f32, d}), out);
       }},
      {"matmul layout",
       [](Backend& be, Device d) {
         Tensor out = empty({2, 3, 5}, {DType::f32, d});
         be.matmul(zeros({2, 3, 4, 2}, {DType::f32, d}).select(3, 0), zeros({2, 4, 5}, {DType::f32, d}), out);
       }},
      {"binary dtypes",
       [](Backend& be, Device d) {
         Tensor out = empty({2, 3}, {DType::f32, d});
         be.binary(BinaryOp::add, zeros({2, 3}, {DType::f32, d}), zeros({2, 3}, {DType::f64, d}), out);
       }},
      {"unary integer",
       [](Backend& be, Device d) {
         Tensor out = empty({2, 3}, {DType::i64, d});
         be.unary(UnaryOp::exp, zeros({2, 3}, {DType::i64, d}), out, 0.0);
       }},
      {"where condition",
       [](Backend& be, Device d) {
         Tensor out = empty({2}, {DType::f32, d});
         be.where(zeros({2}, {DType::f32, d}), zeros({2}, {DType::f32, d}), zeros({2}, {DType::f32, d}), out);
       }},
      {"reduce empty max",
       [](Backend& be, Device d) {
         Tensor out = empty({2}, {DType::f32, d});
         be.reduce(ReduceOp::max, zeros({2, 0}, {DType::f32, d}), out);
       }},
      {"softmax layout",
       [](Backend& be, Device d) {
         Tensor out = empty({2, 3}, {DType::f32, d});
         be.softmax(zeros({3, 2}, {DType::f32, d}).t(), out, false);
       }},
      {"fill strided",
       [](Backend& be, Device d) {
         Tensor out = zeros({3, 2}, {DType::f32, d}).t();
         be.fill(out, 1.0);
       }},
      {"add_rms_norm residual",
       [](Backend& be, Device d) {
         Tensor h = empty({2, 4}, {DType::f32, d}), o = empty({2, 4}, {DType::f32, d});
         Tensor r = empty({2}, {DType::f32, d});
         be.add_rms_norm_forward(zeros({2, 4}, {DType::f32, d}), zeros({2, 3}, {DType::f32, d}),
                                 ones({4}, {DType::f32, d}), 1e-5, h, o, r);
       }},
  };
  for (const auto& [what, call] : calls) {
    const std::string on_cpu = message(call, cpu_backend(), cpu_device());
    const std::string on_gpu = message(call, cuda_backend(0), kGpu);
    CHECK_MESSAGE(on_cpu != "(no error)", what);
    CHECK_MESSAGE(on_cpu == on_gpu, what);
  }
  // A sum over no elements is 0 on both.
  Tensor out = full({2}, 7.0, {DType::f32, kGpu});
  cuda_backend(0).reduce(ReduceOp::sum, zeros({2, 0}, {DType::f32, kGpu}), out);
  CHECK(out.to(cpu_device()).to_vector<double>() == std::vector<double>{0.0, 0.0});
}

TEST_CASE("cuda: errors name the op and the device") {
  const Tensor x = randn({2, 4}, {DType::f32, kGpu});
  Tensor out = empty({2, 4}, {DType::f32, kGpu});
  CHECK_THROWS_WITH_AS(cuda_backend(0).index_select(x, 5, ones({1}, {DType::i64, kGpu}), out),
                       doctest::Contains("index_select: dim 5 out of range"), Error);
  CHECK_THROWS_WITH_AS(cuda_backend(cuda_device_count()), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(add(x, randn({2, 4})), doctest::Contains("different devices"), Error);
}
