// evaluate.h — held-out perplexity per domain, and the average routing
// weights per domain and layer (paper §4.2 Fig. 2 right, §5.4 Fig. 6).
//
// The evaluation set is cut from token shards: for each domain, its
// documents in shard order, each followed by EOS (as training instances are
// packed), concatenated and cut into sequences of L + 1 tokens (each
// overlapping the next by one token): whole sequences until at least
// tokens_per_domain tokens are predicted or the domain runs out. Every token
// is predicted once, from the (up to L) tokens before it in its sequence.
// Every predicted token remembers its block (its document, or a piece of at
// most block_tokens of a long one), so the loss can be summed per block and
// its uncertainty bootstrapped over blocks (train/bootstrap.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/lory_lm.h"
#include "train/bootstrap.h"

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
  // Per domain, per sequence, per predicted token (sequence[t + 1]): the
  // index of its block within the domain (an EOS belongs to the document it
  // ends); and per domain, the document of each block.
  std::vector<std::vector<std::vector<int32_t>>> blocks;
  std::vector<std::vector<int32_t>> block_document;
  int64_t predicted_tokens(size_t domain) const;
};

constexpr int64_t kDefaultBlockTokens = 1024;
EvalSet build_eval_set(const std::string& shard_list, int64_t seq_len, int64_t tokens_per_domain, int32_t eos_id,
                       int64_t expected_vocab = 0, int64_t block_tokens = kDefaultBlockTokens);

struct DomainEval {
  double loss = 0;  // mean next-token cross-entropy (nats)
  double ppl = 0;   // exp(loss)
  int64_t tokens = 0;
  int64_t documents = 0;     // held-out documents the tokens come from
  Interval ppl_interval;     // 95% bootstrap interval over document blocks
  BlockLosses blocks;        // per block of a held-out document: summed NLL and predicted tokens
  std::vector<std::vector<double>> routing;  // [layer][expert] mean routing weight (Lory models)
};

struct EvalResult {
  std::string routing;  // the routing's name (nn::routing_name): causal_segment, prompt, ...
  std::map<std::string, DomainEval> domains;
  double loss = 0, ppl = 0;  // over all domains' tokens
  Interval ppl_interval;     // bootstrap over document blocks, stratified by domain
  int64_t tokens = 0;
};

// Runs the model (no gradients) over the set. `routing` is how Lory layers
// route: a TrainingRouting (causal_segment, as the model trains), or an
// InferenceRouting (as generation would: prompt = one decision from the
// mean of the first prompt_length tokens, 0 = one segment's; segment = what
// causal_segment computes).
EvalResult evaluate(nn::LoryLM& model, const EvalSet& set, const nn::ForwardRouting& routing, int64_t batch,
                    int64_t prompt_length = 0);

// {"routing", "loss", "ppl", "ppl_ci": [lo, hi], "tokens", "num_layers", "num_experts",
//  "domains": {name: {loss, ppl, ppl_ci, tokens, documents, blocks, block_nll: [...], block_tokens: [...]}},
//  "routing_weights": {name: [[...E] per layer]}} plus the given extra fields.
std::string eval_result_json(const EvalResult& result, const nn::LoryConfig& config,
                             const std::map<std::string, std::string>& extra = {});
// A per-domain table: domain, tokens, documents, loss, perplexity and its 95% interval.
std::string eval_result_table(const EvalResult& result);
// The per-block losses of an eval JSON (as eval_result_json writes them),
// by domain; `where` names the file in errors.
RunLosses run_losses_from_json(const std::string& json_text, const std::string& where);

}  // namespace lory::train
