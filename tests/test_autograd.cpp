// Reverse-mode autograd: every differentiable op against central finite
// differences (gradcheck, f64), on several shapes including broadcast inputs
// and non-contiguous views built inside f; then the engine's semantics
// (accumulation, broadcasting, grad mode, freed graphs, version counters).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/errors.h"

using namespace lory;
using lory::test::error_of;

namespace {

// splitmix64: test inputs independent of the library's RNG.
struct Rng {
  uint64_t s;
  // The seed is hashed first: with a plain seed * increment start, seed n+1
  // would replay seed n's stream shifted by one, and inputs would tie.
  explicit Rng(uint64_t seed) : s(mix(seed ^ 0xD1B54A32D192ED03ull)) {}
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) {
    const uint64_t z = mix(s += 0x9E3779B97F4A7C15ull);
    return lo + (hi - lo) * static_cast<double>(z >> 11) * 0x1.0p-53;
  }
};

int64_t count(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// An f64 leaf that requires grad, uniform in [lo, hi).
Tensor leaf(const Shape& shape, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  Rng r(seed);
  std::vector<double> v(static_cast<size_t>(count(shape)));
  for (double& x : v) x = r.uniform(lo, hi);
  return from_vector(v, shape, {DType::f64, cpu_device(), true});
}
Tensor positive_leaf(const Shape& shape, uint64_t seed) { return leaf(shape, seed, 0.3, 2.0); }
// |x| in [0.3, 1.5) with a random sign: away from the kink of abs and the pole of 1/x.
Tensor nonzero_leaf(const Shape& shape, uint64_t seed) {
  Rng r(seed);
  std::vector<double> v(static_cast<size_t>(count(shape)));
  for (double& x : v) x = r.uniform(0.3, 1.5) * (r.uniform(0, 1) < 0.5 ? -1 : 1);
  return from_vector(v, shape, {DType::f64, cpu_device(), true});
}

using In = std::vector<Tensor>;

// gradcheck, with the case named in the failure report. gradcheck throws a
// message naming the input, the element and both values; doctest prints it.
void check_grad(const std::string& what, const GradcheckFn& f, const In& inputs, GradcheckOptions options = {}) {
  INFO(what);
  bool ok = false;
  std::string error;
  try {
    ok = gradcheck(f, inputs, options);
  } catch (const Error& e) {
    error = e.what();
  }
  CHECK_MESSAGE(ok, error);
}

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }


}  // namespace

// ---------------------------------------------------------------------------
// gradcheck itself
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: passes a correct gradient and reports a wrong one with the element and both values") {
  CHECK(gradcheck([](const In& in) { return mul(in[0], in[0]); }, {leaf({3}, 1)}));
  // x * detach(x) has true derivative 2x but autograd sees only x: gradcheck must catch it.
  const Tensor x = leaf({3}, 2, 0.5, 1.5);
  const std::string msg = error_of([&] { gradcheck([](const In& in) { return mul(in[0], in[0].detach()); }, {x}); });
  CAPTURE(msg);
  CHECK(contains(msg, "input 0"));
  CHECK(contains(msg, "element"));
  CHECK(contains(msg, "analytic"));
  CHECK(contains(msg, "numeric"));
  // Only f64 contiguous leaves are accepted.
  CHECK_THROWS_AS(gradcheck([](const In& in) { return in[0]; }, {ones({2}, {DType::f32, cpu_device(), true})}), Error);
}

// ---------------------------------------------------------------------------
// elementwise binary
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: add, sub, mul, div, maximum, minimum with broadcasting and strided operands") {
  struct Op {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> fn;
    bool positive_b;
  };
  const std::vector<Op> ops{
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, false},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, false},
  };
  uint64_t seed = 10;
  for (const Op& op : ops) {
    auto b_leaf = [&](const Shape& s) { return op.positive_b ? positive_leaf(s, ++seed) : leaf(s, ++seed); };
    auto fn = op.fn;
    const std::string n = op.name;
    check_grad(n + " [2, 3] [2, 3]", [fn](const In& in) { return fn(in[0], in[1]); },
               {leaf({2, 3}, ++seed), b_leaf({2, 3})});
    check_grad(n + " [3, 1, 4] [2, 4]", [fn](const In& in) { return fn(in[0], in[1]); },
               {leaf({3, 1, 4}, ++seed), b_leaf({2, 4})});
    check_grad(n + " [2, 3] []", [fn](const In& in) { return fn(in[0], in[1]); }, {leaf({2, 3}, ++seed), b_leaf({})});
    check_grad(n + " [] [3]", [fn](const In& in) { return fn(in[0], in[1]); }, {leaf({}, ++seed), b_leaf({3})});
    check_grad(n + " [4, 1] [1, 3]", [fn](const In& in) { return fn(in[0], in[1]); },
               {leaf({4, 1}, ++seed), b_leaf({1, 3})});
    check_grad(n + " a.t()", [fn](const In& in) { return fn(in[0].t(), in[1]); },
               {leaf({3, 2}, ++seed), b_leaf({2, 3})});
    check_grad(n + " narrowed a, transposed b",
               [fn](const In& in) { return fn(in[0].narrow(1, 1, 3), in[1].transpose(0, 1)); },
               {leaf({2, 5}, ++seed), b_leaf({3, 2})});
    check_grad(n + " expanded a",
               [fn](const In& in) {
                 return fn(in[0].expand({2, 3}), in[1]);
               },
               {leaf({1, 3}, ++seed), b_leaf({2, 3})});
  }
  // The same leaf on both sides.
  check_grad("mul(x, x)", [](const In& in) { return mul(in[0], in[0]); }, {leaf({2, 2}, 99)});
  check_grad("div(x, x.t())", [](const In& in) { return div(in[0], in[0].t()); }, {positive_leaf({3, 3}, 98)});
}

TEST_CASE("autograd: maximum sends the gradient to a on ties, minimum likewise, never to both") {
  const Tensor a = from_vector(std::vector<double>{1, 2, 3}, {3}, {DType::f64, cpu_device(), true});
  const Tensor b = from_vector(std::vector<double>{2, 2, 1}, {3}, {DType::f64, cpu_device(), true});
  sum(maximum(a, b)).backward();
  CHECK(vals(a.grad()) == std::vector<double>{0, 1, 1});
  CHECK(vals(b.grad()) == std::vector<double>{1, 0, 0});
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  sum(minimum(a, b)).backward();
  CHECK(vals(a.grad()) == std::vector<double>{1, 1, 0});
  CHECK(vals(b.grad()) == std::vector<double>{0, 0, 1});
}

// ---------------------------------------------------------------------------
// elementwise unary and scalar
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: every unary and scalar op, contiguous, transposed and 0-d") {
  enum Domain { any, pos, nonzero };
  struct Op {
    const char* name;
    std::function<Tensor(const Tensor&)> fn;
    Domain domain;
  };
  const std::vector<Op> ops{
      {"neg", [](const Tensor& x) { return neg(x); }, any},
      {"exp", [](const Tensor& x) { return exp(x); }, any},
      {"log", [](const Tensor& x) { return log(x); }, pos},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, pos},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, pos},
      {"tanh", [](const Tensor& x) { return tanh(x); }, any},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, any},
      {"silu", [](const Tensor& x) { return silu(x); }, any},
      {"abs", [](const Tensor& x) { return abs(x); }, nonzero},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, any},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, any},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, pos},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, pos},
      {"add scalar", [](const Tensor& x) { return add(x, 2.0); }, any},
      {"sub scalar", [](const Tensor& x) { return sub(x, 2.0); }, any},
      {"mul scalar", [](const Tensor& x) { return mul(x, -3.0); }, any},
      {"div scalar", [](const Tensor& x) { return div(x, 4.0); }, any},
      {"rsub scalar", [](const Tensor& x) { return rsub(x, 1.0); }, any},
      {"2 - x * 3 + x / 2", [](const Tensor& x) { return 2.0 - x * 3.0 + x / 2.0; }, any},
  };
  uint64_t seed = 300;
  for (const Op& op : ops) {
    auto make = [&](const Shape& s) {
      return op.domain == pos       ? positive_leaf(s, ++seed)
             : op.domain == nonzero ? nonzero_leaf(s, ++seed)
                                    : leaf(s, ++seed);
    };
    auto fn = op.fn;
    const std::string n = op.name;
    check_grad(n + " [2, 3]", [fn](const In& in) { return fn(in[0]); }, {make({2, 3})});
    check_grad(n + " transposed", [fn](const In& in) { return fn(in[0].t()); }, {make({3, 2})});
    check_grad(n + " 0-d", [fn](const In& in) { return fn(in[0]); }, {make({})});
    check_grad(n + " expanded", [fn](const In& in) { return fn(in[0].expand({3, 2})); }, {make({2})});
  }
}

// ---------------------------------------------------------------------------
// where / masked_fill
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: where and masked_fill route the gradient by the mask") {
  const Tensor cond =
      from_vector(std::vector<bool>{true, false, false, true, true, false}, {2, 1, 3}, {DType::boolean});
  check_grad("where [2,1,3] cond, a [2,3], b [3]", [cond](const In& in) { return where(cond, in[0], in[1]); },
             {leaf({2, 3}, 1), leaf({3}, 2)});
  check_grad("where, a transposed", [cond](const In& in) { return where(cond, in[0].t(), in[1]); },
             {leaf({3, 2}, 3), leaf({2, 1, 3}, 4)});
  const Tensor mask = from_vector(std::vector<bool>{false, true, false, true}, {4}, {DType::boolean});
  check_grad("masked_fill", [mask](const In& in) { return masked_fill(in[0], mask, -7.0); }, {leaf({3, 4}, 5)});
  // Exact: the filled positions get no gradient.
  const Tensor x = leaf({2, 4}, 6);
  sum(masked_fill(x, mask, 0.0)).backward();
  CHECK(vals(x.grad()) == std::vector<double>{1, 0, 1, 0, 1, 0, 1, 0});
}

// ---------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: sum, mean, amax, amin and max over dims, with and without keepdim") {
  const std::vector<std::vector<int64_t>> dim_lists{{}, {0}, {1}, {-1}, {0, 2}, {1, 2}};
  uint64_t seed = 500;
  for (const auto& dims : dim_lists) {
    for (bool keep : {false, true}) {
      std::string d = "dims {";
      for (int64_t x : dims) d += std::to_string(x) + ",";
      d += keep ? "} keepdim" : "}";
      check_grad("sum " + d, [dims, keep](const In& in) { return sum(in[0], dims, keep); }, {leaf({2, 3, 4}, ++seed)});
      check_grad("mean " + d, [dims, keep](const In& in) { return mean(in[0], dims, keep); },
                 {leaf({2, 3, 4}, ++seed)});
      check_grad("amax " + d, [dims, keep](const In& in) { return amax(in[0], dims, keep); },
                 {leaf({2, 3, 4}, ++seed)});
      check_grad("amin " + d, [dims, keep](const In& in) { return amin(in[0], dims, keep); },
                 {leaf({2, 3, 4}, ++seed)});
      check_grad("sum of permuted " + d,
                 [dims, keep](const In& in) {
                   return sum(in[0].permute({2, 0, 1}), dims, keep);
                 },
                 {leaf({3, 4, 2}, ++seed)});
    }
  }
  for (int64_t d : {0, 1, -1})
    for (bool keep : {false, true})
      check_grad("max dim " + std::to_string(d), [d, keep](const In& in) { return max(in[0], d, keep); },
                 {leaf({3, 4}, ++seed)});
  check_grad("amax of transposed", [](const In& in) { return amax(in[0].t(), {1}); }, {leaf({4, 3}, ++seed)});
  check_grad("sum_to [3, 1]", [](const In& in) { return sum_to(in[0], {3, 1}); }, {leaf({2, 3, 4}, ++seed)});
  check_grad("sum_to [4]", [](const In& in) { return sum_to(in[0], {4}); }, {leaf({2, 3, 4}, ++seed)});
}

TEST_CASE("autograd: amax shares the gradient equally among tied maxima") {
  const Tensor x = from_vector(std::vector<double>{1, 3, 3, 2, 5, 0}, {2, 3}, {DType::f64, cpu_device(), true});
  sum(amax(x, {1})).backward();
  CHECK(vals(x.grad()) == std::vector<double>{0, 0.5, 0.5, 0, 1, 0});
}

// ---------------------------------------------------------------------------
// softmax
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: softmax and log_softmax along every dim and of strided input") {
  uint64_t seed = 700;
  for (int64_t d : {0, 1, -1}) {
    check_grad("softmax dim " + std::to_string(d), [d](const In& in) { return softmax(in[0], d); },
               {leaf({3, 4}, ++seed)});
    check_grad("log_softmax dim " + std::to_string(d), [d](const In& in) { return log_softmax(in[0], d); },
               {leaf({3, 4}, ++seed)});
  }
  check_grad("softmax of transposed", [](const In& in) { return softmax(in[0].t(), -1); }, {leaf({4, 3}, ++seed)});
  check_grad("log_softmax 3-d middle dim", [](const In& in) { return log_softmax(in[0], 1); },
             {leaf({2, 3, 2}, ++seed)});
  check_grad("softmax of large values", [](const In& in) { return softmax(in[0] * 30.0, 1); }, {leaf({2, 3}, ++seed)});
}

// ---------------------------------------------------------------------------
// matrix products
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: matmul for every operand layout, batched, broadcast batch and 1-d") {
  uint64_t seed = 900;
  auto mm = [](const In& in) { return matmul(in[0], in[1]); };
  check_grad("[3,4] @ [4,2]", mm, {leaf({3, 4}, ++seed), leaf({4, 2}, ++seed)});
  check_grad("a.t() @ b", [](const In& in) { return matmul(in[0].t(), in[1]); },
             {leaf({4, 3}, ++seed), leaf({4, 2}, ++seed)});
  check_grad("a @ b.t()", [](const In& in) { return matmul(in[0], in[1].t()); },
             {leaf({3, 4}, ++seed), leaf({2, 4}, ++seed)});
  check_grad("a.t() @ b.t()", [](const In& in) { return matmul(in[0].t(), in[1].t()); },
             {leaf({4, 3}, ++seed), leaf({2, 4}, ++seed)});
  check_grad("narrowed a @ b", [](const In& in) { return matmul(in[0].narrow(1, 1, 3), in[1]); },
             {leaf({2, 5}, ++seed), leaf({3, 2}, ++seed)});
  check_grad("select view a (no unit stride) @ b", [](const In& in) { return matmul(in[0].select(2, 1), in[1]); },
             {leaf({3, 2, 2}, ++seed), leaf({2, 3}, ++seed)});
  check_grad("batched [2,3,4] @ [2,4,2]", mm, {leaf({2, 3, 4}, ++seed), leaf({2, 4, 2}, ++seed)});
  check_grad("batched transposed", [](const In& in) { return matmul(in[0].transpose(1, 2), in[1].transpose(1, 2)); },
             {leaf({2, 3, 2}, ++seed), leaf({2, 2, 3}, ++seed)});
  check_grad("broadcast batch [2,1,2,3] @ [3,3,2]", mm, {leaf({2, 1, 2, 3}, ++seed), leaf({3, 3, 2}, ++seed)});
  check_grad("folded batch [2,3,4] @ [4,2]", mm, {leaf({2, 3, 4}, ++seed), leaf({4, 2}, ++seed)});
  check_grad("2-d @ batched [2,3] @ [2,3,2]", mm, {leaf({2, 3}, ++seed), leaf({2, 3, 2}, ++seed)});
  check_grad("[3] @ [3,2]", mm, {leaf({3}, ++seed), leaf({3, 2}, ++seed)});
  check_grad("[2,3] @ [3]", mm, {leaf({2, 3}, ++seed), leaf({3}, ++seed)});
  check_grad("[3] @ [3]", mm, {leaf({3}, ++seed), leaf({3}, ++seed)});
  check_grad("[2,2,3] @ [3]", mm, {leaf({2, 2, 3}, ++seed), leaf({3}, ++seed)});
  check_grad("[3] @ [2,3,2]", mm, {leaf({3}, ++seed), leaf({2, 3, 2}, ++seed)});
  check_grad("x @ x.t()", [](const In& in) { return matmul(in[0], in[0].t()); }, {leaf({3, 2}, ++seed)});
}

TEST_CASE("gradcheck: bmm with plain and transposed operands") {
  check_grad("bmm", [](const In& in) { return bmm(in[0], in[1]); }, {leaf({2, 2, 3}, 1), leaf({2, 3, 2}, 2)});
  check_grad("bmm transposed", [](const In& in) { return bmm(in[0].transpose(1, 2), in[1].transpose(1, 2)); },
             {leaf({2, 3, 2}, 3), leaf({2, 2, 3}, 4)});
}

// ---------------------------------------------------------------------------
// indexing
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: index_select and embedding scatter-add gradients of repeated indices") {
  const Tensor rows = from_vector(std::vector<int64_t>{2, 0, 2, 3}, {4}, {DType::i64});
  check_grad("index_select dim 0", [rows](const In& in) { return index_select(in[0], 0, rows); }, {leaf({4, 3}, 1)});
  const Tensor cols = from_vector(std::vector<int32_t>{1, 1, 0}, {3}, {DType::i32});
  check_grad("index_select dim 1 of transposed", [cols](const In& in) { return index_select(in[0].t(), 1, cols); },
             {leaf({3, 4}, 2)});
  const Tensor ids = from_vector(std::vector<int64_t>{4, 0, 4, 1, 4, 0}, {2, 3}, {DType::i64});
  check_grad("embedding", [ids](const In& in) { return embedding(in[0], ids); }, {leaf({5, 3}, 3)});

  // Exact: row r of the weight gradient is the number of times r was looked up.
  const Tensor w = leaf({5, 2}, 4);
  sum(embedding(w, ids)).backward();
  CHECK(vals(w.grad()) == std::vector<double>{2, 2, 1, 1, 0, 0, 0, 0, 3, 3});
}

// ---------------------------------------------------------------------------
// joining, splitting and views
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: cat, stack, split and chunk") {
  check_grad("cat dim 1",
             [](const In& in) {
               return cat({in[0], in[1].t(), in[0]}, 1);
             },
             {leaf({2, 3}, 1), leaf({1, 2}, 2)});
  check_grad("cat dim 0", [](const In& in) { return cat({in[0], in[1]}, 0); }, {leaf({2, 3}, 3), leaf({1, 3}, 4)});
  check_grad("stack dim 1",
             [](const In& in) {
               return stack({in[0], in[1], in[0]}, 1);
             },
             {leaf({2, 3}, 5), leaf({2, 3}, 6)});
  check_grad("stack last dim",
             [](const In& in) {
               return stack({in[0], in[1].t()}, -1);
             },
             {leaf({2, 3}, 7), leaf({3, 2}, 8)});
  check_grad("split into equal pieces",
             [](const In& in) {
               const auto p = split(in[0], 2, 1);
               return p[0] * p[1];
             },
             {leaf({2, 4}, 9)});
  check_grad("split by sizes, one piece unused",
             [](const In& in) {
               const auto p = split(in[0], std::vector<int64_t>{1, 3}, 0);
               return exp(p[1]);
             },
             {leaf({4, 2}, 10)});
  check_grad("chunk",
             [](const In& in) {
               const auto p = chunk(in[0], 3, 0);
               return p[0] * p[1] - p[2];
             },
             {leaf({6, 2}, 11)});
}

TEST_CASE("gradcheck: narrow, select, permute, transpose, expand, reshape, view, squeeze, unsqueeze") {
  uint64_t seed = 1100;
  check_grad("narrow", [](const In& in) { return in[0].narrow(1, 1, 2); }, {leaf({3, 4}, ++seed)});
  check_grad("narrow twice (overlapping)", [](const In& in) { return in[0].narrow(0, 0, 2) * in[0].narrow(0, 1, 2); },
             {leaf({3, 2}, ++seed)});
  check_grad("select", [](const In& in) { return in[0].select(1, 2) * in[0].select(1, 0); }, {leaf({2, 3}, ++seed)});
  check_grad("permute", [](const In& in) { return in[0].permute({2, 0, 1}) * 2.0; }, {leaf({2, 3, 2}, ++seed)});
  check_grad("transpose", [](const In& in) { return transpose(in[0], 0, 2) * in[1]; },
             {leaf({2, 3, 2}, ++seed), leaf({2, 3, 2}, ++seed)});
  check_grad("expand",
             [](const In& in) {
               return in[0].expand({2, 3, 4}) * in[1];
             },
             {leaf({3, 1}, ++seed), leaf({2, 3, 4}, ++seed)});
  check_grad("reshape contiguous", [](const In& in) { return in[0].reshape({3, 2}); }, {leaf({2, 3}, ++seed)});
  check_grad("reshape of transposed (copies)", [](const In& in) { return in[0].t().reshape({6}) * in[1]; },
             {leaf({2, 3}, ++seed), leaf({6}, ++seed)});
  check_grad("view",
             [](const In& in) {
               return in[0].view({2, 2, 2}) * in[1];
             },
             {leaf({4, 2}, ++seed), leaf({2, 2, 2}, ++seed)});
  check_grad("flatten", [](const In& in) { return in[0].flatten(); }, {leaf({2, 3}, ++seed)});
  check_grad("unsqueeze/squeeze",
             [](const In& in) { return in[0].unsqueeze(1).squeeze(1) * in[0].unsqueeze(0).squeeze(0); },
             {leaf({2, 3}, ++seed)});
  check_grad("unsqueeze then broadcast", [](const In& in) { return in[0].unsqueeze(0) + in[1]; },
             {leaf({3}, ++seed), leaf({4, 3}, ++seed)});
  check_grad("clone and contiguous", [](const In& in) { return clone(in[0].t()) * contiguous(in[0].t()); },
             {leaf({2, 3}, ++seed)});
}

// ---------------------------------------------------------------------------
// fused neural-network ops
// ---------------------------------------------------------------------------

TEST_CASE("gradcheck: cross_entropy with ignored rows") {
  const Tensor targets = from_vector(std::vector<int64_t>{2, -100, 0, 3, -100}, {5}, {DType::i64});
  // The loss is an f32 scalar by contract, so finite differences need a
  // larger step and tolerance; the exact check below is tight.
  GradcheckOptions loose;
  loose.eps = 1e-3;
  loose.atol = 5e-4;
  loose.rtol = 1e-2;
  check_grad(
      "cross_entropy", [targets](const In& in) { return cross_entropy(in[0], targets); }, {leaf({5, 4}, 1)}, loose);
  check_grad(
      "cross_entropy of transposed logits", [targets](const In& in) { return cross_entropy(in[0].t(), targets); },
      {leaf({4, 5}, 2)}, loose);

  // Exact: d loss / d logits = (softmax - onehot) / (non-ignored rows), 0 on ignored rows.
  const Tensor x = leaf({5, 4}, 3);
  cross_entropy(x, targets).backward();
  const std::vector<double> xv = vals(x), g = vals(x.grad());
  const std::vector<int64_t> t{2, -100, 0, 3, -100};
  double worst = 0;
  for (int i = 0; i < 5; ++i) {
    double z = 0;
    for (int j = 0; j < 4; ++j) z += std::exp(xv[i * 4 + j]);
    for (int j = 0; j < 4; ++j) {
      const double want = t[i] == -100 ? 0.0 : (std::exp(xv[i * 4 + j]) / z - (j == t[i] ? 1.0 : 0.0)) / 3.0;
      worst = std::max(worst, std::abs(g[i * 4 + j] - want));
      if (t[i] == -100) CHECK(g[i * 4 + j] == 0.0);
    }
  }
  CHECK(worst < 1e-6);

  // Every row ignored: the loss is 0 and so is the gradient (no nan).
  const Tensor y = leaf({2, 3}, 4);
  cross_entropy(y, full({2}, -100, {DType::i64})).backward();
  CHECK(vals(y.grad()) == std::vector<double>(6, 0.0));
}

TEST_CASE("gradcheck: swiglu in gate and up, contiguous, transposed and as halves of one tensor") {
  check_grad("swiglu [2,3,4]", [](const In& in) { return swiglu(in[0], in[1]); },
             {leaf({2, 3, 4}, 1, -4, 4), leaf({2, 3, 4}, 2)});
  check_grad("swiglu of transposed gate", [](const In& in) { return swiglu(in[0].t(), in[1]); },
             {leaf({5, 3}, 3, -4, 4), leaf({3, 5}, 4)});
  check_grad("swiglu of the halves of one tensor",
             [](const In& in) {
               const std::vector<Tensor> halves = chunk(in[0], 2, -1);
               return swiglu(halves[0], halves[1]);
             },
             {leaf({3, 8}, 5, -4, 4)});
}

TEST_CASE("gradcheck: rms_norm with respect to x and weight") {
  check_grad("rms_norm [2,3,4]", [](const In& in) { return rms_norm(in[0], in[1], 1e-5); },
             {leaf({2, 3, 4}, 1), leaf({4}, 2)});
  check_grad("rms_norm of transposed x", [](const In& in) { return rms_norm(in[0].transpose(0, 1), in[1], 1e-2); },
             {leaf({5, 2}, 3), leaf({5}, 4)});
  check_grad("rms_norm 1-d", [](const In& in) { return rms_norm(in[0], in[1], 0.5); }, {leaf({6}, 5), leaf({6}, 6)});
}

TEST_CASE("gradcheck: add_rms_norm through both of its outputs") {
  // sum * w1 + normed * w2 exercises the two nodes and the gradient that
  // reaches h from both the norm and the residual stream.
  check_grad("add_rms_norm [2,3,4]",
             [](const In& in) {
               const AddRmsNorm r = add_rms_norm(in[0], in[1], in[2], 1e-5);
               return r.sum * 0.7 + r.normed * 1.3;
             },
             {leaf({2, 3, 4}, 11), leaf({2, 3, 4}, 12), leaf({4}, 13)});
  check_grad("add_rms_norm normed only, transposed x",
             [](const In& in) { return add_rms_norm(in[0].t(), in[1], in[2], 0.1).normed; },
             {leaf({5, 3}, 14), leaf({3, 5}, 15), leaf({5}, 16)});
}

TEST_CASE("gradcheck: segment_mean, with a short last segment") {
  check_grad("segment_mean L 8 T 4", [](const In& in) { return segment_mean(in[0], 4); }, {leaf({2, 8, 3}, 21)});
  check_grad("segment_mean L 7 T 3", [](const In& in) { return segment_mean(in[0], 3); }, {leaf({2, 7, 3}, 22)});
  check_grad("segment_mean L 2 T 5", [](const In& in) { return segment_mean(in[0], 5); }, {leaf({1, 2, 4}, 23)});
}

TEST_CASE("gradcheck: rope, with and without a position offset") {
  check_grad("rope", [](const In& in) { return rope(in[0], 10.0); }, {leaf({1, 3, 2, 4}, 1)});
  check_grad("rope offset 3", [](const In& in) { return rope(in[0], 10000.0, 3); }, {leaf({2, 2, 1, 6}, 2)});
  check_grad("rope of permuted",
             [](const In& in) {
               return rope(in[0].permute({0, 2, 1, 3}), 100.0, 1);
             },
             {leaf({1, 2, 3, 4}, 3)});
}

TEST_CASE("gradcheck: scaled_dot_product_attention in q, k and v; causal, not, and S > L") {
  auto attn = [](bool causal, std::optional<double> scale) {
    return [causal, scale](const In& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal, scale); };
  };
  check_grad("causal L = S", attn(true, std::nullopt),
             {leaf({1, 2, 3, 4}, 1), leaf({1, 2, 3, 4}, 2), leaf({1, 2, 3, 4}, 3)});
  check_grad("non-causal L = S", attn(false, std::nullopt),
             {leaf({1, 2, 3, 4}, 4), leaf({1, 2, 3, 4}, 5), leaf({1, 2, 3, 4}, 6)});
  check_grad("causal S > L", attn(true, std::nullopt),
             {leaf({1, 1, 2, 4}, 7), leaf({1, 1, 4, 4}, 8), leaf({1, 1, 4, 4}, 9)});
  check_grad("non-causal S > L, scale 0.7", attn(false, 0.7),
             {leaf({2, 1, 2, 3}, 10), leaf({2, 1, 3, 3}, 11), leaf({2, 1, 3, 3}, 12)});
  check_grad("transposed q, k, v",
             [](const In& in) {
               return scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2),
                                                   true);
             },
             {leaf({1, 3, 2, 2}, 13), leaf({1, 3, 2, 2}, 14), leaf({1, 3, 2, 2}, 15)});
  check_grad("q = k = v", [](const In& in) { return scaled_dot_product_attention(in[0], in[0], in[0], true); },
             {leaf({1, 1, 3, 2}, 16)});
  // Grouped-query attention: dK, dV sum over the query heads of each group.
  check_grad("GQA: 4 query heads, 2 key/value heads, causal S > L", attn(true, std::nullopt),
             {leaf({2, 4, 3, 4}, 17), leaf({2, 2, 5, 4}, 18), leaf({2, 2, 5, 4}, 19)});
  check_grad("multi-query: 3 query heads, 1 key/value head", attn(false, std::nullopt),
             {leaf({1, 3, 2, 4}, 20), leaf({1, 1, 3, 4}, 21), leaf({1, 1, 3, 4}, 22)});
}

// ---------------------------------------------------------------------------
// dtype casts
// ---------------------------------------------------------------------------

TEST_CASE("autograd: the gradient passes through f64 -> f32 -> f64 casts, rounded to f32 on the way") {
  const Tensor x = leaf({4}, 1);
  const std::vector<double> wv{0.1, -1.0 / 3.0, 2.5, 1e-3};
  const Tensor w = from_vector(wv, {4}, {DType::f64});
  const Tensor y = x.to(DType::f32).to(DType::f64);
  CHECK(y.requires_grad());
  sum(y * w).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::f64);
  std::vector<double> want;
  for (double v : wv) want.push_back(static_cast<double>(static_cast<float>(v)));
  CHECK(vals(x.grad()) == want);
  // An f32 leaf used in f64 math gets an f32 gradient.
  const Tensor x32 = ones({2}, {DType::f32, cpu_device(), true});
  sum(x32.to(DType::f64) * 3.0).backward();
  CHECK(x32.grad().dtype() == DType::f32);
  CHECK(vals(x32.grad()) == std::vector<double>{3, 3});
}

// ---------------------------------------------------------------------------
// engine semantics
// ---------------------------------------------------------------------------

TEST_CASE("autograd: gradients accumulate into a leaf across backward calls") {
  const Tensor x = leaf({3}, 1);
  sum(x * 3.0).backward();
  CHECK(vals(x.grad()) == std::vector<double>{3, 3, 3});
  sum(x * 3.0).backward();
  CHECK(vals(x.grad()) == std::vector<double>{6, 6, 6});
  x.set_grad(Tensor());
  CHECK(!x.grad().defined());
  sum(x * 3.0).backward();
  CHECK(vals(x.grad()) == std::vector<double>{3, 3, 3});
}

TEST_CASE("autograd: every leaf's .grad owns its buffer (not the seed, not another leaf's gradient)") {
  const Tensor a = leaf({3}, 1), b = leaf({3}, 2), g = ones({3}, {DType::f64});
  (a + b).backward(g);
  a.grad().fill_(5.0);
  CHECK(vals(b.grad()) == std::vector<double>(3, 1.0));
  CHECK(vals(g) == std::vector<double>(3, 1.0));
  const Tensor c = leaf({}, 3), d = leaf({}, 4);
  (c + d).backward();
  c.grad().fill_(2.0);
  CHECK(d.grad().item() == 1.0);
}

TEST_CASE("autograd: a tensor used twice receives the sum of both gradients") {
  const Tensor x = leaf({3}, 2);
  sum(x * x).backward();
  const std::vector<double> xv = vals(x), g = vals(x.grad());
  for (int i = 0; i < 3; ++i) CHECK(g[i] == doctest::Approx(2 * xv[i]).epsilon(1e-14));
  // A diamond: y = 2x; z = y*y + y -> dz/dx = (2y + 1) * 2.
  const Tensor a = leaf({2}, 3);
  const Tensor y = a * 2.0;
  sum(y * y + y).backward();
  const std::vector<double> av = vals(a), ga = vals(a.grad());
  for (int i = 0; i < 2; ++i) CHECK(ga[i] == doctest::Approx((4 * av[i] + 1) * 2).epsilon(1e-14));
}

TEST_CASE("autograd: the gradient of a broadcast input is reduced to the input's shape") {
  const Tensor a = leaf({2, 3}, 4);
  const Tensor b = leaf({3}, 5);
  const Tensor c = leaf({2, 1}, 6);
  const Tensor s = leaf({}, 7);
  sum((a + b) * c + s).backward();
  REQUIRE(b.grad().defined());
  CHECK(b.grad().shape() == Shape{3});
  CHECK(c.grad().shape() == Shape{2, 1});
  CHECK(s.grad().shape() == Shape{});
  CHECK(a.grad().shape() == Shape{2, 3});
  const std::vector<double> av = vals(a), bv = vals(b), cv = vals(c);
  // d/db = sum over rows of c; d/dc = sum over cols of (a + b); d/ds = 6.
  const std::vector<double> gb = vals(b.grad()), gc = vals(c.grad());
  for (int j = 0; j < 3; ++j) CHECK(gb[j] == doctest::Approx(cv[0] + cv[1]).epsilon(1e-14));
  for (int i = 0; i < 2; ++i) {
    double want = 0;
    for (int j = 0; j < 3; ++j) want += av[i * 3 + j] + bv[j];
    CHECK(gc[i] == doctest::Approx(want).epsilon(1e-14));
  }
  CHECK(s.grad().item() == 6.0);
}

TEST_CASE("autograd: NoGradGuard records nothing and restores grad mode") {
  const Tensor x = leaf({3}, 8);
  CHECK(grad_mode_enabled());
  {
    NoGradGuard guard;
    CHECK(!grad_mode_enabled());
    const Tensor y = exp(x) * 2.0;
    CHECK(!y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK(y.is_leaf());
    {
      NoGradGuard inner;
      CHECK(!grad_mode_enabled());
    }
    CHECK(!grad_mode_enabled());
    CHECK_THROWS_AS(sum(y).backward(), Error);
  }
  CHECK(grad_mode_enabled());
  const Tensor z = x * 2.0;
  CHECK(z.requires_grad());
  CHECK(z.grad_fn() != nullptr);
  CHECK(!z.is_leaf());
  // Ops on tensors that do not require grad record nothing either.
  const Tensor p = ones({2}) * 2.0;
  CHECK(!p.requires_grad());
  CHECK(p.grad_fn() == nullptr);
  // Comparisons are never differentiable.
  CHECK(!gt(x, zeros({}, {DType::f64})).requires_grad());
}

TEST_CASE("autograd: detach stops the gradient") {
  const Tensor x = leaf({3}, 9);
  const Tensor d = x.detach();
  CHECK(!d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.data_ptr() == x.data_ptr());
  sum(x.detach() * x + detach(x * 5.0)).backward();
  CHECK(vals(x.grad()) == vals(x));
}

TEST_CASE("autograd: backward through a freed graph throws; retain_graph keeps it") {
  const Tensor x = leaf({3}, 10);
  const Tensor y = sum(exp(x));
  y.backward();
  const std::string msg = error_of([&] { y.backward(); });
  CAPTURE(msg);
  CHECK((contains(msg, "second time") || contains(msg, "retain_graph")));

  const Tensor x2 = leaf({3}, 11);
  const Tensor y2 = sum(exp(x2));
  y2.backward(Tensor(), true);
  const std::vector<double> once = vals(x2.grad());
  y2.backward();
  const std::vector<double> twice = vals(x2.grad());
  for (int i = 0; i < 3; ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]).epsilon(1e-14));
  const std::vector<double> xv = vals(x2);
  for (int i = 0; i < 3; ++i) CHECK(once[i] == doctest::Approx(std::exp(xv[i])).epsilon(1e-14));
}

TEST_CASE("autograd: backward from a non-scalar needs an explicit gradient of the same shape") {
  const Tensor x = leaf({3}, 12);
  const Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("backward"), Error);
  CHECK_THROWS_AS(y.backward(ones({2}, {DType::f64})), Error);
  y.backward(from_vector(std::vector<double>{1, 2, 3}, {3}, {DType::f64}));
  CHECK(vals(x.grad()) == std::vector<double>{2, 4, 6});
  // A single-element non-0-d output needs none.
  const Tensor z = leaf({1, 1}, 13);
  (z * 4.0).backward();
  CHECK(z.grad().item() == 4.0);
  // backward on a leaf accumulates the seed into it.
  const Tensor l = leaf({}, 14);
  l.backward();
  CHECK(l.grad().item() == 1.0);
}

TEST_CASE("autograd: modifying a tensor saved for backward makes backward throw") {
  // exp saves its output.
  const Tensor x = leaf({3}, 15);
  Tensor y = exp(x);
  const Tensor loss = sum(y);
  {
    NoGradGuard guard;
    y.fill_(1.0);
  }
  const std::string msg = error_of([&] { loss.backward(); });
  CAPTURE(msg);
  CHECK((contains(msg, "modified") || contains(msg, "in-place") || contains(msg, "version")));

  // mul saves both inputs; overwriting one (a leaf) is caught too.
  const Tensor a = leaf({2}, 16);
  Tensor b = leaf({2}, 17);
  const Tensor z = sum(mul(a, b));
  {
    NoGradGuard guard;
    b.copy_(zeros({2}, {DType::f64}));
  }
  CHECK_THROWS_AS(z.backward(), Error);

  // add saves nothing, so the same write is harmless there.
  const Tensor c = leaf({2}, 18);
  Tensor e = leaf({2}, 19);
  const Tensor w = sum(add(c, e));
  {
    NoGradGuard guard;
    e.fill_(3.0);
  }
  w.backward();
  CHECK(vals(c.grad()) == std::vector<double>{1, 1});
}

TEST_CASE("autograd: requires_grad can only be set on leaves, and in-place writes to them need NoGradGuard") {
  Tensor x = leaf({3}, 20);
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.set_requires_grad(true), doctest::Contains("leaf"), Error);
  CHECK_THROWS_AS(zeros({2}, {DType::i64}).set_requires_grad(true), Error);
  Tensor fresh = zeros({2});
  CHECK(!fresh.requires_grad());
  fresh.set_requires_grad(true);
  CHECK(fresh.requires_grad());
  CHECK(fresh.is_leaf());

  CHECK_THROWS_WITH_AS(x.fill_(0.0), doctest::Contains("fill_"), Error);
  CHECK_THROWS_AS(x.copy_(zeros({3}, {DType::f64})), Error);
  CHECK_THROWS_AS(y.fill_(0.0), Error);
  {
    NoGradGuard guard;
    x.fill_(0.5);
  }
  CHECK(vals(x) == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(x.requires_grad());
}

TEST_CASE("autograd: a long chain of ops backpropagates without recursion limits") {
  const Tensor x = leaf({2}, 21);
  Tensor y = x;
  for (int i = 0; i < 5000; ++i) y = y + 1.0;
  sum(y * 3.0).backward();
  CHECK(vals(x.grad()) == std::vector<double>{3, 3});
}

TEST_CASE("autograd: gradients flow into f32 and bf16 leaves with their own dtype") {
  const Tensor w = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}, {DType::f32, cpu_device(), true});
  const Tensor xin = from_vector(std::vector<float>{1, -1}, {1, 2});
  sum(matmul(xin, w)).backward();
  CHECK(w.grad().dtype() == DType::f32);
  CHECK(vals(w.grad()) == std::vector<double>{1, 1, 1, -1, -1, -1});

  const Tensor b = ones({3}, {DType::bf16, cpu_device(), true});
  sum(b * 2.0).backward();
  CHECK(b.grad().dtype() == DType::bf16);
  CHECK(vals(b.grad()) == std::vector<double>{2, 2, 2});
}
