// Philox4x32-10 against the known-answer vectors published with Random123
// (kat_vectors), and the element-to-counter mapping random tensors rely on.
#include <doctest/doctest.h>

#include "tensor/philox.h"
#include "tensor/ops.h"

using namespace lory;

TEST_CASE("philox: matches Random123 known-answer vectors") {
  const philox::Words zero = philox::philox4x32_10(philox::Words{{0, 0, 0, 0}}, 0, 0);
  CHECK(zero.w[0] == 0x6627e8d5u);
  CHECK(zero.w[1] == 0xe169c58du);
  CHECK(zero.w[2] == 0xbc57ac4cu);
  CHECK(zero.w[3] == 0x9b00dbd8u);

  const philox::Words ones =
      philox::philox4x32_10(philox::Words{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(ones.w[0] == 0x408f276du);
  CHECK(ones.w[1] == 0x41c83b0eu);
  CHECK(ones.w[2] == 0xa20bc7c6u);
  CHECK(ones.w[3] == 0x6d5451fdu);

  const philox::Words pi = philox::philox4x32_10(philox::Words{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                                 0xa4093822u, 0x299f31d0u);
  CHECK(pi.w[0] == 0xd16cfe09u);
  CHECK(pi.w[1] == 0x94fdccebu);
  CHECK(pi.w[2] == 0x5001e420u);
  CHECK(pi.w[3] == 0x24126ea1u);
}

TEST_CASE("philox: a uniform tensor is the documented function of (seed, offset, index)") {
  const uint64_t seed = 42, offset = 7;
  const Tensor u = random_with_key({10}, RandomDist::uniform, seed, offset, 0.0, 1.0, {DType::f64});
  const std::vector<double> got = u.to_vector<double>();
  for (uint64_t i = 0; i < 10; ++i) {
    const philox::Words w = philox::philox4x32_10(offset + i / 4, seed);
    CHECK(got[i] == doctest::Approx(static_cast<double>(w.w[i % 4] >> 8) / 16777216.0).epsilon(1e-15));
  }
}

TEST_CASE("philox: normal draws have the right moments and scale with mean/std") {
  const Tensor z = random_with_key({40000}, RandomDist::normal, 3, 0, 2.0, 0.5, {DType::f64});
  const std::vector<double> v = z.to_vector<double>();
  double m = 0, m2 = 0;
  for (double x : v) m += x;
  m /= v.size();
  for (double x : v) m2 += (x - m) * (x - m);
  const double sd = std::sqrt(m2 / v.size());
  CHECK(m == doctest::Approx(2.0).epsilon(0.01));
  CHECK(sd == doctest::Approx(0.5).epsilon(0.02));
}
