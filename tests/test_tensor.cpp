// The Tensor type itself: creation, dtype conversions (with the bf16/f16
// rounding reference), views and their storage sharing, printing, error
// messages, and the counter-based random numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/graph.h"
#include "tensor/memory_stats.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/errors.h"

using namespace lory;
using lory::test::error_of;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}


bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---------------------------------------------------------------------------
// creation
// ---------------------------------------------------------------------------

TEST_CASE("tensor: zeros, ones and full have the requested shape, dtype and values") {
  const Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == DType::f32);
  CHECK(z.numel() == 6);
  CHECK(z.is_contiguous());
  CHECK(z.strides() == Strides{3, 1});
  CHECK(values(z) == std::vector<double>(6, 0.0));

  const Tensor o = ones({4}, {DType::f64});
  CHECK(o.dtype() == DType::f64);
  CHECK(values(o) == std::vector<double>(4, 1.0));

  const Tensor f = full({2, 2}, -2.5, {DType::bf16});
  CHECK(f.dtype() == DType::bf16);
  CHECK(values(f) == std::vector<double>(4, -2.5));

  const Tensor fi = full({3}, 7, {DType::i64});
  CHECK(fi.to_vector<int64_t>() == std::vector<int64_t>{7, 7, 7});

  const Tensor zl = zeros_like(f);
  CHECK(zl.shape() == f.shape());
  CHECK(zl.dtype() == DType::bf16);
  CHECK(values(ones_like(fi)) == std::vector<double>{1, 1, 1});

  const Tensor e = zeros({0, 3});
  CHECK(e.numel() == 0);
  CHECK(values(e).empty());
}

TEST_CASE("tensor: arange counts from start by step and stops before end") {
  CHECK(values(arange(0, 5)) == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(values(arange(1, 2, 0.25)) == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(values(arange(5, 0, -2)) == std::vector<double>{5, 3, 1});
  CHECK(arange(3, 3).numel() == 0);
  const Tensor i = arange(-2, 2, 1, {DType::i64});
  CHECK(i.dtype() == DType::i64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{-2, -1, 0, 1});
  CHECK_THROWS_AS(arange(0, 1, 0), Error);
}

TEST_CASE("tensor: from_vector and to_vector round trip every host type") {
  const std::vector<float> f{1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, 7e5f};
  CHECK(from_vector(f, {2, 3}).to_vector<float>() == f);
  const std::vector<double> d{0.1, -1e-300, 1e300, 3.0};
  CHECK(from_vector(d, {4}, {DType::f64}).to_vector<double>() == d);
  const std::vector<int32_t> i32{-5, 0, 2147483647, -2147483647 - 1};
  CHECK(from_vector(i32, {4}, {DType::i32}).to_vector<int32_t>() == i32);
  const std::vector<int64_t> i64{-5, 0, (int64_t(1) << 40) + 3};
  CHECK(from_vector(i64, {3}, {DType::i64}).to_vector<int64_t>() == i64);
  const std::vector<uint8_t> u8{0, 1, 200, 255};
  CHECK(from_vector(u8, {2, 2}, {DType::u8}).to_vector<uint8_t>() == u8);
  const Tensor b = from_vector(std::vector<bool>{true, false, true}, {3}, {DType::boolean});
  CHECK(b.dtype() == DType::boolean);
  CHECK(b.to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1});

  // The host type and the tensor dtype may differ: values are converted.
  const Tensor conv = from_vector(std::vector<int64_t>{1, -2, 3}, {3}, {DType::f32});
  CHECK(conv.dtype() == DType::f32);
  CHECK(conv.to_vector<float>() == std::vector<float>{1, -2, 3});

  CHECK_THROWS_WITH_AS(from_vector(std::vector<float>{1, 2, 3}, {2, 2}), doctest::Contains("from_vector"), Error);
}

TEST_CASE("tensor: scalar_tensor is 0-d and item reads the single element") {
  const Tensor s = scalar_tensor(3.25);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.shape().empty());
  CHECK(s.item() == 3.25);
  CHECK(scalar_tensor(-4, {DType::i32}).item() == -4);
  CHECK(full({1, 1}, 2.5).item() == 2.5);
  CHECK_THROWS_WITH_AS(ones({2}).item(), doctest::Contains("item"), Error);
}

// ---------------------------------------------------------------------------
// dtypes
// ---------------------------------------------------------------------------

TEST_CASE("dtype: values exactly representable everywhere survive f32->f64->bf16->f16->i32->i64->f32") {
  const std::vector<float> v{0, 1, -2, 3, 100, -7, 64, -128};
  const Tensor x = from_vector(v, {8});
  const Tensor chain = x.to(DType::f64).to(DType::bf16).to(DType::f16).to(DType::i32).to(DType::i64).to(DType::f32);
  CHECK(chain.dtype() == DType::f32);
  CHECK(chain.to_vector<float>() == v);
  CHECK(x.to(DType::f64).dtype() == DType::f64);
  CHECK(x.to(DType::bf16).dtype() == DType::bf16);
  CHECK(x.to(DType::f16).dtype() == DType::f16);
  CHECK(x.to(DType::i32).dtype() == DType::i32);
  CHECK(x.to(DType::i64).dtype() == DType::i64);

  // To bool: nonzero is true; back to float: 1 and 0.
  const Tensor b = x.to(DType::boolean);
  CHECK(b.dtype() == DType::boolean);
  CHECK(b.to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1, 1, 1, 1, 1, 1});
  CHECK(values(b.to(DType::f32)) == std::vector<double>{0, 1, 1, 1, 1, 1, 1, 1});
  CHECK(b.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 1, 1, 1, 1, 1});

  // to(dtype) of the same dtype is the tensor itself.
  CHECK(x.to(DType::f32).data_ptr() == x.data_ptr());
}

TEST_CASE("dtype: float to integer is defined everywhere: NaN to 0, saturation beyond int64, then wrapping") {
  const Tensor x =
      from_vector(std::vector<double>{-1.0, 300.0, NAN, INFINITY, -INFINITY, 2.9, -2.9, 1e30}, {8}, {DType::f64});
  CHECK(x.to(DType::u8).to_vector<int64_t>() == std::vector<int64_t>{255, 44, 0, 255, 0, 2, 254, 255});
  CHECK(x.to(DType::i64).to_vector<int64_t>() ==
        std::vector<int64_t>{-1, 300, 0, INT64_MAX, INT64_MIN, 2, -2, INT64_MAX});
  CHECK(x.to(DType::i32).to_vector<int64_t>() == std::vector<int64_t>{-1, 300, 0, -1, 0, 2, -2, -1});
  CHECK(full({2}, -1.0, {DType::u8}).to_vector<int64_t>() == std::vector<int64_t>{255, 255});
}

TEST_CASE("dtype: float to integer conversion truncates toward zero like a C cast") {
  const Tensor x = from_vector(std::vector<double>{2.75, -2.75, 0.5, -0.5, 1e3}, {5}, {DType::f64});
  CHECK(x.to(DType::i32).to_vector<int32_t>() == std::vector<int32_t>{2, -2, 0, 0, 1000});
  CHECK(x.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{2, -2, 0, 0, 1000});
}

TEST_CASE("dtype: f64 to f32 rounds and f32 to f64 is exact") {
  const double third = 1.0 / 3.0;
  const Tensor x = from_vector(std::vector<double>{third}, {1}, {DType::f64});
  CHECK(x.to(DType::f32).to_vector<float>()[0] == static_cast<float>(third));
  CHECK(x.to(DType::f32).to(DType::f64).item() == static_cast<double>(static_cast<float>(third)));
}

TEST_CASE("dtype: float_to_bf16_bits rounds to nearest, ties to even, on known bit patterns") {
  CHECK(float_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(float_to_bf16_bits(-2.0f) == 0xC000);
  CHECK(float_to_bf16_bits(0.0f) == 0x0000);
  CHECK(float_to_bf16_bits(-0.0f) == 0x8000);
  // 1 + 2^-8 is exactly halfway between 0x3F80 and 0x3F81: ties go to even (0x3F80).
  CHECK(float_to_bf16_bits(bits_float(0x3F808000u)) == 0x3F80);
  // Halfway between 0x3F81 and 0x3F82: even is 0x3F82, so it rounds up.
  CHECK(float_to_bf16_bits(bits_float(0x3F818000u)) == 0x3F82);
  // Just above halfway rounds up; just below rounds down.
  CHECK(float_to_bf16_bits(bits_float(0x3F808001u)) == 0x3F81);
  CHECK(float_to_bf16_bits(bits_float(0x3F807FFFu)) == 0x3F80);
  CHECK(float_to_bf16_bits(bits_float(0x3F80FFFFu)) == 0x3F81);
  // Rounding can carry into the exponent.
  CHECK(float_to_bf16_bits(bits_float(0x3FFFFFFFu)) == 0x4000);
  // Infinities stay infinite; the largest finite float rounds up to inf.
  CHECK(float_to_bf16_bits(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(float_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xFF80);
  CHECK(float_to_bf16_bits(bits_float(0x7F7FFFFFu)) == 0x7F80);
  // NaN stays NaN (exponent all ones, mantissa nonzero), even when only low mantissa bits are set.
  for (uint32_t nan_bits : {0x7FC00000u, 0x7F800001u, 0xFFC00000u}) {
    CAPTURE(nan_bits);
    const uint16_t b = float_to_bf16_bits(bits_float(nan_bits));
    CHECK((b & 0x7F80) == 0x7F80);
    CHECK((b & 0x007F) != 0);
    CHECK(std::isnan(bf16_bits_to_float(b)));
  }
  // Decoding is exact.
  CHECK(bf16_bits_to_float(0x3F80) == 1.0f);
  CHECK(bf16_bits_to_float(0x4049) == 3.140625f);
  CHECK(bf16_bits_to_float(0xC2F7) == -123.5f);
  CHECK(bf16_bits_to_float(0x0001) == bits_float(0x00010000u));  // smallest bf16 subnormal
}

TEST_CASE("dtype: float_to_f16_bits matches IEEE half on known values") {
  CHECK(float_to_f16_bits(1.0f) == 0x3C00);
  CHECK(float_to_f16_bits(-2.0f) == 0xC000);
  CHECK(float_to_f16_bits(65504.0f) == 0x7BFF);               // largest finite half
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  CHECK(float_to_f16_bits(0.1f) == 0x2E66);
  CHECK(float_to_f16_bits(65520.0f) == 0x7C00);  // halfway to 2^16 rounds (to even) to inf
  CHECK(float_to_f16_bits(std::numeric_limits<float>::infinity()) == 0x7C00);
  // 1 + 2^-11 is halfway between 0x3C00 and 0x3C01: ties to even.
  CHECK(float_to_f16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(float_to_f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);
  const uint16_t nan = float_to_f16_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
  CHECK(f16_bits_to_float(0x3C00) == 1.0f);
  CHECK(f16_bits_to_float(0x7BFF) == 65504.0f);
  CHECK(f16_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_bits_to_float(0x3555) == doctest::Approx(0.33325195).epsilon(1e-7));
}

TEST_CASE("dtype: to(bf16) and to(f16) of a tensor agree elementwise with the reference conversions") {
  // Bit patterns around the rounding boundaries, plus random values over many magnitudes.
  std::vector<float> v;
  for (uint32_t bits : {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x3F807FFFu, 0x3FFFFFFFu, 0x7F7FFFFFu, 0x00000001u,
                        0x80808000u, 0x3F800000u})
    v.push_back(bits_float(bits));
  const std::vector<double> r =
      random_with_key({64}, RandomDist::normal, 11, 0, 0, 1, {DType::f64}).to_vector<double>();
  for (size_t i = 0; i < r.size(); ++i) v.push_back(static_cast<float>(r[i] * std::pow(10.0, double(i % 9) - 4)));
  const int64_t n = static_cast<int64_t>(v.size());
  const Tensor x = from_vector(v, {n});

  const Tensor b = x.to(DType::bf16);
  const Tensor h = x.to(DType::f16);
  const uint16_t* bp = b.data<uint16_t>();
  const uint16_t* hp = h.data<uint16_t>();
  int bad_b = 0, bad_h = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (bp[i] != float_to_bf16_bits(v[i])) ++bad_b;
    if (hp[i] != float_to_f16_bits(v[i])) ++bad_h;
  }
  CHECK(bad_b == 0);
  CHECK(bad_h == 0);
  // f64 -> bf16 goes through the same rounding for values that are exact in f32.
  const Tensor b64 = x.to(DType::f64).to(DType::bf16);
  int bad_b64 = 0;
  for (int64_t i = 0; i < n; ++i)
    if (b64.data<uint16_t>()[i] != float_to_bf16_bits(v[i])) ++bad_b64;
  CHECK(bad_b64 == 0);
  // And decoding a bf16 tensor gives the reference float.
  const std::vector<float> back = b.to_vector<float>();
  int bad_back = 0;
  for (int64_t i = 0; i < n; ++i)
    if (float_bits(back[i]) != float_bits(bf16_bits_to_float(bp[i]))) ++bad_back;
  CHECK(bad_back == 0);
}

TEST_CASE("dtype: names, parsing and promotion") {
  CHECK(std::string(dtype_name(DType::bf16)) == "bf16");
  CHECK(std::string(dtype_name(DType::boolean)) == "bool");
  CHECK(dtype_from_name("bfloat16") == DType::bf16);
  CHECK(dtype_from_name("f64") == DType::f64);
  CHECK_THROWS_AS(dtype_from_name("float8"), Error);
  CHECK(promote_types(DType::f32, DType::f64) == DType::f64);
  CHECK(promote_types(DType::bf16, DType::f16) == DType::f32);
  CHECK(promote_types(DType::bf16, DType::f32) == DType::f32);
  CHECK(promote_types(DType::i64, DType::bf16) == DType::bf16);
  CHECK(promote_types(DType::i32, DType::i64) == DType::i64);
  CHECK(promote_types(DType::boolean, DType::u8) == DType::u8);
  // Binary ops follow the promotion.
  const Tensor a = from_vector(std::vector<int32_t>{1, 2}, {2}, {DType::i32});
  const Tensor b = from_vector(std::vector<float>{0.5f, 0.25f}, {2});
  const Tensor c = add(a, b);
  CHECK(c.dtype() == DType::f32);
  CHECK(values(c) == std::vector<double>{1.5, 2.25});
  CHECK(add(b, b.to(DType::f64)).dtype() == DType::f64);
}

// ---------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------

namespace {
Tensor iota(const Shape& shape, DType dtype = DType::f32) {
  return arange(0, static_cast<double>(shape_numel(shape)), 1, {dtype}).reshape(shape);
}
}  // namespace

TEST_CASE("views: narrow has the right offset, shape and strides and writes reach the base") {
  Tensor base = iota({3, 4});
  const Tensor cols = base.narrow(1, 1, 2);
  CHECK(cols.shape() == Shape{3, 2});
  CHECK(cols.strides() == Strides{4, 1});
  CHECK(cols.offset() == 1);
  CHECK(!cols.is_contiguous());
  CHECK(values(cols) == std::vector<double>{1, 2, 5, 6, 9, 10});
  const Tensor rows = base.narrow(0, 1, 2);
  CHECK(rows.offset() == 4);
  CHECK(rows.is_contiguous());
  CHECK(base.narrow(1, 2, 2).offset() == 2);
  CHECK(base.narrow(0, -1, 1).offset() == 8);  // negative start counts from the end
  CHECK(narrow(base, 1, 1, 2).offset() == 1);

  Tensor c = cols;
  c.fill_(-1);
  CHECK(values(base) == std::vector<double>{0, -1, -1, 3, 4, -1, -1, 7, 8, -1, -1, 11});
  CHECK_THROWS_WITH_AS(base.narrow(1, 3, 2), doctest::Contains("narrow"), Error);
}

TEST_CASE("views: select drops a dim and copy_ into it writes the base") {
  Tensor base = iota({3, 4});
  Tensor row = base.select(0, 2);
  CHECK(row.shape() == Shape{4});
  CHECK(row.offset() == 8);
  CHECK(values(row) == std::vector<double>{8, 9, 10, 11});
  row.copy_(from_vector(std::vector<float>{-1, -2, -3, -4}, {4}));
  CHECK(values(base.select(0, 2)) == std::vector<double>{-1, -2, -3, -4});
  Tensor col = base.select(1, -1);
  CHECK(col.shape() == Shape{3});
  CHECK(col.strides() == Strides{4});
  CHECK(col.offset() == 3);
  col.copy_(scalar_tensor(50));  // broadcasts the scalar
  CHECK(values(base) == std::vector<double>{0, 1, 2, 50, 4, 5, 6, 50, -1, -2, -3, 50});
  CHECK_THROWS_WITH_AS(base.select(0, 3), doctest::Contains("select"), Error);
}

TEST_CASE("views: permute and transpose swap strides and write through to the base") {
  Tensor base = iota({2, 3, 4});
  const Tensor p = base.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Strides{1, 12, 4});
  // p[i][j][k] == base[j][k][i]
  const std::vector<double> pv = values(p), bv = values(base);
  bool ok = true;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) ok = ok && pv[i * 6 + j * 3 + k] == bv[j * 12 + k * 4 + i];
  CHECK(ok);

  Tensor m = iota({2, 3});
  Tensor t = m.t();
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.strides() == Strides{1, 3});
  CHECK(!t.is_contiguous());
  CHECK(values(t) == std::vector<double>{0, 3, 1, 4, 2, 5});
  // Write column 0 of m through row 0 of its transpose.
  Tensor t0 = t.select(0, 0);
  t0.fill_(9);
  CHECK(values(m) == std::vector<double>{9, 1, 2, 9, 4, 5});
  Tensor tp = base.transpose(0, 2);
  CHECK(tp.shape() == Shape{4, 3, 2});
  tp.narrow(0, 3, 1).fill_(-5);  // base[:, :, 3]
  const std::vector<double> after = values(base);
  CHECK(after[3] == -5);
  CHECK(after[23] == -5);
  CHECK(after[22] == 22);
}

TEST_CASE("views: view shares storage and writes through; contiguous() of a transpose copies") {
  Tensor base = iota({3, 4});
  Tensor flat = base.view({12});
  CHECK(flat.data_ptr() == base.data_ptr());
  flat.narrow(0, 5, 1).fill_(99);
  CHECK(values(base)[5] == 99);
  CHECK(base.view({2, -1}).shape() == Shape{2, 6});
  CHECK(base.reshape({4, 3}).data_ptr() == base.data_ptr());  // reshape of a contiguous tensor is a view

  const Tensor t = base.t();
  CHECK(!t.is_contiguous());
  const Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.data_ptr() != base.data_ptr());
  CHECK(values(c) == values(t));
  Tensor cc = c;
  cc.fill_(0);
  CHECK(values(base)[1] == 1);  // the copy is independent
  CHECK(base.contiguous().data_ptr() == base.data_ptr());

  // reshape of a transposed tensor must copy; view must refuse and say so.
  const Tensor r = t.reshape({12});
  CHECK(r.data_ptr() != base.data_ptr());
  CHECK(values(r) == std::vector<double>{0, 4, 8, 1, 99, 9, 2, 6, 10, 3, 7, 11});
  const std::string msg = error_of([&] { (void)t.view({12}); });
  CHECK(contains(msg, "view"));
  CHECK(contains(msg, "[4, 3]"));
  // Splitting a dim of a transposed tensor is still a view.
  CHECK(t.view({2, 2, 3}).data_ptr() == base.data_ptr());
  CHECK_THROWS_AS(base.view({5, 2}), Error);
}

TEST_CASE("views: expand broadcasts with stride 0 and squeeze/unsqueeze add and drop size-1 dims") {
  const Tensor col = from_vector(std::vector<float>{1, 2, 3}, {3, 1});
  const Tensor e = col.expand({3, 4});
  CHECK(e.shape() == Shape{3, 4});
  CHECK(e.strides() == Strides{1, 0});
  CHECK(e.data_ptr() == col.data_ptr());
  CHECK(values(e) == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  const Tensor row = from_vector(std::vector<float>{1, 2}, {2});
  const Tensor e2 = row.expand({3, 2});
  CHECK(e2.strides() == Strides{0, 1});
  CHECK(values(e2) == std::vector<double>{1, 2, 1, 2, 1, 2});
  CHECK(col.expand({2, 3, -1}).shape() == Shape{2, 3, 1});
  CHECK_THROWS_WITH_AS(row.expand({3, 3}), doctest::Contains("expand"), Error);

  const Tensor x = iota({2, 3});
  CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(x.unsqueeze(1).data_ptr() == x.data_ptr());
  CHECK(values(x.unsqueeze(1)) == values(x));
  CHECK(x.unsqueeze(1).squeeze(1).shape() == Shape{2, 3});
  CHECK(x.squeeze(0).shape() == Shape{2, 3});  // not size 1: no-op, as in PyTorch
  CHECK(from_vector(std::vector<float>{5}, {1}).squeeze(0).dim() == 0);
}

TEST_CASE("views: clone is an independent copy; detach shares storage without history") {
  Tensor x = iota({2, 2});
  Tensor c = x.clone();
  CHECK(c.data_ptr() != x.data_ptr());
  c.fill_(7);
  CHECK(values(x) == std::vector<double>{0, 1, 2, 3});
  CHECK(values(c) == std::vector<double>{7, 7, 7, 7});
  const Tensor tc = x.t().clone();
  CHECK(tc.is_contiguous());
  CHECK(values(tc) == std::vector<double>{0, 2, 1, 3});
  Tensor d = x.detach();
  CHECK(d.data_ptr() == x.data_ptr());
  d.fill_(1);
  CHECK(values(x) == std::vector<double>{1, 1, 1, 1});
}

TEST_CASE("views: in-place writes bump the storage version seen by every view") {
  Tensor x = iota({4});
  const Tensor v = x.narrow(0, 1, 2);
  const uint64_t before = x.version();
  Tensor vv = v;
  vv.fill_(3);
  CHECK(x.version() > before);
  CHECK(v.version() == x.version());
  const uint64_t mid = x.version();
  x.copy_(zeros({4}));
  CHECK(v.version() > mid);
}

TEST_CASE("views: copy_ converts dtypes and broadcasts the source; a bad shape is refused") {
  Tensor dst = zeros({2, 3}, {DType::f64});
  dst.copy_(from_vector(std::vector<int32_t>{1, 2, 3}, {3}, {DType::i32}));
  CHECK(values(dst) == std::vector<double>{1, 2, 3, 1, 2, 3});
  Tensor b = zeros({2}, {DType::bf16});
  b.copy_(from_vector(std::vector<float>{bits_float(0x3F808001u), 1.0f}, {2}));
  CHECK(b.data<uint16_t>()[0] == 0x3F81);
  CHECK_THROWS_WITH_AS(dst.copy_(zeros({4})), doctest::Contains("copy_"), Error);
}

// ---------------------------------------------------------------------------
// printing
// ---------------------------------------------------------------------------

TEST_CASE("printing: str shows values, dtype, device and shape") {
  const Tensor x = from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 10.0f, 4.0f}, {2, 3});
  const std::string s = x.str();
  CAPTURE(s);
  CHECK(contains(s, "tensor("));
  CHECK(contains(s, "1.5000"));
  CHECK(contains(s, "-2.0000"));
  CHECK(contains(s, "3.2500"));
  CHECK(contains(s, "10.0000"));
  CHECK(contains(s, "dtype=f32"));
  CHECK(contains(s, "cpu"));
  CHECK(contains(s, "shape=[2, 3]"));
  // Two rows of a matrix: two bracketed rows.
  CHECK(contains(s, "[["));
  CHECK(contains(s, "]]"));

  const std::string i = arange(0, 4, 1, {DType::i64}).str();
  CAPTURE(i);
  CHECK(contains(i, "dtype=i64"));
  CHECK(contains(i, "[0, 1, 2, 3]"));
  CHECK(!contains(i, "3.0000"));  // integers print without decimals

  std::ostringstream os;
  os << x;
  CHECK(os.str() == s);
}

TEST_CASE("printing: long tensors are summarised with '...' like PyTorch") {
  const Tensor x = arange(0, 2000);
  const std::string s = x.str();
  CAPTURE(s.substr(0, 300));
  CHECK(contains(s, "..."));
  CHECK(contains(s, "0.0000"));
  CHECK(contains(s, "1.0000"));
  CHECK(contains(s, "1999.0000"));
  CHECK(!contains(s, "1000.0000"));  // the middle is left out
  CHECK(contains(s, "shape=[2000]"));
  CHECK(s.size() < 300);

  const Tensor m = zeros({100, 100});
  const std::string ms = m.str();
  CHECK(contains(ms, "..."));
  CHECK(ms.size() < 2000);

  // Small tensors are never summarised.
  CHECK(!contains(arange(0, 20).str(), "..."));
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

TEST_CASE("errors: a broadcast mismatch names the op and both shapes") {
  const Tensor a = zeros({2, 3}), b = zeros({4, 3});
  const std::string msg = error_of([&] { (void)add(a, b); });
  CAPTURE(msg);
  CHECK(contains(msg, "add"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[4, 3]"));
  CHECK_THROWS_WITH_AS(mul(a, b), doctest::Contains("mul"), Error);
  CHECK_THROWS_WITH_AS(where(zeros({2, 3}, {DType::boolean}), a, b), doctest::Contains("where"), Error);
}

TEST_CASE("errors: matmul names both shapes on an inner-dim mismatch and both dtypes on a dtype mismatch") {
  const std::string inner = error_of([] { (void)matmul(zeros({2, 3}), zeros({4, 5})); });
  CAPTURE(inner);
  CHECK(contains(inner, "matmul"));
  CHECK(contains(inner, "[2, 3]"));
  CHECK(contains(inner, "[4, 5]"));

  const std::string dt = error_of([] { (void)matmul(zeros({2, 3}), zeros({3, 2}, {DType::f64})); });
  CAPTURE(dt);
  CHECK(contains(dt, "matmul"));
  CHECK(contains(dt, "f32"));
  CHECK(contains(dt, "f64"));

  const std::string b = error_of([] { (void)bmm(zeros({2, 3, 4}), zeros({3, 4, 5})); });
  CAPTURE(b);
  CHECK(contains(b, "bmm"));
  CHECK(contains(b, "[2, 3, 4]"));
  CHECK(contains(b, "[3, 4, 5]"));
}

TEST_CASE("errors: copy_, where and masked_fill name both operands with dtype and device") {
  CHECK_THROWS_WITH_AS(
      zeros({2, 3}).copy_(zeros({4}, {DType::bf16})),
      doctest::Contains("copy_: source [4] (bf16, cpu) cannot be broadcast to destination [2, 3] (f32, cpu)"), Error);
  CHECK_THROWS_WITH_AS(
      masked_fill(zeros({2, 3}), zeros({3, 3}, {DType::boolean}), 1.0),
      doctest::Contains("masked_fill: mask [3, 3] (bool, cpu) does not broadcast to input [2, 3] (f32, cpu)"), Error);
  CHECK_THROWS_WITH_AS(where(zeros({5}, {DType::boolean}), zeros({2, 3}), zeros({3})),
                       doctest::Contains("where: condition [5] (bool, cpu) cannot be broadcast with the operands: a is "
                                         "[2, 3] (f32, cpu), b is [3] (f32, cpu)"),
                       Error);
}

TEST_CASE("errors: writing into a broadcast view (stride 0) is refused, not raced") {
  Tensor base = zeros({1, 3});
  Tensor wide = base.expand({4, 3});
  CHECK_THROWS_WITH_AS(wide.fill_(1.0), doctest::Contains("fill_: destination [4, 3] (f32, cpu) is a broadcast view"),
                       Error);
  CHECK_THROWS_WITH_AS(wide.copy_(ones({4, 3})), doctest::Contains("stride 0 in dim 0"), Error);
  base.expand({1, 3}).fill_(2.0);  // size-1 dims may have any stride
  CHECK(base.to_vector<float>() == std::vector<float>(3, 2.0f));
}

TEST_CASE("errors: an out-of-range dim names the op and the dim") {
  const std::string msg = error_of([] { (void)sum(zeros({2, 3}), {5}); });
  CAPTURE(msg);
  CHECK(contains(msg, "sum"));
  CHECK(contains(msg, "5"));
  CHECK_THROWS_WITH_AS(softmax(zeros({2, 3}), -3), doctest::Contains("softmax"), Error);
  CHECK_THROWS_WITH_AS(zeros({2, 3}).transpose(0, 2), doctest::Contains("transpose"), Error);
  CHECK_THROWS_WITH_AS(cat({zeros({2, 3}), zeros({2, 4})}, 0), doctest::Contains("cat"), Error);
}

// ---------------------------------------------------------------------------
// random numbers
// ---------------------------------------------------------------------------

TEST_CASE("random: the same seed gives the same numbers and a different seed different ones") {
  manual_seed(123);
  const std::vector<double> a = values(randn({64}));
  const std::vector<double> a2 = values(randn({64}));  // the generator moved on
  manual_seed(123);
  const std::vector<double> b = values(randn({64}));
  manual_seed(124);
  const std::vector<double> c = values(randn({64}));
  CHECK(a == b);
  CHECK(a != a2);
  CHECK(a != c);

  // Saving and restoring the generator state replays the draws.
  manual_seed(5);
  (void)rand({3});
  const GeneratorState st = generator_state();
  CHECK(st.seed == 5);
  CHECK(st.offset > 0);
  const std::vector<double> r1 = values(rand({10}));
  set_generator_state(st);
  CHECK(values(rand({10})) == r1);

  // The explicit-key form depends only on its key.
  const Tensor k1 = random_with_key({16}, RandomDist::uniform, 9, 3, 0, 1);
  const Tensor k2 = random_with_key({16}, RandomDist::uniform, 9, 3, 0, 1);
  CHECK(values(k1) == values(k2));
  CHECK(values(k1) != values(random_with_key({16}, RandomDist::uniform, 10, 3, 0, 1)));
}

TEST_CASE("random: draws of consecutive calls do not overlap") {
  manual_seed(77);
  const std::vector<double> first = values(rand({5}));
  const std::vector<double> second = values(rand({5}));
  // A single draw of 5 uses counters 0 and 1; the next starts at counter 2 = element 8 of one long draw.
  const std::vector<double> all = values(random_with_key({16}, RandomDist::uniform, 77, 0, 0, 1));
  CHECK(std::vector<double>(all.begin(), all.begin() + 5) == first);
  CHECK(std::vector<double>(all.begin() + 8, all.begin() + 13) == second);
}

TEST_CASE("random: randn has mean 0 and std 1, rand lies in [0, 1) with mean 1/2") {
  manual_seed(2024);
  const std::vector<double> z = values(randn({100000}, {DType::f64}));
  double m = 0, m2 = 0;
  for (double v : z) m += v;
  m /= static_cast<double>(z.size());
  for (double v : z) m2 += (v - m) * (v - m);
  const double sd = std::sqrt(m2 / static_cast<double>(z.size()));
  CHECK(std::abs(m) < 0.015);
  CHECK(std::abs(sd - 1.0) < 0.015);

  const std::vector<double> u = values(rand({100000}));
  double lo = 1, hi = 0, um = 0;
  for (double v : u) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    um += v;
  }
  um /= static_cast<double>(u.size());
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(hi > 0.999);
  CHECK(lo < 0.001);
  CHECK(std::abs(um - 0.5) < 0.01);

  const std::vector<double> w = values(uniform({10000}, -3, -1));
  bool in = true;
  for (double v : w) in = in && v >= -3 && v < -1;
  CHECK(in);
  const std::vector<double> nv = values(normal({20000}, 5, 0.1, {DType::f64}));
  double nm = 0;
  for (double v : nv) nm += v;
  CHECK(nm / 20000 == doctest::Approx(5.0).epsilon(0.002));
}

TEST_CASE("random: random_with_key at an offset equals the matching slice of a longer draw") {
  // Element i uses counter offset + i/4: offset 1 starts at element 4 of a draw at offset 0.
  for (RandomDist dist : {RandomDist::uniform, RandomDist::normal}) {
    const std::vector<double> longer = values(random_with_key({12}, dist, 31, 0, 0, 1, {DType::f64}));
    const std::vector<double> later = values(random_with_key({8}, dist, 31, 1, 0, 1, {DType::f64}));
    CHECK(later == std::vector<double>(longer.begin() + 4, longer.end()));
  }
  // The dtype only rounds: f32 draws are the f64 draws rounded.
  const std::vector<double> d64 = values(random_with_key({9}, RandomDist::normal, 8, 2, 0, 1, {DType::f64}));
  const std::vector<float> d32 = random_with_key({9}, RandomDist::normal, 8, 2, 0, 1).to_vector<float>();
  for (size_t i = 0; i < d64.size(); ++i) CHECK(d32[i] == doctest::Approx(d64[i]).epsilon(1e-6));
  CHECK_THROWS_AS(random_with_key({2}, RandomDist::uniform, 1, 0, 0, 1, {DType::i32}), Error);
}

TEST_CASE("host memory: a freed large block is cached and reused for the same size; small ones are not") {
  // cpu_backend.cpp keeps freed blocks of 1 MiB or more (the page faults of a
  // fresh mmap every step cost more than the kernels that fill them).
  release_cached_host_memory();
  const HostMemoryStats before = host_memory_stats();
  CHECK(before.cached_bytes == 0);
  const int64_t n = (3 << 20) / 4;  // 3 MiB of f32: its own rounded size, within the peak it makes
  {
    Tensor a = zeros({n});
    a.fill_(2.0);
  }
  const HostMemoryStats freed = host_memory_stats();
  CHECK(freed.live_bytes == before.live_bytes);
  CHECK(freed.cached_bytes == 4 * n);  // kept
  {
    Tensor b = empty({n});  // the same size: the cached block, not a new one
    const HostMemoryStats reused = host_memory_stats();
    CHECK(reused.live_bytes == before.live_bytes + 4 * n);
    CHECK(reused.cached_bytes == 0);
    b.fill_(1.0);
    CHECK(sum(b).item() == doctest::Approx(static_cast<double>(n)));
  }
  {
    Tensor small = zeros({1000});  // 4 KB: malloc's business, never cached
  }
  CHECK(host_memory_stats().cached_bytes == freed.cached_bytes);
  release_cached_host_memory();
  CHECK(host_memory_stats().cached_bytes == 0);
  CHECK(host_memory_stats().live_bytes == before.live_bytes);
}
