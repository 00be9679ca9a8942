// generate.cpp — see generate.h.
#include "nn/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/philox.h"

namespace lory::nn {

int64_t sample_token(const std::vector<double>& logits, const SamplingOptions& o, double u) {
  LORY_CHECK(!logits.empty(), "sample_token: no logits");
  LORY_CHECK(o.temperature >= 0 && o.top_k >= 0 && o.top_p > 0 && o.top_p <= 1,
             "sample_token: need temperature >= 0, top_k >= 0 and 0 < top_p <= 1, got temperature ", o.temperature,
             ", top_k ", o.top_k, ", top_p ", o.top_p);
  const int64_t V = static_cast<int64_t>(logits.size());
  if (o.temperature == 0) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  // Token ids by decreasing logit (stable: ties keep the lower id first).
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  const int64_t k = o.top_k > 0 ? std::min(o.top_k, V) : V;
  // Softmax of logit / temperature over the top k, then the nucleus.
  std::vector<double> p(static_cast<size_t>(k));
  const double top = logits[order[0]];
  double z = 0;
  for (int64_t i = 0; i < k; ++i) z += p[i] = std::exp((logits[order[i]] - top) / o.temperature);
  int64_t keep = 0;
  double mass = 0;
  while (keep < k && (keep == 0 || mass < o.top_p * z)) mass += p[keep++];
  double target = u * mass;
  for (int64_t i = 0; i < keep; ++i) {
    target -= p[i];
    if (target < 0) return order[i];
  }
  return order[keep - 1];  // u * mass rounded up to mass
}

std::vector<int64_t> generate(LoryLM& model, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                              const std::function<void(int64_t)>& on_token) {
  LORY_CHECK(!prompt.empty(), "generate: the prompt is empty");
  LORY_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  for (int64_t id : prompt)
    LORY_CHECK(id >= 0 && id < model.config.vocab_size, "generate: prompt token ", id, " is outside the vocabulary of ",
               model.config.vocab_size);
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + o.max_new_tokens;
  LORY_CHECK(capacity <= model.config.max_position_embeddings, "generate: prompt (", prompt.size(), ") + ",
             o.max_new_tokens, " new tokens exceed max_position_embeddings = ", model.config.max_position_embeddings);
  NoGradGuard no_grad;
  const Device device = model.output_weight().device();
  InferenceState state = model.new_inference_state(capacity, o.routing);
  Tensor ids = from_vector(prompt, {1, static_cast<int64_t>(prompt.size())}, {DType::i64}).to(device);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const Tensor logits = model.forward_cached(ids, state);  // [1, n, V]
    const std::vector<double> last = logits.select(0, 0).select(0, logits.size(1) - 1).to_vector<double>();
    const int64_t token = sample_token(last, o.sampling, philox::uniform_at(o.seed, 0, static_cast<uint64_t>(i)));
    out.push_back(token);
    if (on_token) on_token(token);
    if (token == o.stop_token) break;
    ids = from_vector(std::vector<int64_t>{token}, {1, 1}, {DType::i64}).to(device);
  }
  return out;
}

}  // namespace lory::nn
