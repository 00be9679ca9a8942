// evaluate.h — held-out perplexity per domain, and the average routing
// weights per domain and layer (paper §4.2 Table 1, §5.4 Fig. 6).
//
// The evaluation set is cut from token shards: for each domain, its
// documents in shard order, each followed by EOS (as training instances are
// packed), concatenated and cut into sequences of L + 1 tokens (each
// overlapping the next by one token): whole sequences until at least
// tokens_per_domain tokens are predicted or the domain runs out. Every token
// is predicted once, from the (up to L) tokens before it in its sequence.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/lory_lm.h"

namespace lory::train {

// "a.bin,b.bin" or "data/shards/valid-*.bin" (or both) -> the paths, sorted
// within a glob; a glob that matches nothing is an error.
std::vector<std::string> expand_paths(const std::string& list);

struct EvalSet {
  int64_t seq_len = 0;  // L (each sequence holds L + 1 tokens)
  std::vector<std::string> domains;
  // Per domain: sequences of seq_len + 1 tokens, and one last shorter one
  // when the domain has fewer than seq_len + 1 tokens in all.
  std::vector<std::vector<std::vector<int32_t>>> sequences;
  int64_t predicted_tokens(size_t domain) const;
};

EvalSet build_eval_set(const std::string& shard_list, int64_t seq_len, int64_t tokens_per_domain, int32_t eos_id,
                       int64_t expected_vocab = 0);

struct DomainEval {
  double loss = 0;  // mean next-token cross-entropy (nats)
  double ppl = 0;   // exp(loss)
  int64_t tokens = 0;
  std::vector<std::vector<double>> routing;  // [layer][expert] mean routing weight (Lory models)
};

struct EvalResult {
  std::string routing;  // causal_segment | prompt | segment
  std::map<std::string, DomainEval> domains;
  double loss = 0, ppl = 0;  // over all domains' tokens
  int64_t tokens = 0;
};

// Runs the model (no gradients) over the set. `routing` is how Lory layers
// route: causal_segment (training's), or prompt/segment (inference's: one
// decision from the first prompt_length tokens; 0 = one segment).
EvalResult evaluate(nn::LoryLM& model, const EvalSet& set, nn::Routing routing, int64_t batch,
                    int64_t prompt_length = 0);

// {"routing", "loss", "ppl", "tokens", "num_layers", "num_experts", "domains": {name: {loss, ppl, tokens}},
//  "routing_weights": {name: [[...E] per layer]}} plus the given extra fields.
std::string eval_result_json(const EvalResult& result, const nn::LoryConfig& config,
                             const std::map<std::string, std::string>& extra = {});
// A per-domain table: domain, tokens, loss, perplexity.
std::string eval_result_table(const EvalResult& result);

}  // namespace lory::train
