// bootstrap.h — how sure is a held-out perplexity, and a gain between two
// models? Percentile bootstrap over document blocks (Efron & Tibshirani 1993).
//
// Held-out tokens are not independent: a document is one topic, one author,
// one file, and its tokens are easy or hard together. So the unit we
// resample is a block of a document: the whole document, or for a long one
// each piece of at most block_tokens (1024) tokens, as here a "document" can
// be a whole book of the Bible or an 80 kB manual, and a bootstrap over the
// one or two documents of such a domain would say nothing. (Blocks of one
// document still share its topic, so for domains of few long documents the
// interval is somewhat too narrow; the table prints the documents too.)
// Blocks are resampled within their domain (stratified), as the evaluation
// set was drawn per domain.
// The statistic is the corpus perplexity exp(sum nll / sum tokens), a ratio
// estimator, recomputed on every replicate.
//
// Comparing two models: both saw the same held-out text, so the bootstrap is
// paired (one draw of blocks serves both), which removes the blocks' shared
// difficulty from the gain's uncertainty. With several training seeds per
// model the replicate also draws seeds with replacement (a two-level
// bootstrap: seeds, then blocks), so the interval includes run-to-run noise
// as well as the choice of text. When run r of both models used the same
// seed (the same initialisation of what they share and the same data order,
// as the main job trains them) the seeds are paired too: one draw serves
// both. With two or three seeds this level has only a few combinations to
// offer: the interval is then close to the range of the per-seed gains.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lory::train {

// One run's losses on one domain, per block of a held-out document.
struct BlockLosses {
  std::vector<double> nll;      // summed next-token NLL (nats) of the block's predicted tokens
  std::vector<int64_t> tokens;  // how many of its tokens were predicted
};

// A run: its per-block losses by domain (an eval JSON's "block_nll", "block_tokens").
using RunLosses = std::map<std::string, BlockLosses>;

struct Interval {
  double lo = 0, hi = 0;
  bool known() const { return !std::isnan(lo) && !std::isnan(hi); }  // NaN: too few blocks to say
};

// Below this many blocks in a domain a percentile bootstrap says nothing
// trustworthy (a handful of values, resampled): the interval is NaN instead.
constexpr size_t kMinBootstrapBlocks = 5;

struct BootstrapOptions {
  int replicates = 2000;
  double level = 0.95;  // central interval
  uint64_t seed = 20240503;  // fixed: the same inputs print the same interval
};

// The interval of exp(sum nll / sum tokens) over `domains` of one run (NaN
// when a domain has fewer than kMinBootstrapBlocks blocks).
Interval bootstrap_ppl(const RunLosses& run, const std::vector<std::string>& domains,
                       const BootstrapOptions& options = {});

// gain = 1 - ppl(b) / ppl(a), each model's perplexity pooled over its runs
// (the mean over runs of each block's NLL), on `domains`.
struct GainEstimate {
  double gain = 0;
  Interval interval;
  bool significant() const { return interval.lo > 0 || interval.hi < 0; }  // the interval excludes 0
};
// The interval is NaN when a domain has fewer than kMinBootstrapBlocks
// blocks. Throws when the runs were not evaluated on the same text.
// paired_seeds: a[r] and b[r] were trained with the same seed (equal counts).
GainEstimate bootstrap_gain(const std::vector<RunLosses>& a, const std::vector<RunLosses>& b,
                            const std::vector<std::string>& domains, bool paired_seeds = false,
                            const BootstrapOptions& options = {});

}  // namespace lory::train
