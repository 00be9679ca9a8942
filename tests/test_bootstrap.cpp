// Uncertainty of held-out perplexity (train/bootstrap.h): the percentile
// bootstrap over document blocks, one run and paired between runs, with
// seeds as a second level.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "tensor/error.h"
#include "train/bootstrap.h"

using namespace lory;
using namespace lory::train;

namespace {

// n blocks of 100 tokens whose mean NLL is `level` plus a per-block
// difficulty drawn with standard deviation `spread` (fixed seed).
BlockLosses blocks(size_t n, double level, double spread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> difficulty(0.0, spread);
  BlockLosses b;
  for (size_t k = 0; k < n; ++k) {
    b.nll.push_back(100 * (level + difficulty(rng)));
    b.tokens.push_back(100);
  }
  return b;
}

double ppl_of(const BlockLosses& b) {
  double nll = 0, tokens = 0;
  for (size_t k = 0; k < b.nll.size(); ++k) nll += b.nll[k], tokens += static_cast<double>(b.tokens[k]);
  return std::exp(nll / tokens);
}

}  // namespace

TEST_CASE("bootstrap: a perplexity's interval holds the estimate, has zero width for identical blocks, narrows as 1/sqrt(n)") {
  const RunLosses same{{"web", {std::vector<double>(20, 300.0), std::vector<int64_t>(20, 100)}}};
  const Interval flat = bootstrap_ppl(same, {"web"});
  CHECK(flat.lo == doctest::Approx(std::exp(3.0)));
  CHECK(flat.hi == doctest::Approx(std::exp(3.0)));

  const BlockLosses small = blocks(50, 3.0, 0.5, 1), large = blocks(800, 3.0, 0.5, 2);
  const Interval a = bootstrap_ppl({{"web", small}}, {"web"}), b = bootstrap_ppl({{"web", large}}, {"web"});
  CHECK(a.lo < ppl_of(small));
  CHECK(a.hi > ppl_of(small));
  // Log-perplexity's standard error is spread / sqrt(n): the 95% interval of
  // log ppl is about 2 x 1.96 x 0.5 / sqrt(n) wide.
  const double width_small = std::log(a.hi / a.lo), width_large = std::log(b.hi / b.lo);
  CHECK(width_small == doctest::Approx(2 * 1.96 * 0.5 / std::sqrt(50.0)).epsilon(0.2));
  CHECK(width_large == doctest::Approx(2 * 1.96 * 0.5 / std::sqrt(800.0)).epsilon(0.2));
  // The same inputs give the same interval (a fixed seed).
  CHECK(bootstrap_ppl({{"web", small}}, {"web"}).lo == a.lo);
  // Stratified over domains: the pooled interval holds the pooled perplexity.
  const RunLosses two{{"web", small}, {"code", blocks(60, 1.0, 0.3, 3)}};
  const Interval both = bootstrap_ppl(two, {"code", "web"});
  const double pooled = std::exp((3.0 * 5000 + 1.0 * 6000) / 11000);  // approximately: the levels
  CHECK(both.lo < pooled * 1.1);
  CHECK(both.hi > pooled * 0.9);
  CHECK_THROWS_WITH_AS(bootstrap_ppl(two, {"latex"}), doctest::Contains("no per-block losses for domain 'latex'"),
                       Error);
  // Too few blocks to resample: no interval rather than a meaningless one.
  const RunLosses few{{"web", blocks(kMinBootstrapBlocks - 1, 3.0, 0.5, 4)}};
  CHECK(!bootstrap_ppl(few, {"web"}).known());
  CHECK(bootstrap_ppl({{"web", blocks(kMinBootstrapBlocks, 3.0, 0.5, 4)}}, {"web"}).known());
  const GainEstimate g = bootstrap_gain({few}, {few}, {"web"});
  CHECK(!g.interval.known());
  CHECK(!g.significant());
}

TEST_CASE("bootstrap: a paired gain sees a small improvement that unpaired intervals would hide") {
  // Blocks differ a lot in difficulty (sd 1.0 nats); model b is better by
  // 0.02 nats on every block (2% perplexity), plus a little noise.
  const BlockLosses a = blocks(100, 3.0, 1.0, 7);
  BlockLosses b = a;
  std::mt19937_64 rng(8);
  std::normal_distribution<double> noise(0.0, 0.01);
  for (double& x : b.nll) x -= 100 * (0.02 + noise(rng));
  const GainEstimate g = bootstrap_gain({{{"web", a}}}, {{{"web", b}}}, {"web"});
  CHECK(g.gain == doctest::Approx(1 - std::exp(-0.02)).epsilon(0.1));
  CHECK(g.significant());
  CHECK(g.interval.lo > 0);
  CHECK(g.interval.lo < g.gain);
  CHECK(g.interval.hi > g.gain);
  // Each model's own interval is far wider than the difference: they overlap.
  const Interval ia = bootstrap_ppl({{"web", a}}, {"web"}), ib = bootstrap_ppl({{"web", b}}, {"web"});
  CHECK(ib.hi > ia.lo);
  // The same model against itself: a gain of exactly 0, and not significant.
  const GainEstimate none = bootstrap_gain({{{"web", a}}}, {{{"web", a}}}, {"web"});
  CHECK(none.gain == 0.0);
  CHECK(!none.significant());
  // A worse model: the interval lies below 0, which is significant too.
  const GainEstimate worse = bootstrap_gain({{{"web", b}}}, {{{"web", a}}}, {"web"});
  CHECK(worse.gain < 0);
  CHECK(worse.interval.hi < 0);
  CHECK(worse.significant());
}

TEST_CASE("bootstrap: seeds are a second level: disagreeing seeds widen the gain's interval") {
  const BlockLosses base = blocks(200, 3.0, 0.8, 11);
  auto shifted = [&](double nats) {
    BlockLosses b = base;
    for (double& x : b.nll) x -= 100 * nats;
    return RunLosses{{"web", b}};
  };
  const std::vector<RunLosses> dense{shifted(0.0), shifted(0.0)};
  const GainEstimate agree = bootstrap_gain(dense, {shifted(0.03), shifted(0.03)}, {"web"});
  const GainEstimate disagree = bootstrap_gain(dense, {shifted(0.0), shifted(0.06)}, {"web"});
  // The pooled estimate is the same (the mean of the seeds' NLL) ...
  CHECK(agree.gain == doctest::Approx(disagree.gain).epsilon(1e-9));
  // ... but seeds that disagree make it less certain.
  CHECK(disagree.interval.hi - disagree.interval.lo > 5 * (agree.interval.hi - agree.interval.lo));
  CHECK(agree.significant());
  // Paired seeds: run r of both models shares its seed. Dense seeds that
  // differ a lot, with a gain that is the same 3% on each seed, give a
  // narrow interval when paired and a wide one when the seeds are drawn
  // independently (each Lory seed then meets the other dense seed).
  const std::vector<RunLosses> dense_seeds{shifted(0.0), shifted(-0.10)};
  const std::vector<RunLosses> lory_seeds{shifted(0.03), shifted(-0.07)};
  const GainEstimate paired = bootstrap_gain(dense_seeds, lory_seeds, {"web"}, true);
  const GainEstimate unpaired = bootstrap_gain(dense_seeds, lory_seeds, {"web"}, false);
  CHECK(paired.gain == doctest::Approx(unpaired.gain).epsilon(1e-12));
  CHECK(paired.interval.hi - paired.interval.lo < 0.01);
  CHECK(unpaired.interval.hi - unpaired.interval.lo > 0.1);
  CHECK(paired.significant());
  CHECK(!unpaired.significant());
  CHECK_THROWS_WITH_AS(bootstrap_gain(dense_seeds, {shifted(0.0)}, {"web"}, true),
                       doctest::Contains("paired seeds need as many runs"), Error);
  // Runs on different held-out text cannot be paired.
  RunLosses other = shifted(0.0);
  other["web"].tokens[0] += 1;
  CHECK_THROWS_WITH_AS(bootstrap_gain({shifted(0.0)}, {other}, {"web"}),
                       doctest::Contains("not evaluated on the same held-out text of 'web'"), Error);
}
