// bootstrap.cpp — see bootstrap.h.
#include "train/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "tensor/error.h"

namespace lory::train {

namespace {

const BlockLosses& domain_of(const RunLosses& run, const std::string& domain) {
  const auto it = run.find(domain);
  LORY_CHECK(it != run.end(), "bootstrap: no per-block losses for domain '", domain, "'");
  LORY_CHECK(it->second.nll.size() == it->second.tokens.size() && !it->second.nll.empty(),
             "bootstrap: domain '", domain, "' has ", it->second.nll.size(), " block losses and ",
             it->second.tokens.size(), " token counts");
  return it->second;
}

// The [lo, hi] percentiles of `values` for a central interval of `level`.
Interval percentiles(std::vector<double> values, double level) {
  std::sort(values.begin(), values.end());
  const double tail = (1.0 - level) / 2.0;
  const auto at = [&](double q) {
    const double x = q * static_cast<double>(values.size() - 1);
    const size_t i = static_cast<size_t>(x);
    const double f = x - static_cast<double>(i);
    return i + 1 < values.size() ? values[i] * (1 - f) + values[i + 1] * f : values[i];
  };
  return {at(tail), at(1.0 - tail)};
}

// Mean over runs (given by index, repeats allowed) of block k's NLL.
double pooled_nll(const std::vector<const BlockLosses*>& runs, const std::vector<size_t>& pick, size_t k) {
  double s = 0;
  for (size_t r : pick) s += runs[r]->nll[k];
  return s / static_cast<double>(pick.size());
}

}  // namespace

Interval bootstrap_ppl(const RunLosses& run, const std::vector<std::string>& domains, const BootstrapOptions& o) {
  LORY_CHECK(!domains.empty() && o.replicates >= 1, "bootstrap_ppl: needs domains and replicates");
  for (const std::string& name : domains)
    if (domain_of(run, name).nll.size() < kMinBootstrapBlocks) return {NAN, NAN};
  std::mt19937_64 rng(o.seed);
  std::vector<double> ppl(static_cast<size_t>(o.replicates));
  for (double& p : ppl) {
    double nll = 0, tokens = 0;
    for (const std::string& name : domains) {
      const BlockLosses& d = domain_of(run, name);
      std::uniform_int_distribution<size_t> pick(0, d.nll.size() - 1);
      for (size_t n = 0; n < d.nll.size(); ++n) {
        const size_t k = pick(rng);
        nll += d.nll[k];
        tokens += static_cast<double>(d.tokens[k]);
      }
    }
    p = std::exp(nll / tokens);
  }
  return percentiles(std::move(ppl), o.level);
}

GainEstimate bootstrap_gain(const std::vector<RunLosses>& a, const std::vector<RunLosses>& b,
                            const std::vector<std::string>& domains, bool paired_seeds, const BootstrapOptions& o) {
  LORY_CHECK(!a.empty() && !b.empty() && !domains.empty() && o.replicates >= 1,
             "bootstrap_gain: needs runs on both sides, domains and replicates");
  LORY_CHECK(!paired_seeds || a.size() == b.size(), "bootstrap_gain: paired seeds need as many runs on both sides, got ",
             a.size(), " and ", b.size());
  // Per domain, each run's blocks; every run must hold the same blocks.
  struct Domain {
    std::vector<const BlockLosses*> a, b;
    const std::vector<int64_t>* tokens;
  };
  std::vector<Domain> ds;
  for (const std::string& name : domains) {
    Domain d;
    for (const RunLosses& r : a) d.a.push_back(&domain_of(r, name));
    for (const RunLosses& r : b) d.b.push_back(&domain_of(r, name));
    d.tokens = &d.a[0]->tokens;
    for (const auto* side : {&d.a, &d.b})
      for (const BlockLosses* x : *side)
        LORY_CHECK(x->tokens == *d.tokens, "bootstrap_gain: the runs were not evaluated on the same held-out text of '",
                   name, "' (", x->tokens.size(), " vs ", d.tokens->size(), " blocks, or other token counts)");
    ds.push_back(d);
  }
  // The estimate: every run, every block once.
  auto gain_of = [&](const std::vector<size_t>& pick_a, const std::vector<size_t>& pick_b,
                     const std::vector<std::vector<size_t>>* blocks) {
    double nll_a = 0, nll_b = 0, tokens = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      const size_t n = ds[i].tokens->size();
      for (size_t j = 0; j < n; ++j) {
        const size_t k = blocks ? (*blocks)[i][j] : j;
        nll_a += pooled_nll(ds[i].a, pick_a, k);
        nll_b += pooled_nll(ds[i].b, pick_b, k);
        tokens += static_cast<double>((*ds[i].tokens)[k]);
      }
    }
    return 1.0 - std::exp((nll_b - nll_a) / tokens);
  };
  std::vector<size_t> all_a(a.size()), all_b(b.size());
  for (size_t r = 0; r < a.size(); ++r) all_a[r] = r;
  for (size_t r = 0; r < b.size(); ++r) all_b[r] = r;
  GainEstimate out;
  out.gain = gain_of(all_a, all_b, nullptr);
  for (const Domain& d : ds)
    if (d.tokens->size() < kMinBootstrapBlocks) {
      out.interval = {NAN, NAN};
      return out;
    }

  std::mt19937_64 rng(o.seed);
  std::vector<double> gains(static_cast<size_t>(o.replicates));
  std::vector<size_t> pick_a(a.size()), pick_b(b.size());
  std::vector<std::vector<size_t>> blocks(ds.size());
  for (double& g : gains) {
    // Level 1: seeds, with replacement (a no-op with one run). Paired seeds
    // are drawn once for both models: run r of a and run r of b share their
    // initialisation and data order, and their difference is what we measure.
    std::uniform_int_distribution<size_t> ra(0, a.size() - 1), rb(0, b.size() - 1);
    for (size_t& r : pick_a) r = ra(rng);
    if (paired_seeds)
      pick_b = pick_a;
    else
      for (size_t& r : pick_b) r = rb(rng);
    // Level 2: blocks of each domain, with replacement, shared by both models (paired).
    for (size_t i = 0; i < ds.size(); ++i) {
      const size_t n = ds[i].tokens->size();
      std::uniform_int_distribution<size_t> rd(0, n - 1);
      blocks[i].resize(n);
      for (size_t& k : blocks[i]) k = rd(rng);
    }
    g = gain_of(pick_a, pick_b, &blocks);
  }
  out.interval = percentiles(std::move(gains), o.level);
  return out;
}

}  // namespace lory::train
