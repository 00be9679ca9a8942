// Forward of every op in tensor/ops.h against a naive reference written here
// with plain loops over std::vector<double> (ggml test-backend-ops style:
// one table of cases per op family, each case run on several shapes, memory
// layouts and dtypes).
//
// Inputs come from a local generator (not the library's RNG) and are rounded
// to the dtype under test in the test itself, so the reference sees exactly
// the values the op sees. Non-contiguous operands are real views of a larger
// base (transposed, narrowed, expanded); the reference builds the same view
// with its own index arithmetic.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/graph.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

using namespace lory;

namespace {

// ---------------------------------------------------------------------------
// A reference n-d array and the index arithmetic the ops need
// ---------------------------------------------------------------------------

struct Arr {
  Shape shape;
  std::vector<double> v;  // row-major
};

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t i = s.size(); i-- > 0;) {
    idx[i] = flat % s[i];
    flat /= s[i];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t f = 0;
  for (size_t i = 0; i < s.size(); ++i) f = f * s[i] + idx[i];
  return f;
}

std::string shape_string(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

// NumPy broadcasting, written independently of the library's.
Shape bcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    REQUIRE((da == db || da == 1 || db == 1));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// a[out_idx] where a is broadcast to a shape whose index is out_idx.
double at_bcast(const Arr& a, const std::vector<int64_t>& out_idx) {
  const size_t lead = out_idx.size() - a.shape.size();
  int64_t f = 0;
  for (size_t i = 0; i < a.shape.size(); ++i) f = f * a.shape[i] + (a.shape[i] == 1 ? 0 : out_idx[lead + i]);
  return a.v[static_cast<size_t>(f)];
}

Arr expand_ref(const Arr& a, const Shape& s) {
  Arr out{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  for (int64_t f = 0; f < numel_of(s); ++f) out.v[f] = at_bcast(a, unravel(f, s));
  return out;
}

template <typename F>
Arr map1(const Arr& a, F fn) {
  Arr out = a;
  for (double& x : out.v) x = fn(x);
  return out;
}

template <typename F>
Arr map2(const Arr& a, const Arr& b, F fn) {
  const Shape s = bcast(a.shape, b.shape);
  Arr out{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  for (int64_t f = 0; f < numel_of(s); ++f) {
    const auto idx = unravel(f, s);
    out.v[f] = fn(at_bcast(a, idx), at_bcast(b, idx));
  }
  return out;
}

Arr permute_ref(const Arr& a, const std::vector<int64_t>& dims) {
  Shape s(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) s[i] = a.shape[dims[i]];
  Arr out{s, std::vector<double>(a.v.size())};
  std::vector<int64_t> src(dims.size());
  for (int64_t f = 0; f < numel_of(s); ++f) {
    const auto idx = unravel(f, s);
    for (size_t i = 0; i < dims.size(); ++i) src[dims[i]] = idx[i];
    out.v[f] = a.v[ravel(src, a.shape)];
  }
  return out;
}

std::vector<int64_t> swap_last_two(size_t n) {
  std::vector<int64_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<int64_t>(i);
  std::swap(d[n - 1], d[n - 2]);
  return d;
}

int64_t norm_dim(int64_t d, size_t n) { return d < 0 ? d + static_cast<int64_t>(n) : d; }

Arr narrow_ref(const Arr& a, int64_t dim, int64_t start, int64_t len) {
  dim = norm_dim(dim, a.shape.size());
  Shape s = a.shape;
  s[dim] = len;
  Arr out{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  for (int64_t f = 0; f < numel_of(s); ++f) {
    auto idx = unravel(f, s);
    idx[dim] += start;
    out.v[f] = a.v[ravel(idx, a.shape)];
  }
  return out;
}

Arr select_ref(const Arr& a, int64_t dim, int64_t index) {
  dim = norm_dim(dim, a.shape.size());
  Arr n = narrow_ref(a, dim, index, 1);
  n.shape.erase(n.shape.begin() + dim);
  return n;
}

enum class Red { sum, mean, max, min };

Arr reduce_ref(const Arr& a, const std::vector<int64_t>& dims, bool keepdim, Red op) {
  const size_t n = a.shape.size();
  std::vector<bool> reduced(n, dims.empty());
  for (int64_t d : dims) reduced[norm_dim(d, n)] = true;
  Shape keep, out_shape;
  for (size_t i = 0; i < n; ++i) {
    keep.push_back(reduced[i] ? 1 : a.shape[i]);
    if (!reduced[i]) out_shape.push_back(a.shape[i]);
  }
  const int64_t m = numel_of(keep);
  std::vector<double> acc(static_cast<size_t>(m), op == Red::max ? -INFINITY : op == Red::min ? INFINITY : 0.0);
  std::vector<int64_t> count(static_cast<size_t>(m), 0);
  for (int64_t f = 0; f < numel_of(a.shape); ++f) {
    auto idx = unravel(f, a.shape);
    for (size_t i = 0; i < n; ++i)
      if (reduced[i]) idx[i] = 0;
    const int64_t o = ravel(idx, keep);
    const double x = a.v[f];
    if (op == Red::max)
      acc[o] = std::max(acc[o], x);
    else if (op == Red::min)
      acc[o] = std::min(acc[o], x);
    else
      acc[o] += x;
    ++count[o];
  }
  if (op == Red::mean)
    for (int64_t o = 0; o < m; ++o) acc[o] /= static_cast<double>(count[o]);
  return Arr{keepdim ? keep : out_shape, acc};
}

Arr softmax_ref(const Arr& a, int64_t dim, bool log) {
  const size_t n = a.shape.size();
  dim = norm_dim(dim, n);
  std::vector<int64_t> perm, inv(n);
  for (size_t i = 0; i < n; ++i)
    if (static_cast<int64_t>(i) != dim) perm.push_back(static_cast<int64_t>(i));
  perm.push_back(dim);
  for (size_t i = 0; i < n; ++i) inv[perm[i]] = static_cast<int64_t>(i);
  Arr moved = permute_ref(a, perm);
  const int64_t cols = a.shape[dim], rows = numel_of(a.shape) / cols;
  for (int64_t r = 0; r < rows; ++r) {
    double* row = moved.v.data() + r * cols;
    double mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, row[c]);
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += std::exp(row[c] - mx);
    for (int64_t c = 0; c < cols; ++c) row[c] = log ? row[c] - mx - std::log(s) : std::exp(row[c] - mx) / s;
  }
  return permute_ref(moved, inv);
}

// NumPy matmul: 1-d operands, broadcast batch dims.
Arr matmul_ref(const Arr& a_in, const Arr& b_in) {
  const bool av = a_in.shape.size() == 1, bv = b_in.shape.size() == 1;
  Arr a = a_in, b = b_in;
  if (av) a.shape = {1, a_in.shape[0]};
  if (bv) b.shape = {b_in.shape[0], 1};
  const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back(), N = b.shape.back();
  REQUIRE(b.shape[b.shape.size() - 2] == K);
  const Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = bcast(ab, bb);
  Shape full = batch;
  full.push_back(M);
  full.push_back(N);
  Arr out{full, std::vector<double>(static_cast<size_t>(numel_of(full)))};
  for (int64_t f = 0; f < numel_of(full); ++f) {
    const auto idx = unravel(f, full);
    std::vector<int64_t> ai(idx.begin(), idx.end() - 2), bi(idx.begin(), idx.end() - 2);
    ai.push_back(idx[idx.size() - 2]);
    ai.push_back(0);
    bi.push_back(0);
    bi.push_back(idx.back());
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      ai.back() = k;
      bi[bi.size() - 2] = k;
      // Batch dims broadcast; the matrix dims index directly.
      s += at_bcast(a, ai) * at_bcast(b, bi);
    }
    out.v[f] = s;
  }
  Shape s = batch;
  if (!av) s.push_back(M);
  if (!bv) s.push_back(N);
  out.shape = s;
  return out;
}

// ---------------------------------------------------------------------------
// inputs
// ---------------------------------------------------------------------------

// splitmix64: the test's own numbers, independent of the library's RNG.
struct Rng {
  uint64_t s;
  // The seed is hashed first: with a plain seed * increment start, seed n+1
  // would replay seed n's stream shifted by one.
  explicit Rng(uint64_t seed) : s(mix(seed ^ 0xD1B54A32D192ED03ull)) {}
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t next() { return mix(s += 0x9E3779B97F4A7C15ull); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// The value a double becomes when stored in dtype dt.
double round_to(double x, DType dt) {
  switch (dt) {
    case DType::f64:
      return x;
    case DType::f32:
      return static_cast<double>(static_cast<float>(x));
    case DType::bf16:
      return bf16_bits_to_float(float_to_bf16_bits(static_cast<float>(x)));
    case DType::f16:
      return f16_bits_to_float(float_to_f16_bits(static_cast<float>(x)));
    default:
      return std::trunc(x);
  }
}

struct Gen {
  double lo = -2, hi = 2;
  bool integers = false;  // small integers: comparisons and max/min see ties
};
Gen positive() { return Gen{0.2, 3.0, false}; }
Gen ints() { return Gen{-3, 3, true}; }

Arr values_for(const Shape& s, DType dt, uint64_t seed, Gen g) {
  Rng r(seed);
  Arr a{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  for (double& x : a.v) {
    x = r.uniform(g.lo, g.hi);
    if (g.integers) x = std::round(x);
    x = round_to(x, dt);
  }
  return a;
}

Tensor tensor_of(const Arr& a, DType dt) { return from_vector(a.v, a.shape, {dt}); }

enum class Layout { contiguous, transposed, narrowed, expanded };
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous:
      return "contiguous";
    case Layout::transposed:
      return "transposed";
    case Layout::narrowed:
      return "narrowed";
    case Layout::expanded:
      return "expanded";
  }
  return "?";
}
const Layout kLayouts[] = {Layout::contiguous, Layout::transposed, Layout::narrowed, Layout::expanded};

struct Operand {
  Tensor t;
  Arr ref;
};

// An operand of logical shape `shape`, laid out in memory as `layout` asks.
Operand make(const Shape& shape, DType dt, uint64_t seed, Layout layout = Layout::contiguous, Gen g = {}) {
  const size_t n = shape.size();
  if (layout == Layout::transposed && n >= 2) {
    Shape bs = shape;
    std::swap(bs[n - 1], bs[n - 2]);
    const Arr base = values_for(bs, dt, seed, g);
    Operand o{tensor_of(base, dt).transpose(-1, -2), permute_ref(base, swap_last_two(n))};
    if (shape[n - 1] > 1 && shape[n - 2] > 1) REQUIRE(!o.t.is_contiguous());
    return o;
  }
  if (layout == Layout::narrowed && n >= 1) {
    Shape bs = shape;
    bs.back() += 3;
    const Arr base = values_for(bs, dt, seed, g);
    return Operand{tensor_of(base, dt).narrow(-1, 2, shape.back()), narrow_ref(base, -1, 2, shape.back())};
  }
  if (layout == Layout::expanded) {
    for (size_t i = 0; i < n; ++i) {
      if (shape[i] <= 1) continue;
      Shape bs = shape;
      bs[i] = 1;
      const Arr base = values_for(bs, dt, seed, g);
      Operand o{tensor_of(base, dt).expand(shape), expand_ref(base, shape)};
      REQUIRE(o.t.stride(static_cast<int64_t>(i)) == 0);
      return o;
    }
  }
  const Arr a = values_for(shape, dt, seed, g);
  return Operand{tensor_of(a, dt), a};
}

// ---------------------------------------------------------------------------
// comparison
// ---------------------------------------------------------------------------

struct Tol {
  double atol, rtol;
};
Tol tol_for(DType dt) {
  switch (dt) {
    case DType::f64:
      return {1e-10, 1e-10};
    case DType::f32:
      return {2e-5, 2e-5};
    default:
      return {3e-2, 2e-2};  // bf16/f16: a smoke test of the storage type
  }
}

const DType kFloatTypes[] = {DType::f32, DType::f64};

// Every element of `got` within atol + rtol*|want| of `want`; the message
// names the first element that is not.
void check_close(const Tensor& got, const Arr& want, Tol tol, const std::string& what = "") {
  INFO(what);
  REQUIRE(got.defined());
  CHECK_MESSAGE(got.shape() == want.shape, "shape ", shape_string(got.shape()), " vs expected ",
                shape_string(want.shape));
  if (got.shape() != want.shape) return;
  const std::vector<double> g = got.to_vector<double>();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const double w = want.v[i];
    const bool ok =
        (std::isnan(w) && std::isnan(g[i])) || g[i] == w || std::abs(g[i] - w) <= tol.atol + tol.rtol * std::abs(w);
    if (!ok) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  std::ostringstream msg;
  if (bad) {
    msg << bad << " of " << g.size() << " elements differ; first at flat index " << first << " "
        << shape_string(unravel(first, want.shape)) << ": got " << g[first] << ", expected " << want.v[first];
  }
  CHECK_MESSAGE(bad == 0, msg.str());
}

std::string dname(DType dt) { return dtype_name(dt); }

// ---------------------------------------------------------------------------
// op tables
// ---------------------------------------------------------------------------

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;
using RefBinary = std::function<double(double, double)>;
struct BinaryCase {
  const char* name;
  BinaryFn fn;
  RefBinary ref;
  bool comparison = false;
  bool positive_b = false;
};

std::vector<BinaryCase> binary_cases() {
  auto b2d = [](bool c) { return c ? 1.0 : 0.0; };
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double a, double b) { return a / b; },
       false, true},
      {"operator+", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; }},
      {"operator-", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; }},
      {"operator*", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; }},
      {"operator/", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; },
       false, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [b2d](double a, double b) { return b2d(a == b); }, true},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); },
       [b2d](double a, double b) { return b2d(a != b); }, true},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); },
       [b2d](double a, double b) { return b2d(a < b); }, true},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); },
       [b2d](double a, double b) { return b2d(a <= b); }, true},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); },
       [b2d](double a, double b) { return b2d(a > b); }, true},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
       [b2d](double a, double b) { return b2d(a >= b); }, true},
  };
}

struct ShapePair {
  Shape a, b;
  Layout la = Layout::contiguous, lb = Layout::contiguous;
};

std::vector<ShapePair> binary_shapes() {
  return {
      {{3, 4}, {3, 4}},
      {{3, 1, 4}, {2, 4}},  // -> [3, 2, 4]
      {{}, {2, 3}},
      {{2, 3}, {}},
      {{}, {}},
      {{1}, {5}},
      {{4, 1}, {1, 3}},
      {{3, 4}, {3, 4}, Layout::transposed, Layout::narrowed},
      {{3, 4}, {3, 4}, Layout::expanded, Layout::transposed},
      {{2, 3, 4}, {3, 4}, Layout::narrowed, Layout::expanded},
      {{2, 3, 4}, {2, 1, 4}, Layout::transposed, Layout::contiguous},
  };
}

using UnaryFn = std::function<Tensor(const Tensor&)>;
using RefUnary = std::function<double(double)>;
struct UnaryCase {
  const char* name;
  UnaryFn fn;
  RefUnary ref;
  bool positive = false;  // domain: (0.2, 3) instead of (-2, 2)
};

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }},
      {"operator- (unary)", [](const Tensor& x) { return -x; }, [](double x) { return -x; }},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, true},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::abs(x); }},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, [](double x) { return x * x; }},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, true},
      {"pow -1", [](const Tensor& x) { return pow(x, -1.0); }, [](double x) { return 1.0 / x; }, true},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, true},
      {"pow 0", [](const Tensor& x) { return pow(x, 0.0); }, [](double) { return 1.0; }},
      {"add scalar", [](const Tensor& x) { return add(x, 1.5); }, [](double x) { return x + 1.5; }},
      {"sub scalar", [](const Tensor& x) { return sub(x, 0.75); }, [](double x) { return x - 0.75; }},
      {"mul scalar", [](const Tensor& x) { return mul(x, -2.5); }, [](double x) { return x * -2.5; }},
      {"div scalar", [](const Tensor& x) { return div(x, 4.0); }, [](double x) { return x / 4.0; }},
      {"rsub scalar", [](const Tensor& x) { return rsub(x, 3.0); }, [](double x) { return 3.0 - x; }},
      {"x + s", [](const Tensor& x) { return x + 2.0; }, [](double x) { return x + 2.0; }},
      {"s + x", [](const Tensor& x) { return 2.0 + x; }, [](double x) { return 2.0 + x; }},
      {"x - s", [](const Tensor& x) { return x - 2.0; }, [](double x) { return x - 2.0; }},
      {"s - x", [](const Tensor& x) { return 1.0 - x; }, [](double x) { return 1.0 - x; }},
      {"x * s", [](const Tensor& x) { return x * 0.5; }, [](double x) { return x * 0.5; }},
      {"s * x", [](const Tensor& x) { return 3.0 * x; }, [](double x) { return 3.0 * x; }},
      {"x / s", [](const Tensor& x) { return x / 8.0; }, [](double x) { return x / 8.0; }},
  };
}

}  // namespace

// ---------------------------------------------------------------------------
// elementwise binary
// ---------------------------------------------------------------------------

TEST_CASE("ops: binary ops and comparisons match the reference with broadcasting and strided operands") {
  uint64_t seed = 100;
  for (const BinaryCase& c : binary_cases()) {
    for (DType dt : kFloatTypes) {
      for (const ShapePair& sp : binary_shapes()) {
        ++seed;
        const Gen ga = c.comparison || std::string(c.name).find("imum") != std::string::npos ? ints() : Gen{};
        const Gen gb = c.positive_b ? Gen{0.5, 2.5, false} : ga;
        const Operand a = make(sp.a, dt, seed, sp.la, ga);
        const Operand b = make(sp.b, dt, seed + 7777, sp.lb, gb);
        const std::string what = std::string(c.name) + " " + dname(dt) + " " + shape_string(sp.a) + " (" +
                                 layout_name(sp.la) + ") with " + shape_string(sp.b) + " (" + layout_name(sp.lb) + ")";
        const Tensor out = c.fn(a.t, b.t);
        INFO(what);
        CHECK(out.dtype() == (c.comparison ? DType::boolean : dt));
        check_close(out, map2(a.ref, b.ref, c.ref), tol_for(dt), what);
      }
    }
  }
}

TEST_CASE("ops: comparisons see ties and produce exact booleans") {
  const Tensor a = from_vector(std::vector<float>{1, 2, 3, 2}, {4});
  const Tensor b = from_vector(std::vector<float>{2, 2, 2, 2}, {4});
  CHECK(eq(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 0, 1});
  CHECK(ne(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1, 0});
  CHECK(lt(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 0, 0});
  CHECK(le(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 0, 1});
  CHECK(gt(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 1, 0});
  CHECK(ge(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1, 1});
  // Integer tensors compare too.
  const Tensor i = from_vector(std::vector<int64_t>{-1, 5}, {2}, {DType::i64});
  CHECK(gt(i, scalar_tensor(0, {DType::i64})).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1});
}

TEST_CASE("ops: integer and mixed-dtype elementwise ops keep or promote the dtype") {
  const Tensor i = from_vector(std::vector<int32_t>{-3, 4}, {2}, {DType::i32});
  CHECK(neg(i).dtype() == DType::i32);
  CHECK(neg(i).to_vector<int32_t>() == std::vector<int32_t>{3, -4});
  CHECK(abs(i).to_vector<int32_t>() == std::vector<int32_t>{3, 4});
  CHECK(add(i, i).to_vector<int32_t>() == std::vector<int32_t>{-6, 8});
  const Tensor e = exp(i);  // transcendental functions of integers compute in f32
  CHECK(e.dtype() == DType::f32);
  CHECK(e.to_vector<double>()[1] == doctest::Approx(std::exp(4.0)).epsilon(1e-6));
  const Tensor m =
      mul(from_vector(std::vector<float>{1.5f, 2}, {2}), from_vector(std::vector<double>{2, 3}, {2}, {DType::f64}));
  CHECK(m.dtype() == DType::f64);
  CHECK(m.to_vector<double>() == std::vector<double>{3, 6});
  const Tensor z = add(zeros({0, 3}), ones({3}));
  CHECK(z.shape() == Shape{0, 3});
}

TEST_CASE("ops: bf16 elementwise smoke test") {
  for (const ShapePair& sp :
       {ShapePair{{3, 1, 4}, {2, 4}}, ShapePair{{3, 4}, {3, 4}, Layout::transposed, Layout::narrowed}}) {
    const Operand a = make(sp.a, DType::bf16, 1), b = make(sp.b, DType::bf16, 2);
    const Operand p = make(sp.b, DType::bf16, 3, Layout::contiguous, Gen{0.5, 2, false});
    CHECK(add(a.t, b.t).dtype() == DType::bf16);
    check_close(add(a.t, b.t), map2(a.ref, b.ref, [](double x, double y) { return x + y; }), tol_for(DType::bf16),
                "add");
    check_close(mul(a.t, b.t), map2(a.ref, b.ref, [](double x, double y) { return x * y; }), tol_for(DType::bf16),
                "mul");
    check_close(div(a.t, p.t), map2(a.ref, p.ref, [](double x, double y) { return x / y; }), tol_for(DType::bf16),
                "div");
    check_close(maximum(a.t, b.t), map2(a.ref, b.ref, [](double x, double y) { return std::max(x, y); }),
                tol_for(DType::bf16), "maximum");
    check_close(exp(a.t), map1(a.ref, [](double x) { return std::exp(x); }), tol_for(DType::bf16), "exp");
    check_close(silu(b.t), map1(b.ref, [](double x) { return x * sigmoid_ref(x); }), tol_for(DType::bf16), "silu");
    check_close(tanh(b.t), map1(b.ref, [](double x) { return std::tanh(x); }), tol_for(DType::bf16), "tanh");
    check_close(rsqrt(p.t), map1(p.ref, [](double x) { return 1 / std::sqrt(x); }), tol_for(DType::bf16), "rsqrt");
    check_close(mul(a.t, 3.0), map1(a.ref, [](double x) { return 3 * x; }), tol_for(DType::bf16), "mul scalar");
    const Tensor lt_ab = lt(a.t, b.t);
    CHECK(lt_ab.dtype() == DType::boolean);
    check_close(lt_ab, map2(a.ref, b.ref, [](double x, double y) { return x < y ? 1.0 : 0.0; }), {0, 0}, "lt");
  }
  // f16 works as a storage type too.
  const Operand h = make({5}, DType::f16, 9);
  check_close(add(h.t, h.t), map1(h.ref, [](double x) { return 2 * x; }), tol_for(DType::f16), "f16 add");
}

// ---------------------------------------------------------------------------
// elementwise unary and with a scalar
// ---------------------------------------------------------------------------

TEST_CASE("ops: unary and scalar ops match the reference on every layout and 0-d input") {
  uint64_t seed = 5000;
  const std::vector<Shape> shapes{{2, 3, 4}, {5}, {}};
  for (const UnaryCase& c : unary_cases()) {
    for (DType dt : kFloatTypes) {
      for (const Shape& s : shapes) {
        for (Layout l : kLayouts) {
          if (s.empty() && l != Layout::contiguous) continue;
          ++seed;
          const Operand x = make(s, dt, seed, l, c.positive ? positive() : Gen{});
          const std::string what = std::string(c.name) + " " + dname(dt) + " " + shape_string(s) + " " + layout_name(l);
          const Tensor out = c.fn(x.t);
          CHECK_MESSAGE(out.dtype() == dt, what);
          check_close(out, map1(x.ref, c.ref), tol_for(dt), what);
          // The input is never modified.
          check_close(x.t, x.ref, {0, 0}, what + " (input unchanged)");
        }
      }
    }
  }
}

TEST_CASE("ops: division by a scalar is true division: exact where x / s is, integers promoted to f32") {
  CHECK((full({3}, 49.0, {DType::f64}) / 49.0).to_vector<double>() == std::vector<double>(3, 1.0));
  const Tensor i = from_vector(std::vector<int32_t>{49, 7, -3}, {3}, {DType::i32});
  const Tensor q = i / 49.0;
  CHECK(q.dtype() == DType::f32);
  CHECK(q.to_vector<float>() == std::vector<float>{1.0f, 7.0f / 49.0f, -3.0f / 49.0f});
  CHECK(mean(full({7}, 0.1, {DType::f64})).item() == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(mean(from_vector(std::vector<int64_t>{1, 2}, {2}, {DType::i64})).item() == 1.5);
}

TEST_CASE("ops: exp, sigmoid and tanh saturate without nan at large magnitudes") {
  const Tensor x = from_vector(std::vector<double>{-1000, -50, 0, 50, 1000}, {5}, {DType::f64});
  for (DType dt : kFloatTypes) {
    const Tensor xt = x.to(dt);
    const std::vector<double> s = sigmoid(xt).to_vector<double>();
    CHECK(s[0] == doctest::Approx(0.0));
    CHECK(s[2] == doctest::Approx(0.5));
    CHECK(s[4] == doctest::Approx(1.0));
    const std::vector<double> t = tanh(xt).to_vector<double>();
    CHECK(t[0] == doctest::Approx(-1.0));
    CHECK(t[4] == doctest::Approx(1.0));
    const std::vector<double> si = silu(xt).to_vector<double>();
    CHECK(si[0] == doctest::Approx(0.0));
    CHECK(si[4] == doctest::Approx(1000.0));
    const std::vector<double> e = exp(xt).to_vector<double>();
    CHECK(e[0] == 0.0);
    CHECK(std::isinf(e[4]));
    for (double v : s) CHECK(!std::isnan(v));
    for (double v : t) CHECK(!std::isnan(v));
    for (double v : si) CHECK(!std::isnan(v));
  }
}

// ---------------------------------------------------------------------------
// where / masked_fill
// ---------------------------------------------------------------------------

TEST_CASE("ops: where and masked_fill select elementwise with broadcasting") {
  for (DType dt : kFloatTypes) {
    // cond [3, 1], a [3, 4], b [4] -> [3, 4]
    const Tensor cond = from_vector(std::vector<bool>{true, false, true}, {3, 1}, {DType::boolean});
    const Arr cref{{3, 1}, {1, 0, 1}};
    const Operand a = make({3, 4}, dt, 1, Layout::transposed), b = make({4}, dt, 2);
    const Tensor w = where(cond, a.t, b.t);
    CHECK(w.dtype() == dt);
    const Shape s = bcast(cref.shape, bcast(a.ref.shape, b.ref.shape));
    Arr want{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
    for (int64_t f = 0; f < numel_of(s); ++f) {
      const auto idx = unravel(f, s);
      want.v[f] = at_bcast(cref, idx) != 0 ? at_bcast(a.ref, idx) : at_bcast(b.ref, idx);
    }
    check_close(w, want, {0, 0}, "where " + dname(dt));

    // A condition computed by a comparison on a strided view.
    const Operand x = make({2, 5}, dt, 3, Layout::narrowed);
    const Tensor pos = gt(x.t, zeros({}, {dt}));
    check_close(where(pos, x.t, zeros({}, {dt})), map1(x.ref, [](double v) { return v > 0 ? v : 0.0; }), {0, 0},
                "where as relu " + dname(dt));

    // masked_fill with a mask broadcast along rows.
    const Tensor mask = from_vector(std::vector<bool>{false, true, true, false}, {1, 4}, {DType::boolean});
    const Operand y = make({3, 4}, dt, 4);
    Arr want2 = y.ref;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 1; c < 3; ++c) want2.v[r * 4 + c] = -1e9;
    check_close(masked_fill(y.t, mask, -1e9), want2, {0, 1e-7}, "masked_fill " + dname(dt));
  }
  CHECK_THROWS_WITH_AS(where(zeros({2}), ones({2}), ones({2})), doctest::Contains("bool"), Error);
  CHECK_THROWS_AS(masked_fill(ones({2}), from_vector(std::vector<bool>{true, false, true}, {3}, {DType::boolean}), 0.0),
                  Error);
}

// ---------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------

TEST_CASE("ops: sum, mean, amax, amin and max over dim lists with and without keepdim") {
  const std::vector<std::vector<int64_t>> dim_lists{{},     {0},    {1},    {2},      {-1},
                                                    {0, 2}, {2, 0}, {1, 2}, {-3, -2}, {0, 1, 2}};
  uint64_t seed = 9000;
  for (DType dt : kFloatTypes) {
    for (Layout l : kLayouts) {
      const Operand x = make({2, 3, 4}, dt, ++seed, l);
      for (const auto& dims : dim_lists) {
        for (bool keep : {false, true}) {
          const std::string what =
              std::string(dname(dt)) + " " + layout_name(l) + " dims " + shape_string(dims) + (keep ? " keepdim" : "");
          check_close(sum(x.t, dims, keep), reduce_ref(x.ref, dims, keep, Red::sum), tol_for(dt), "sum " + what);
          check_close(mean(x.t, dims, keep), reduce_ref(x.ref, dims, keep, Red::mean), tol_for(dt), "mean " + what);
          check_close(amax(x.t, dims, keep), reduce_ref(x.ref, dims, keep, Red::max), {0, 0}, "amax " + what);
          check_close(amin(x.t, dims, keep), reduce_ref(x.ref, dims, keep, Red::min), {0, 0}, "amin " + what);
        }
      }
      for (int64_t d : {0, 1, 2, -1})
        for (bool keep : {false, true})
          check_close(max(x.t, d, keep), reduce_ref(x.ref, {d}, keep, Red::max), {0, 0},
                      "max dim " + std::to_string(d) + " " + dname(dt) + " " + layout_name(l));
    }
  }
}

TEST_CASE("ops: reductions of 0-d, bool and wide inputs") {
  const Tensor s = scalar_tensor(2.5);
  CHECK(sum(s).dim() == 0);
  CHECK(sum(s).item() == 2.5);
  CHECK(mean(s).item() == 2.5);
  CHECK(amax(s).item() == 2.5);
  // Summing booleans counts them, in i64.
  const Tensor x = from_vector(std::vector<float>{-1, 2, 0, 3, -5, 4}, {2, 3});
  const Tensor c = sum(gt(x, zeros({})));
  CHECK(c.dtype() == DType::i64);
  CHECK(c.item() == 3);
  CHECK(sum(gt(x, zeros({})), {1}).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  // Negative values: amax of all-negative rows is not 0.
  const Tensor neg_rows = from_vector(std::vector<float>{-3, -1, -2, -7, -8, -9}, {2, 3});
  CHECK(amax(neg_rows, {1}).to_vector<double>() == std::vector<double>{-1, -7});
  // A long row: the sum of 10000 ones in f32 is exact (f32 accumulation of small ints).
  CHECK(sum(ones({10000})).item() == 10000.0);
  // Mean of an integer tensor is floating.
  const Tensor mi = mean(from_vector(std::vector<int64_t>{1, 2}, {2}, {DType::i64}));
  CHECK(is_floating(mi.dtype()));
  CHECK(mi.item() == 1.5);
}

TEST_CASE("ops: sum_to undoes broadcasting by summing to the target shape") {
  const std::vector<Shape> targets{{3, 4}, {3, 1}, {1, 4}, {2, 1, 4}, {1, 1, 1}, {}, {4}, {2, 3, 4}};
  for (DType dt : kFloatTypes) {
    const Operand x = make({2, 3, 4}, dt, 77, Layout::transposed);
    for (const Shape& t : targets) {
      // Reference: sum over the leading dims and the dims where the target is 1.
      std::vector<int64_t> dims;
      const size_t lead = 3 - t.size();
      for (size_t i = 0; i < 3; ++i)
        if (i < lead || t[i - lead] == 1) dims.push_back(static_cast<int64_t>(i));
      Arr want = dims.empty() ? x.ref : reduce_ref(x.ref, dims, true, Red::sum);
      want.shape = t;
      check_close(sum_to(x.t, t), want, tol_for(dt), "sum_to " + shape_string(t) + " " + dname(dt));
    }
  }
  CHECK_THROWS_AS(sum_to(ones({2, 3}), {4, 3}), Error);
}

TEST_CASE("ops: bf16 reductions accumulate in f32") {
  const Operand x = make({3, 64}, DType::bf16, 5);
  check_close(sum(x.t, {1}), reduce_ref(x.ref, {1}, false, Red::sum), {0.1, 1e-2}, "sum");
  check_close(mean(x.t, {1}), reduce_ref(x.ref, {1}, false, Red::mean), {3e-3, 1e-2}, "mean");
  check_close(amax(x.t, {0}), reduce_ref(x.ref, {0}, false, Red::max), {0, 0}, "amax");
  CHECK(sum(x.t).dtype() == DType::bf16);
  // 512 ones: a bf16 running sum would stall at 256; f32 accumulation gets 512 exactly.
  CHECK(sum(ones({512}, {DType::bf16})).item() == 512.0);
}

// ---------------------------------------------------------------------------
// softmax
// ---------------------------------------------------------------------------

TEST_CASE("ops: softmax and log_softmax along any dim match the reference") {
  uint64_t seed = 300;
  for (DType dt : kFloatTypes) {
    for (Layout l : kLayouts) {
      for (const Shape& s : {Shape{3, 5}, Shape{2, 3, 4}}) {
        const Operand x = make(s, dt, ++seed, l, Gen{-4, 4, false});
        for (int64_t d = -1; d < static_cast<int64_t>(s.size()); ++d) {
          const std::string what =
              dname(dt) + " " + layout_name(l) + " " + shape_string(s) + " dim " + std::to_string(d);
          const Tensor sm = softmax(x.t, d);
          CHECK(sm.dtype() == dt);
          check_close(sm, softmax_ref(x.ref, d, false), tol_for(dt), "softmax " + what);
          check_close(log_softmax(x.t, d), softmax_ref(x.ref, d, true), tol_for(dt), "log_softmax " + what);
          // Rows sum to one.
          Arr ones_ref = reduce_ref(x.ref, {d}, false, Red::sum);
          for (double& v : ones_ref.v) v = 1.0;
          check_close(sum(sm, {d}), ones_ref, tol_for(dt), "softmax sums to 1 " + what);
        }
      }
    }
  }
}

TEST_CASE("ops: softmax and log_softmax are stable for huge inputs") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    std::vector<double> v{1000, 999, 998, 1000, -1000, 0, 1000, -1000, 500, -500, -1000, -999};
    for (double& e : v) e = round_to(e, dt);
    const Tensor x = from_vector(v, {3, 4}, {dt});
    const Arr ref{{3, 4}, v};
    const Tensor sm = softmax(x, -1), ls = log_softmax(x, -1);
    for (double y : sm.to_vector<double>()) CHECK(std::isfinite(y));
    for (double y : ls.to_vector<double>()) CHECK(std::isfinite(y));
    const Tol tol = dt == DType::bf16 ? Tol{2e-2, 2e-2} : Tol{1e-6, 1e-6};
    check_close(sm, softmax_ref(ref, -1, false), tol, "softmax huge " + dname(dt));
    check_close(ls, softmax_ref(ref, -1, true), dt == DType::bf16 ? Tol{0.05, 1e-2} : Tol{1e-6, 1e-6},
                "log_softmax huge " + dname(dt));
  }
  // Softmax of a 0-d tensor is 1 and log_softmax 0.
  CHECK(softmax(scalar_tensor(3.0), 0).item() == 1.0);
  CHECK(log_softmax(scalar_tensor(3.0), 0).item() == 0.0);
}

TEST_CASE("ops: bf16 softmax smoke test") {
  const Operand x = make({4, 16}, DType::bf16, 8, Layout::transposed);
  check_close(softmax(x.t, 1), softmax_ref(x.ref, 1, false), tol_for(DType::bf16), "softmax");
  check_close(log_softmax(x.t, 0), softmax_ref(x.ref, 0, true), Tol{0.05, 2e-2}, "log_softmax");
}

// ---------------------------------------------------------------------------
// matrix products
// ---------------------------------------------------------------------------

namespace {
struct MatmulCase {
  Shape a, b;
  Layout la = Layout::contiguous, lb = Layout::contiguous;
};
}  // namespace

TEST_CASE("ops: matmul matches the reference for 2-d, batched, broadcast-batch, 1-d and strided operands") {
  const std::vector<MatmulCase> cases{
      {{3, 4}, {4, 5}},
      {{2, 3, 4}, {2, 4, 5}},
      {{2, 1, 3, 4}, {3, 4, 5}},  // -> [2, 3, 3, 5]
      {{2, 3, 4}, {4, 5}},        // batch folded into M
      {{3, 4}, {2, 4, 5}},        // a broadcast against b's batch
      {{1, 3, 4}, {2, 4, 5}},
      {{4}, {4, 5}},
      {{3, 4}, {4}},
      {{4}, {4}},
      {{2, 3, 4}, {4}},
      {{4}, {2, 4, 5}},
      {{1, 1}, {1, 1}},
      {{3, 4}, {4, 5}, Layout::transposed, Layout::contiguous},
      {{3, 4}, {4, 5}, Layout::contiguous, Layout::transposed},
      {{3, 4}, {4, 5}, Layout::transposed, Layout::transposed},
      {{3, 4}, {4, 5}, Layout::narrowed, Layout::narrowed},  // row stride larger than the row
      {{2, 3, 4}, {2, 4, 5}, Layout::transposed, Layout::transposed},
      {{2, 3, 4}, {2, 4, 5}, Layout::expanded, Layout::narrowed},  // a batch stride 0
      {{2, 3, 4}, {4, 5}, Layout::transposed, Layout::transposed},
      {{2, 2, 3, 4}, {2, 4, 5}, Layout::narrowed, Layout::expanded},
  };
  uint64_t seed = 700;
  for (DType dt : kFloatTypes) {
    for (const MatmulCase& c : cases) {
      const Operand a = make(c.a, dt, ++seed, c.la), b = make(c.b, dt, ++seed, c.lb);
      const std::string what = dname(dt) + " " + shape_string(c.a) + " (" + layout_name(c.la) + ") @ " +
                               shape_string(c.b) + " (" + layout_name(c.lb) + ")";
      const Tensor out = matmul(a.t, b.t);
      CHECK_MESSAGE(out.dtype() == dt, what);
      check_close(out, matmul_ref(a.ref, b.ref), tol_for(dt), what);
    }
  }
}

TEST_CASE("ops: matmul of views that are neither row- nor column-major, and of .t() spellings") {
  for (DType dt : kFloatTypes) {
    // [3, 4, 2].select(2, 0) has strides [8, 2]: the GEMM cannot take it as is.
    const Arr base = values_for({3, 4, 2}, dt, 1, {});
    const Tensor a = tensor_of(base, dt).select(2, 0);
    REQUIRE(a.stride(-1) == 2);
    const Operand b = make({4, 3}, dt, 2);
    check_close(matmul(a, b.t), matmul_ref(select_ref(base, 2, 0), b.ref), tol_for(dt), "select view @ b");
    // a.t() @ b.t() written with the method.
    const Operand x = make({4, 3}, dt, 3), y = make({5, 4}, dt, 4);
    check_close(matmul(x.t.t(), y.t.t()), matmul_ref(permute_ref(x.ref, {1, 0}), permute_ref(y.ref, {1, 0})),
                tol_for(dt), "x.t() @ y.t()");
    // A larger product, to reach the blocked GEMM path: [33, 70] @ [70, 65].
    const Operand p = make({33, 70}, dt, 5, Layout::transposed), q = make({70, 65}, dt, 6);
    check_close(matmul(p.t, q.t), matmul_ref(p.ref, q.ref), dt == DType::f32 ? Tol{1e-4, 1e-4} : tol_for(dt),
                "33x70 @ 70x65");
  }
}

TEST_CASE("ops: bmm matches the reference, with transposed operands") {
  for (DType dt : kFloatTypes) {
    for (Layout la : {Layout::contiguous, Layout::transposed, Layout::expanded})
      for (Layout lb : {Layout::contiguous, Layout::transposed, Layout::narrowed}) {
        const Operand a = make({2, 3, 4}, dt, 11, la), b = make({2, 4, 5}, dt, 12, lb);
        check_close(bmm(a.t, b.t), matmul_ref(a.ref, b.ref), tol_for(dt),
                    std::string("bmm ") + dname(dt) + " " + layout_name(la) + " " + layout_name(lb));
      }
  }
  CHECK_THROWS_AS(bmm(zeros({3, 4}), zeros({4, 5})), Error);
}

TEST_CASE("ops: bf16 matmul smoke test") {
  const Operand a = make({2, 3, 16}, DType::bf16, 1, Layout::transposed), b = make({16, 5}, DType::bf16, 2);
  const Tensor out = matmul(a.t, b.t);
  CHECK(out.dtype() == DType::bf16);
  check_close(out, matmul_ref(a.ref, b.ref), Tol{5e-2, 2e-2}, "bf16 matmul");
  const Operand c = make({2, 4, 8}, DType::bf16, 3), d = make({2, 8, 3}, DType::bf16, 4, Layout::transposed);
  check_close(bmm(c.t, d.t), matmul_ref(c.ref, d.ref), Tol{5e-2, 2e-2}, "bf16 bmm");
}

// ---------------------------------------------------------------------------
// indexing
// ---------------------------------------------------------------------------

TEST_CASE("ops: index_select gathers slices along any dim, with repeated indices") {
  for (DType dt : kFloatTypes) {
    for (Layout l : {Layout::contiguous, Layout::transposed, Layout::narrowed}) {
      const Operand x = make({4, 3}, dt, 21, l);
      const std::vector<int64_t> rows{2, 0, 2, 3};
      const Tensor r = index_select(x.t, 0, from_vector(rows, {4}, {DType::i64}));
      Arr want{{4, 3}, {}};
      for (int64_t i : rows)
        for (int64_t c = 0; c < 3; ++c) want.v.push_back(x.ref.v[i * 3 + c]);
      check_close(r, want, {0, 0}, std::string("rows ") + layout_name(l));

      const std::vector<int32_t> cols{1, 1, 0};
      const Tensor c = index_select(x.t, -1, from_vector(cols, {3}, {DType::i32}));
      Arr want_c{{4, 3}, {}};
      for (int64_t i = 0; i < 4; ++i)
        for (int32_t j : cols) want_c.v.push_back(x.ref.v[i * 3 + j]);
      check_close(c, want_c, {0, 0}, std::string("cols ") + layout_name(l));
    }
  }
  const Operand x3 = make({2, 3, 4}, DType::f32, 22);
  const Tensor mid = index_select(x3.t, 1, from_vector(std::vector<int64_t>{2}, {1}, {DType::i64}));
  Arr want = narrow_ref(x3.ref, 1, 2, 1);
  check_close(mid, want, {0, 0}, "middle dim");
  CHECK_THROWS_AS(index_select(x3.t, 0, zeros({2})), Error);  // float indices are refused
}

TEST_CASE("ops: embedding looks up rows for ids of any shape") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    const Operand w = make({5, 3}, dt, 31);
    const std::vector<int64_t> ids{4, 0, 4, 1, 3, 0};
    const Tensor e = embedding(w.t, from_vector(ids, {2, 3}, {DType::i64}));
    Arr want{{2, 3, 3}, {}};
    for (int64_t id : ids)
      for (int64_t c = 0; c < 3; ++c) want.v.push_back(w.ref.v[id * 3 + c]);
    check_close(e, want, {0, 0}, "embedding " + dname(dt));
    CHECK(e.dtype() == dt);
    const Tensor e1 = embedding(w.t, from_vector(std::vector<int32_t>{2}, {1}, {DType::i32}));
    check_close(e1, Arr{{1, 3}, select_ref(w.ref, 0, 2).v}, {0, 0}, "embedding 1 id");
  }
}

// ---------------------------------------------------------------------------
// joining and splitting
// ---------------------------------------------------------------------------

TEST_CASE("ops: cat and stack join along any dim") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    const Operand a = make({2, 3}, dt, 41), b = make({2, 1}, dt, 42, Layout::narrowed),
                  c = make({2, 2}, dt, 43, Layout::transposed);
    const Tensor cc = cat({a.t, b.t, c.t}, 1);
    Arr want{{2, 6}, {}};
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t j = 0; j < 3; ++j) want.v.push_back(a.ref.v[r * 3 + j]);
      want.v.push_back(b.ref.v[r]);
      for (int64_t j = 0; j < 2; ++j) want.v.push_back(c.ref.v[r * 2 + j]);
    }
    check_close(cc, want, {0, 0}, "cat dim 1 " + dname(dt));
    check_close(cat({a.t, b.t, c.t}, -1), want, {0, 0}, "cat dim -1");

    const Operand d = make({1, 3}, dt, 44);
    Arr want0{{3, 3}, a.ref.v};
    want0.v.insert(want0.v.end(), d.ref.v.begin(), d.ref.v.end());
    check_close(cat({a.t, d.t}, 0), want0, {0, 0}, "cat dim 0");
    check_close(cat({a.t}, 0), a.ref, {0, 0}, "cat of one");

    const Operand e = make({2, 3}, dt, 45, Layout::transposed);
    for (int64_t dim : {0, 1, 2, -1}) {
      const Tensor st = stack({a.t, e.t}, dim);
      const int64_t nd = dim < 0 ? dim + 3 : dim;
      Shape s{2, 3};
      s.insert(s.begin() + nd, 2);
      Arr want_s{s, std::vector<double>(12)};
      for (int64_t f = 0; f < 12; ++f) {
        auto idx = unravel(f, s);
        const int64_t which = idx[nd];
        idx.erase(idx.begin() + nd);
        want_s.v[f] = (which == 0 ? a.ref : e.ref).v[ravel(idx, {2, 3})];
      }
      check_close(st, want_s, {0, 0}, "stack dim " + std::to_string(dim) + " " + dname(dt));
    }
  }
  // Mixed dtypes promote.
  CHECK(cat({zeros({1}), zeros({1}, {DType::f64})}, 0).dtype() == DType::f64);
  CHECK_THROWS_AS(stack({zeros({2}), zeros({3})}, 0), Error);
}

TEST_CASE("ops: split and chunk return views with PyTorch's sizes") {
  // An empty dim splits into one empty piece (PyTorch), not into none.
  CHECK(split(zeros({0, 4}), 2, 0).size() == 1);
  CHECK(chunk(zeros({3, 0}), 3, 1).size() == 1);
  CHECK(chunk(zeros({3, 0}), 3, 1)[0].shape() == Shape{3, 0});
  Tensor x = arange(0, 10).reshape({5, 2});
  const auto parts = split(x, 2, 0);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{2, 2});
  CHECK(parts[2].shape() == Shape{1, 2});
  CHECK(parts[1].to_vector<double>() == std::vector<double>{4, 5, 6, 7});
  CHECK(parts[2].to_vector<double>() == std::vector<double>{8, 9});

  const auto by_sizes = split(x, std::vector<int64_t>{1, 4}, 0);
  REQUIRE(by_sizes.size() == 2);
  CHECK(by_sizes[1].to_vector<double>() == std::vector<double>{2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_THROWS_AS(split(x, std::vector<int64_t>{1, 3}, 0), Error);

  const auto cols = split(x, 1, 1);
  REQUIRE(cols.size() == 2);
  CHECK(cols[1].to_vector<double>() == std::vector<double>{1, 3, 5, 7, 9});

  const auto ch = chunk(arange(0, 5), 3, 0);  // ceil(5/3) = 2: sizes 2, 2, 1
  REQUIRE(ch.size() == 3);
  CHECK(ch[0].to_vector<double>() == std::vector<double>{0, 1});
  CHECK(ch[2].to_vector<double>() == std::vector<double>{4});
  CHECK(chunk(arange(0, 6), 4, 0).size() == 3);  // ceil(6/4) = 2: PyTorch returns 3 chunks
  CHECK(chunk(arange(0, 8), 4, 0).size() == 4);

  // The pieces are views: writing into them changes the source.
  Tensor p1 = parts[1];
  p1.fill_(-1);
  Tensor c0 = cols[0];
  c0.copy_(from_vector(std::vector<float>{10, 20, 30, 40, 50}, {5, 1}));
  CHECK(x.to_vector<double>() == std::vector<double>{10, 1, 20, 3, 30, -1, 40, -1, 50, 9});
  CHECK(parts[0].data_ptr() == x.data_ptr());
  CHECK(static_cast<char*>(parts[1].data_ptr()) == static_cast<char*>(x.data_ptr()) + 4 * sizeof(float));
}

// ---------------------------------------------------------------------------
// fused neural-network ops
// ---------------------------------------------------------------------------

namespace {
double cross_entropy_ref(const Arr& logits, const std::vector<int64_t>& targets, int64_t ignore) {
  const int64_t N = logits.shape[0], V = logits.shape[1];
  double total = 0;
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] == ignore) continue;
    double mx = -INFINITY;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, logits.v[i * V + j]);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(logits.v[i * V + j] - mx);
    total += mx + std::log(s) - logits.v[i * V + targets[i]];
    ++counted;
  }
  return counted ? total / static_cast<double>(counted) : 0.0;
}

Arr rms_norm_ref(const Arr& x, const Arr& w, double eps) {
  const int64_t D = x.shape.back(), R = numel_of(x.shape) / D;
  Arr out = x;
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0;
    for (int64_t d = 0; d < D; ++d) ss += x.v[r * D + d] * x.v[r * D + d];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    for (int64_t d = 0; d < D; ++d) out.v[r * D + d] = x.v[r * D + d] * inv * w.v[d];
  }
  return out;
}

// HF LLaMA: q * cos + rotate_half(q) * sin, with rotate_half(x) = cat(-x2, x1)
// and cos/sin of cat(freqs, freqs), freqs_i = pos * theta^(-2i/Dh).
Arr rope_ref(const Arr& x, double theta, int64_t pos_offset) {
  const int64_t B = x.shape[0], L = x.shape[1], H = x.shape[2], D = x.shape[3], half = D / 2;
  Arr out = x;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t base = ((b * L + l) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = d % half;
          const double angle = static_cast<double>(pos_offset + l) * std::pow(theta, -2.0 * i / static_cast<double>(D));
          const double rotated = d < half ? -x.v[base + d + half] : x.v[base + d - half];
          out.v[base + d] = x.v[base + d] * std::cos(angle) + rotated * std::sin(angle);
        }
      }
  return out;
}

// softmax(q k^T * scale + mask) v with query i seeing keys j <= i + S - L when causal.
// No scale means 1/sqrt(D), as in the op.
// q [B, H, L, D], k and v [B, Hkv, S, D]: query head h reads key/value head
// h / (H / Hkv), transformers' repeat_kv convention (heads of a group are consecutive).
Arr sdpa_ref(const Arr& q, const Arr& k, const Arr& v, bool causal, std::optional<double> scale_arg) {
  const int64_t B = q.shape[0], H = q.shape[1], L = q.shape[2], D = q.shape[3], S = k.shape[2];
  const int64_t Hkv = k.shape[1], group = H / Hkv;
  const double scale = scale_arg ? *scale_arg : 1.0 / std::sqrt(static_cast<double>(D));
  Arr out = q;
  std::vector<double> p(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        const double* qi = &q.v[((b * H + h) * L + i) * D];
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          if (causal && j > i + S - L) {
            p[j] = -INFINITY;
            continue;
          }
          const double* kj = &k.v[((b * Hkv + h / group) * S + j) * D];
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += qi[d] * kj[d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < S; ++j) z += p[j] == -INFINITY ? 0.0 : std::exp(p[j] - mx);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < S; ++j)
            if (p[j] != -INFINITY) acc += std::exp(p[j] - mx) / z * v.v[((b * Hkv + h / group) * S + j) * D + d];
          out.v[((b * H + h) * L + i) * D + d] = acc;
        }
      }
  return out;
}
}  // namespace

TEST_CASE("ops: cross_entropy is the mean over non-ignored rows of -log softmax at the target") {
  for (DType dt : {DType::f32, DType::f64}) {
    const Operand logits = make({5, 4}, dt, 51, Layout::transposed, Gen{-3, 3, false});
    const std::vector<int64_t> t{1, -100, 3, 0, -100};
    const Tensor loss = cross_entropy(logits.t, from_vector(t, {5}, {DType::i64}));
    CHECK(loss.dim() == 0);
    CHECK(loss.dtype() == DType::f32);
    CHECK(loss.item() == doctest::Approx(cross_entropy_ref(logits.ref, t, -100)).epsilon(1e-5));

    // i32 targets, a custom ignore index.
    const std::vector<int32_t> t32{2, 2, 0, 1, 3};
    const std::vector<int64_t> t64(t32.begin(), t32.end());
    CHECK(cross_entropy(logits.t, from_vector(t32, {5}, {DType::i32}), 2).item() ==
          doctest::Approx(cross_entropy_ref(logits.ref, t64, 2)).epsilon(1e-5));
    // Nothing ignored.
    CHECK(cross_entropy(logits.t, from_vector(t64, {5}, {DType::i64})).item() ==
          doctest::Approx(cross_entropy_ref(logits.ref, t64, -100)).epsilon(1e-5));
    // Every row ignored: 0, not nan.
    const Tensor none = cross_entropy(logits.t, full({5}, -100, {DType::i64}));
    CHECK(none.item() == 0.0);
  }
  // Huge logits stay finite and exact: a confident right answer costs ~0, a confident wrong one ~2000.
  const Tensor big = from_vector(std::vector<float>{1000, -1000, 0, -1000, 1000, 0}, {2, 3});
  CHECK(cross_entropy(big, from_vector(std::vector<int64_t>{0, 1}, {2}, {DType::i64})).item() == doctest::Approx(0.0));
  CHECK(cross_entropy(big, from_vector(std::vector<int64_t>{1, 1}, {2}, {DType::i64})).item() ==
        doctest::Approx(1000.0).epsilon(1e-6));
  // Uniform logits: log V.
  CHECK(cross_entropy(zeros({3, 7}), from_vector(std::vector<int64_t>{0, 3, 6}, {3}, {DType::i64})).item() ==
        doctest::Approx(std::log(7.0)).epsilon(1e-6));
  // bf16 logits: f32 result.
  const Operand lb = make({4, 6}, DType::bf16, 52);
  const std::vector<int64_t> tb{5, 0, -100, 2};
  const Tensor lbf = cross_entropy(lb.t, from_vector(tb, {4}, {DType::i64}));
  CHECK(lbf.dtype() == DType::f32);
  CHECK(lbf.item() == doctest::Approx(cross_entropy_ref(lb.ref, tb, -100)).epsilon(1e-4));
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), zeros({3}, {DType::i64})), Error);
  CHECK_THROWS_AS(cross_entropy(zeros({2, 3}), zeros({2})), Error);
}

TEST_CASE("ops: swiglu is silu(gate) * up for every layout, including the halves of one fused projection") {
  auto swiglu_ref = [](const Arr& g, const Arr& u) {
    return map2(g, u, [](double x, double y) { return x / (1.0 + std::exp(-x)) * y; });
  };
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (Layout l : kLayouts) {
      const Operand g = make({2, 3, 8}, dt, 71, l, Gen{-6, 6, false});
      const Operand u = make({2, 3, 8}, dt, 72, Layout::contiguous);
      const Tensor y = swiglu(g.t, u.t);
      CHECK(y.dtype() == dt);
      CHECK(y.is_contiguous());
      check_close(y, swiglu_ref(g.ref, u.ref), tol_for(dt), "swiglu " + dname(dt) + " " + layout_name(l));
    }
  }
  // gate and up as the two halves of a [tokens, 2F] projection: row-strided views.
  const Operand both = make({5, 12}, DType::f32, 73);
  const Tensor gate = both.t.narrow(1, 0, 6), up = both.t.narrow(1, 6, 6);
  REQUIRE(gate.stride(0) == 12);
  check_close(swiglu(gate, up), swiglu_ref(narrow_ref(both.ref, 1, 0, 6), narrow_ref(both.ref, 1, 6, 6)),
              tol_for(DType::f32), "fused halves");
  // Mixed dtypes promote; 1-d and empty inputs work.
  CHECK(swiglu(ones({4}, {DType::bf16}), ones({4})).dtype() == DType::f32);
  CHECK(swiglu(zeros({0, 3}), zeros({0, 3})).shape() == Shape{0, 3});
  CHECK_THROWS_WITH_AS(swiglu(zeros({2, 4}), zeros({2, 5})),
                       doctest::Contains("swiglu: gate and up must have one shape [..., F]: gate is [2, 4]"), Error);
}

TEST_CASE("ops: rms_norm matches x / sqrt(mean(x^2) + eps) * weight") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (Layout l : {Layout::contiguous, Layout::transposed, Layout::narrowed}) {
      const Operand x = make({2, 3, 8}, dt, 61, l);
      const Operand w = make({8}, dt, 62, Layout::contiguous, Gen{0.5, 1.5, false});
      for (double eps : {1e-5, 0.5}) {
        const Tensor y = rms_norm(x.t, w.t, eps);
        CHECK(y.dtype() == dt);
        check_close(y, rms_norm_ref(x.ref, w.ref, eps), tol_for(dt),
                    "rms_norm " + dname(dt) + " " + layout_name(l) + " eps " + std::to_string(eps));
      }
    }
  }
  // A 1-d input is one row.
  const Operand v = make({6}, DType::f64, 63), w = make({6}, DType::f64, 64);
  check_close(rms_norm(v.t, w.t, 1e-6), rms_norm_ref(v.ref, w.ref, 1e-6), tol_for(DType::f64), "1-d");
  CHECK_THROWS_AS(rms_norm(zeros({2, 4}), ones({3}), 1e-5), Error);
}

TEST_CASE("ops: rope matches the HF rotate_half formula, for any position offset") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (double theta : {10000.0, 10.0}) {
      for (int64_t off : {0, 5}) {
        const Operand x = make({2, 3, 2, 8}, dt, 71);
        check_close(rope(x.t, theta, off), rope_ref(x.ref, theta, off), tol_for(dt),
                    "rope " + dname(dt) + " theta " + std::to_string(theta) + " offset " + std::to_string(off));
      }
    }
    // Non-contiguous input: [B, H, L, Dh] permuted to [B, L, H, Dh].
    const Arr base = values_for({2, 2, 3, 4}, dt, 72, {});
    const Tensor xp = tensor_of(base, dt).permute({0, 2, 1, 3});
    check_close(rope(xp, 100.0), rope_ref(permute_ref(base, {0, 2, 1, 3}), 100.0, 0), tol_for(dt), "rope permuted");
  }
  // Position 0 is the identity.
  const Operand x0 = make({1, 1, 3, 6}, DType::f64, 73);
  check_close(rope(x0.t, 10000.0), x0.ref, {1e-15, 0}, "position 0");
  CHECK_THROWS_AS(rope(zeros({1, 2, 3, 5}), 10000.0), Error);  // odd head dim
  CHECK_THROWS_AS(rope(zeros({2, 3, 4}), 10000.0), Error);     // not 4-d
}

TEST_CASE("ops: rope of the last token with pos_offset L-1 equals the last row of rope of the sequence") {
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t L = 6;
    const Operand x = make({2, L, 3, 8}, dt, 74);
    const Tensor full_seq = rope(x.t, 500.0);
    const Tensor last = rope(x.t.narrow(1, L - 1, 1), 500.0, L - 1);
    check_close(last, Arr{{2, 1, 3, 8}, full_seq.narrow(1, L - 1, 1).to_vector<double>()}, tol_for(dt),
                "last token " + dname(dt));
    // And the same for a block of the last 2 tokens at offset L-2.
    const Tensor tail = rope(x.t.narrow(1, L - 2, 2), 500.0, L - 2);
    check_close(tail, Arr{{2, 2, 3, 8}, full_seq.narrow(1, L - 2, 2).to_vector<double>()}, tol_for(dt),
                "last two tokens " + dname(dt));
  }
}

TEST_CASE("ops: scaled_dot_product_attention matches softmax(q k^T scale + mask) v") {
  struct Case {
    int64_t L, S;
    bool causal;
    std::optional<double> scale;  // nullopt: the default 1/sqrt(Dh)
  };
  const std::vector<Case> cases{{4, 4, true, {}},  {2, 5, true, {}},  {1, 5, true, {}},  {3, 5, false, {}},
                                {4, 4, false, {}}, {4, 4, true, 0.5}, {5, 2, false, {}}, {3, 3, true, 0.0}};
  uint64_t seed = 800;
  for (DType dt : kFloatTypes) {
    for (const Case& c : cases) {
      const Operand q = make({2, 2, c.L, 8}, dt, ++seed), k = make({2, 2, c.S, 8}, dt, ++seed),
                    v = make({2, 2, c.S, 8}, dt, ++seed);
      const Tensor out = scaled_dot_product_attention(q.t, k.t, v.t, c.causal, c.scale);
      CHECK(out.dtype() == dt);
      check_close(out, sdpa_ref(q.ref, k.ref, v.ref, c.causal, c.scale), tol_for(dt),
                  "sdpa " + dname(dt) + " L " + std::to_string(c.L) + " S " + std::to_string(c.S) +
                      (c.causal ? " causal" : "") + " scale " + (c.scale ? std::to_string(*c.scale) : "default"));
    }
    // Non-contiguous q, k, v: [B, L, H, Dh] transposed to [B, H, L, Dh], as a projection gives them.
    const Arr qb = values_for({1, 4, 2, 8}, dt, 901, {}), kb = values_for({1, 4, 2, 8}, dt, 902, {}),
              vb = values_for({1, 4, 2, 8}, dt, 903, {});
    const std::vector<int64_t> perm{0, 2, 1, 3};
    const Tensor out = scaled_dot_product_attention(
        tensor_of(qb, dt).transpose(1, 2), tensor_of(kb, dt).transpose(1, 2), tensor_of(vb, dt).transpose(1, 2), true);
    check_close(out, sdpa_ref(permute_ref(qb, perm), permute_ref(kb, perm), permute_ref(vb, perm), true, {}),
                tol_for(dt), "sdpa transposed " + dname(dt));
  }
  // Grouped-query attention: 6 query heads over 2 or 3 key/value heads (and 1: multi-query).
  for (DType dt : kFloatTypes) {
    for (int64_t Hkv : {1, 2, 3}) {
      for (const auto& [L, S, causal] : {std::tuple{5, 5, true}, std::tuple{2, 6, true}, std::tuple{3, 4, false}}) {
        const Operand q = make({2, 6, L, 8}, dt, ++seed), k = make({2, Hkv, S, 8}, dt, ++seed),
                      v = make({2, Hkv, S, 8}, dt, ++seed);
        check_close(scaled_dot_product_attention(q.t, k.t, v.t, causal), sdpa_ref(q.ref, k.ref, v.ref, causal, {}),
                    tol_for(dt),
                    "sdpa GQA " + dname(dt) + " Hkv " + std::to_string(Hkv) + " L " + std::to_string(L) + " S " +
                        std::to_string(S));
      }
    }
  }
  // Key/value heads must divide the query heads.
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({1, 6, 3, 4}), zeros({1, 4, 3, 4}), zeros({1, 4, 3, 4})),
                       doctest::Contains("k, v [B, Hkv, S, Dh] with Hkv dividing H: q [1, 6, 3, 4]"), Error);
  // The first query of a causal square attention sees only key 0: its output is v[0].
  const Operand q = make({1, 1, 3, 4}, DType::f64, 1), k = make({1, 1, 3, 4}, DType::f64, 2),
                v = make({1, 1, 3, 4}, DType::f64, 3);
  const std::vector<double> o = scaled_dot_product_attention(q.t, k.t, v.t, true).to_vector<double>();
  for (int d = 0; d < 4; ++d) CHECK(o[d] == doctest::Approx(v.ref.v[d]).epsilon(1e-12));
  // Causal attention with more queries than keys has no sensible mask.
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 3, 4}), zeros({1, 1, 2, 4}), zeros({1, 1, 2, 4}), true),
                  Error);
  CHECK_THROWS_AS(scaled_dot_product_attention(zeros({1, 1, 3, 4}), zeros({1, 1, 3, 4}), zeros({1, 1, 3, 5}), false),
                  Error);
}

TEST_CASE("ops: scaled_dot_product_attention is stable for large scores and in bf16") {
  // Scores of ~6000: a naive exp would overflow even in f64.
  for (DType dt : kFloatTypes) {
    const Operand q = make({1, 1, 3, 4}, dt, 5, Layout::contiguous, Gen{50, 60, false});
    const Operand k = make({1, 1, 3, 4}, dt, 6, Layout::contiguous, Gen{50, 60, false});
    const Operand v = make({1, 1, 3, 4}, dt, 7);
    const Tensor out = scaled_dot_product_attention(q.t, k.t, v.t, false);
    for (double y : out.to_vector<double>()) CHECK(std::isfinite(y));
    // f32 scores of this size carry ~1e-3 absolute error, hence the loose f32 tolerance.
    check_close(out, sdpa_ref(q.ref, k.ref, v.ref, false, {}), dt == DType::f64 ? Tol{1e-9, 1e-9} : Tol{5e-3, 5e-3},
                "large scores " + dname(dt));
  }

  const Operand qb = make({1, 2, 4, 8}, DType::bf16, 8), kb = make({1, 2, 6, 8}, DType::bf16, 9),
                vb = make({1, 2, 6, 8}, DType::bf16, 10);
  check_close(scaled_dot_product_attention(qb.t, kb.t, vb.t, true), sdpa_ref(qb.ref, kb.ref, vb.ref, true, {}),
              tol_for(DType::bf16), "bf16 sdpa");
}

// The backend kernels take exactly the operands tensor/backend.h describes
// and refuse the rest with the shared messages of tensor/kernel_args.h (the
// CUDA kernels call the same checks).
TEST_CASE("ops: backend kernels refuse operands outside their contract, naming the operand") {
  Backend& be = cpu_backend();
  const Tensor logits = zeros({3, 5});
  Tensor loss = empty({3}), lse = empty({3});
  CHECK_THROWS_WITH_AS(be.cross_entropy_forward(logits, zeros({3}, {DType::i32}), -100, loss, lse),
                       doctest::Contains("targets must be contiguous i64 [3]"), Error);
  CHECK_THROWS_WITH_AS(be.cross_entropy_forward(logits, full({3}, 5.0, {DType::i64}), -100, loss, lse),
                       doctest::Contains("target 5 at row 0 is out of range for 5 classes"), Error);
  Tensor dlogits = empty({3, 5});
  CHECK_THROWS_WITH_AS(
      be.cross_entropy_backward(logits, zeros({3}, {DType::i64}), lse, -100, ones({1}, {DType::f64}), dlogits),
      doctest::Contains("scale must be one f32 value"), Error);
  Tensor rope_out = empty({1, 2, 1, 3});
  CHECK_THROWS_WITH_AS(be.rope(zeros({1, 2, 1, 3}), rope_out, 0, 10000.0, false),
                       doctest::Contains("head dim must be even"), Error);
  const Tensor q = zeros({1, 1, 4, 8}), kv = zeros({1, 1, 2, 8});
  Tensor out = empty({1, 1, 4, 8}), att_lse = empty({1, 1, 4});
  CHECK_THROWS_WITH_AS(be.attention_forward(q, kv, kv, 1.0, true, out, att_lse),
                       doctest::Contains("causal attention needs S >= L"), Error);
  Tensor table = zeros({4, 3});
  CHECK_THROWS_WITH_AS(be.index_add(table, 0, zeros({2}, {DType::i64}), zeros({3, 3})),
                       doctest::Contains("index_add: src must be contiguous [2, 3]"), Error);
  Tensor picked = empty({2, 3});
  CHECK_THROWS_WITH_AS(be.index_select(table, 0, zeros({2}, {DType::f32}), picked),
                       doctest::Contains("index_select: index must be i32/i64 of 0 or 1 dims"), Error);
  Tensor dq = empty({1, 1, 4, 8}), dk = empty({1, 1, 2, 8}), dv = empty({1, 1, 3, 8});
  CHECK_THROWS_WITH_AS(be.attention_backward(out, q, kv, kv, out, att_lse, 1.0, false, dq, dk, dv),
                       doctest::Contains("dv must be contiguous like k"), Error);

  // matmul: one message for a shape mismatch, naming both operands.
  Tensor mm_out = empty({2, 3, 5});
  CHECK_THROWS_WITH_AS(be.matmul(zeros({2, 3, 4}), zeros({2, 3, 5}), mm_out),
                       doctest::Contains("matmul: inner dims differ: a is [2, 3, 4]"), Error);
  CHECK_THROWS_WITH_AS(be.matmul(zeros({2, 3, 4}), zeros({2, 4, 5}, {DType::f64}), mm_out),
                       doctest::Contains("matmul: expected operands of one floating dtype"), Error);
  Tensor mm_small = empty({2, 3, 4});
  CHECK_THROWS_WITH_AS(be.matmul(zeros({2, 3, 4}), zeros({2, 4, 5}), mm_small),
                       doctest::Contains("matmul: out must be contiguous [2, 3, 5]"), Error);
  // A layout the GEMM cannot read in place is the op's to pack, not the kernel's.
  const Tensor stepped = zeros({2, 3, 4, 2}).select(3, 0);  // strides [24, 8, 2]
  CHECK_THROWS_WITH_AS(be.matmul(stepped, zeros({2, 4, 5}), mm_out),
                       doctest::Contains("matmul: operand a is neither row- nor column-major"), Error);
  // elementwise, reductions, copies.
  Tensor ew = empty({2, 3});
  CHECK_THROWS_WITH_AS(be.binary(BinaryOp::add, zeros({2, 3}), zeros({2, 3}, {DType::f64}), ew),
                       doctest::Contains("add: operand dtypes differ"), Error);
  Tensor ew_bool = empty({2, 3}, {DType::boolean});
  CHECK_THROWS_WITH_AS(
      be.binary(BinaryOp::sub, zeros({2, 3}, {DType::boolean}), zeros({2, 3}, {DType::boolean}), ew_bool),
      doctest::Contains("sub: not defined for bool tensors"), Error);
  CHECK_THROWS_WITH_AS(be.binary(BinaryOp::lt, zeros({2, 3}), zeros({2, 3}), ew),
                       doctest::Contains("lt: out must be contiguous bool"), Error);
  CHECK_THROWS_WITH_AS(be.unary(UnaryOp::exp, zeros({2, 3}, {DType::i64}), ew, 0.0),
                       doctest::Contains("exp: out must be contiguous of x's shape and dtype"), Error);
  Tensor ew_int = empty({2, 3}, {DType::i64});
  CHECK_THROWS_WITH_AS(be.unary(UnaryOp::exp, zeros({2, 3}, {DType::i64}), ew_int, 0.0),
                       doctest::Contains("exp: not defined for integer tensors"), Error);
  CHECK_THROWS_WITH_AS(be.where(zeros({2, 3}), zeros({2, 3}), zeros({2, 3}), ew),
                       doctest::Contains("where: condition must be bool"), Error);
  Tensor rows = empty({2});
  CHECK_THROWS_WITH_AS(be.reduce(ReduceOp::max, zeros({2, 0}), rows),
                       doctest::Contains("max: cannot reduce over zero elements"), Error);
  Tensor rows3 = empty({3});
  CHECK_THROWS_WITH_AS(be.reduce(ReduceOp::sum, zeros({2, 3}), rows3),
                       doctest::Contains("sum: out must be contiguous [2] of x's dtype"), Error);
  be.reduce(ReduceOp::sum, zeros({2, 0}), rows);  // a sum over nothing is 0, on every backend
  CHECK(rows.to_vector<double>() == std::vector<double>{0.0, 0.0});
  CHECK_THROWS_WITH_AS(be.softmax(zeros({2, 3}).t(), ew, false),
                       doctest::Contains("softmax: x must be contiguous floating [R, C]"), Error);
  CHECK_THROWS_WITH_AS(be.copy(zeros({3, 2}), ew), doctest::Contains("copy: shapes differ"), Error);
  Tensor strided = zeros({3, 2}).t();
  CHECK_THROWS_WITH_AS(be.fill(strided, 1.0), doctest::Contains("fill: out must be contiguous"), Error);
  // Fused ops whose checks moved to kernel_args: swiglu_backward and add_rms_norm.
  Tensor dg = empty({2, 4}), du = empty({2, 3});
  CHECK_THROWS_WITH_AS(be.swiglu_backward(zeros({2, 4}), zeros({2, 4}), zeros({2, 4}), dg, du),
                       doctest::Contains("swiglu_backward: dup must be contiguous like x [2, 4]"), Error);
  Tensor h = empty({2, 4}), normed = empty({2, 4}), rstd = empty({2});
  CHECK_THROWS_WITH_AS(be.add_rms_norm_forward(zeros({2, 4}), zeros({2, 4}, {DType::f64}), ones({4}), 1e-5, h,
                                               normed, rstd),
                       doctest::Contains("add_rms_norm: residual must be contiguous like x [2, 4]"), Error);
}

// ---------------------------------------------------------------------------
// copies and views as free functions
// ---------------------------------------------------------------------------

TEST_CASE("ops: detach, clone, contiguous and the free-function views") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    const Operand x = make({3, 4}, dt, 91, Layout::transposed);
    const Tensor c = clone(x.t);
    CHECK(c.is_contiguous());
    CHECK(c.dtype() == dt);
    check_close(c, x.ref, {0, 0}, "clone " + dname(dt));
    const Tensor ct = contiguous(x.t);
    CHECK(ct.is_contiguous());
    check_close(ct, x.ref, {0, 0}, "contiguous " + dname(dt));
    const Tensor d = detach(x.t);
    CHECK(d.data_ptr() == x.t.data_ptr());
    CHECK(d.strides() == x.t.strides());
    CHECK(!d.requires_grad());
    check_close(d, x.ref, {0, 0}, "detach " + dname(dt));
    check_close(to_dtype(x.t, DType::f64), x.ref, {0, 0}, "to_dtype f64 " + dname(dt));
    CHECK(to_device(x.t, cpu_device()).data_ptr() == x.t.data_ptr());
  }
  const Operand y = make({2, 3, 4}, DType::f64, 92);
  check_close(permute(y.t, {1, 2, 0}), permute_ref(y.ref, {1, 2, 0}), {0, 0}, "permute");
  check_close(transpose(y.t, 0, 2), permute_ref(y.ref, {2, 1, 0}), {0, 0}, "transpose");
  check_close(narrow(y.t, 2, 1, 2), narrow_ref(y.ref, 2, 1, 2), {0, 0}, "narrow");
  check_close(select(y.t, 1, 2), select_ref(y.ref, 1, 2), {0, 0}, "select");
  check_close(view(y.t, {6, 4}), Arr{{6, 4}, y.ref.v}, {0, 0}, "view");
  check_close(reshape(transpose(y.t, 0, 1), {12, 2}), Arr{{12, 2}, permute_ref(y.ref, {1, 0, 2}).v}, {0, 0},
              "reshape of a transpose");
  check_close(unsqueeze(y.t, 1), Arr{{2, 1, 3, 4}, y.ref.v}, {0, 0}, "unsqueeze");
  check_close(squeeze(unsqueeze(y.t, 3), 3), y.ref, {0, 0}, "squeeze");
  check_close(expand(unsqueeze(y.t, 0), {2, 2, 3, 4}), expand_ref(Arr{{1, 2, 3, 4}, y.ref.v}, {2, 2, 3, 4}), {0, 0},
              "expand");
}
