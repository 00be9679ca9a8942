// routing_stats.h — what the trainer reports about Lory routing.
//
// Expert utilisation (paper App. G.1): an expert counts as used by a
// segment when its routing weight exceeds 2/E (twice the uniform weight). We
// report, per layer, how many experts were used by at least one segment in
// the last `window` steps: right after upcycling all weights are near 1/E and
// few experts count as used; a healthy run climbs towards E.
//
// Routing entropy: -sum_i e_i log e_i of each segment's weights, averaged
// over the segments of the steps since the last report. log E is uniform
// routing, 0 a single expert.
//
// Routing specialisation (paper §5.4, Fig. 6 in one number per layer): the
// mean, over every pair of domains, of the Jensen-Shannon divergence between
// their mean routing distributions, in bits: 0 when every domain is routed
// alike, 1 when two domains use disjoint experts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lory::train {

class RoutingStats {
 public:
  RoutingStats(int64_t num_layers, int64_t num_experts, int64_t window);

  // The routing weights of one forward: per Lory layer, [B, N, E].
  void add(int64_t step, const std::vector<Tensor>& weights);
  // Experts used per layer in the window ending at `step`.
  std::vector<int64_t> experts_used(int64_t step) const;
  // Mean entropy per layer since the last take_entropy(); resets it.
  std::vector<double> take_entropy();

  int64_t num_experts() const { return num_experts_; }

 private:
  int64_t num_experts_, window_;
  std::vector<std::vector<int64_t>> last_used_;  // [layer][expert]: last step it was used (-1: never)
  std::vector<double> entropy_sum_;
  std::vector<int64_t> entropy_count_;
};

// JS(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2, in bits;
// p and q are distributions over the same experts (0 log 0 = 0).
double js_divergence_bits(const std::vector<double>& p, const std::vector<double>& q);
// routing[domain][layer][expert] (EvalResult's mean routing weights) ->
// per layer, the mean JS divergence over pairs of domains; empty with fewer
// than two domains or no routing.
std::vector<double> routing_specialisation(const std::map<std::string, std::vector<std::vector<double>>>& routing);

}  // namespace lory::train
