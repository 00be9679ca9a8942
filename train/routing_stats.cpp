// routing_stats.cpp — see routing_stats.h.
#include "train/routing_stats.h"

#include <cmath>

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::train {

RoutingStats::RoutingStats(int64_t num_layers, int64_t num_experts, int64_t window)
    : num_experts_(num_experts),
      window_(window),
      last_used_(static_cast<size_t>(num_layers), std::vector<int64_t>(static_cast<size_t>(num_experts), -1)),
      entropy_sum_(static_cast<size_t>(num_layers), 0.0),
      entropy_count_(static_cast<size_t>(num_layers), 0) {}

void RoutingStats::add(int64_t step, const std::vector<Tensor>& weights) {
  LORY_CHECK(weights.size() == last_used_.size(), "RoutingStats: got routing weights of ", weights.size(),
             " layers, expected ", last_used_.size());
  NoGradGuard no_grad;
  const double threshold = 2.0 / static_cast<double>(num_experts_);
  for (size_t layer = 0; layer < weights.size(); ++layer) {
    const Tensor& w = weights[layer];
    LORY_CHECK(w.dim() == 3 && w.size(2) == num_experts_, "RoutingStats: layer ", layer, " weights are ",
               w.describe(), ", expected [B, N, ", num_experts_, "]");
    const std::vector<float> e = w.detach().to(DType::f32).contiguous().to_vector<float>();
    const size_t E = static_cast<size_t>(num_experts_);
    for (size_t row = 0; row < e.size() / E; ++row) {
      double h = 0;
      for (size_t i = 0; i < E; ++i) {
        const double x = e[row * E + i];
        if (x > threshold) last_used_[layer][i] = step;
        if (x > 0) h -= x * std::log(x);
      }
      entropy_sum_[layer] += h;
      entropy_count_[layer] += 1;
    }
  }
}

std::vector<int64_t> RoutingStats::experts_used(int64_t step) const {
  std::vector<int64_t> out;
  for (const auto& layer : last_used_) {
    int64_t n = 0;
    for (int64_t last : layer)
      if (last >= 0 && last > step - window_) ++n;
    out.push_back(n);
  }
  return out;
}

std::vector<double> RoutingStats::take_entropy() {
  std::vector<double> out;
  for (size_t i = 0; i < entropy_sum_.size(); ++i) {
    out.push_back(entropy_count_[i] ? entropy_sum_[i] / static_cast<double>(entropy_count_[i]) : 0.0);
    entropy_sum_[i] = 0;
    entropy_count_[i] = 0;
  }
  return out;
}

double js_divergence_bits(const std::vector<double>& p, const std::vector<double>& q) {
  LORY_CHECK(p.size() == q.size(), "js_divergence_bits: distributions over ", p.size(), " and ", q.size(), " experts");
  double js = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double m = (p[i] + q[i]) / 2;
    if (p[i] > 0) js += p[i] * std::log2(p[i] / m) / 2;
    if (q[i] > 0) js += q[i] * std::log2(q[i] / m) / 2;
  }
  return js;
}

std::vector<double> routing_specialisation(const std::map<std::string, std::vector<std::vector<double>>>& routing) {
  std::vector<const std::vector<std::vector<double>>*> domains;
  for (const auto& [name, layers] : routing)
    if (!layers.empty()) domains.push_back(&layers);
  if (domains.size() < 2) return {};
  const size_t num_layers = domains[0]->size();
  std::vector<double> out(num_layers, 0.0);
  for (size_t layer = 0; layer < num_layers; ++layer) {
    int64_t pairs = 0;
    for (size_t a = 0; a < domains.size(); ++a)
      for (size_t b = a + 1; b < domains.size(); ++b, ++pairs)
        out[layer] += js_divergence_bits((*domains[a])[layer], (*domains[b])[layer]);
    out[layer] /= static_cast<double>(pairs);
  }
  return out;
}

}  // namespace lory::train
