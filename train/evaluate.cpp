// evaluate.cpp — see evaluate.h.
#include "train/evaluate.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "autograd/node.h"
#include "tensor/ops.h"
#include "tools/cli.h"
#include "tools/data/token_shard.h"

namespace lory::train {

std::vector<std::string> expand_paths(const std::string& list) {
  std::vector<std::string> out;
  for (const std::string& item : tools::split_commas(list)) {
    if (item.find_first_of("*?[") == std::string::npos) {
      out.push_back(item);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(item.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      globfree(&g);
      fail("'", item, "' matches no file");
    }
    std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    globfree(&g);
    std::sort(matches.begin(), matches.end());
    out.insert(out.end(), matches.begin(), matches.end());
  }
  LORY_CHECK(!out.empty(), "no paths in '", list, "'");
  return out;
}

int64_t EvalSet::predicted_tokens(size_t domain) const {
  int64_t n = 0;
  for (const auto& s : sequences.at(domain)) n += static_cast<int64_t>(s.size()) - 1;
  return n;
}

EvalSet build_eval_set(const std::string& shard_list, int64_t seq_len, int64_t tokens_per_domain, int32_t eos_id,
                       int64_t expected_vocab) {
  LORY_CHECK(seq_len >= 1 && tokens_per_domain >= 1, "build_eval_set: seq_len and tokens_per_domain must be >= 1, got ",
             seq_len, " and ", tokens_per_domain);
  std::vector<std::unique_ptr<data::ShardReader>> shards;
  for (const std::string& path : expand_paths(shard_list))
    shards.push_back(std::make_unique<data::ShardReader>(path, expected_vocab));
  EvalSet set;
  set.seq_len = seq_len;
  // Each domain's token stream, filled until it holds what its sequences need.
  std::map<std::string, std::vector<int32_t>> streams;
  const size_t want = static_cast<size_t>((tokens_per_domain + seq_len - 1) / seq_len * seq_len + 1);
  for (const auto& shard : shards) {
    for (int64_t d = 0; d < shard->num_documents(); ++d) {
      const std::string& domain = shard->domains().at(static_cast<size_t>(shard->doc_domain(d)));
      std::vector<int32_t>& stream = streams[domain];
      if (stream.size() >= want) continue;
      const size_t at = stream.size();
      stream.resize(at + static_cast<size_t>(shard->doc_length(d)));
      shard->read_tokens(shard->doc_start(d), shard->doc_length(d), stream.data() + at);
      stream.push_back(eos_id);
    }
  }
  for (auto& [domain, stream] : streams) {
    if (stream.size() < 2) continue;
    std::vector<std::vector<int32_t>> seqs;
    int64_t predicted = 0;
    // Sequence k covers stream[k L, k L + L]: its last token is the next one's first.
    for (size_t begin = 0; begin + 1 < stream.size() && predicted < tokens_per_domain;
         begin += static_cast<size_t>(seq_len)) {
      const size_t len = std::min(static_cast<size_t>(seq_len) + 1, stream.size() - begin);
      if (len < static_cast<size_t>(seq_len) + 1 && !seqs.empty()) break;  // a short tail only for tiny domains
      seqs.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(begin),
                        stream.begin() + static_cast<std::ptrdiff_t>(begin + len));
      predicted += static_cast<int64_t>(len) - 1;
    }
    set.domains.push_back(domain);
    set.sequences.push_back(std::move(seqs));
  }
  LORY_CHECK(!set.domains.empty(), "build_eval_set: the shards in '", shard_list, "' hold no documents");
  return set;
}

EvalResult evaluate(nn::LoryLM& model, const EvalSet& set, nn::Routing routing, int64_t batch,
                    int64_t prompt_length) {
  LORY_CHECK(batch >= 1, "evaluate: batch must be >= 1, got ", batch);
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  const Device device = model.lm_head.weight.device();
  nn::ForwardOptions options{routing, prompt_length > 0 ? prompt_length : model.config.segment_length};
  EvalResult result;
  result.routing = nn::routing_name(routing);
  double total_nll = 0;
  for (size_t d = 0; d < set.domains.size(); ++d) {
    DomainEval out;
    double nll = 0;
    std::vector<std::vector<double>> routing_sum;
    int64_t routing_rows = 0;
    const auto& seqs = set.sequences[d];
    for (size_t i = 0; i < seqs.size();) {
      // A batch of sequences of one length.
      size_t j = i;
      std::vector<int32_t> ids;
      while (j < seqs.size() && static_cast<int64_t>(j - i) < batch && seqs[j].size() == seqs[i].size()) {
        ids.insert(ids.end(), seqs[j].begin(), seqs[j].end());
        ++j;
      }
      const int64_t B = static_cast<int64_t>(j - i), T1 = static_cast<int64_t>(seqs[i].size());
      const Tensor tokens = from_vector(ids, {B, T1}, {DType::i64, device});
      const double loss = model.loss(tokens, options).item();
      nll += loss * static_cast<double>(B * (T1 - 1));
      out.tokens += B * (T1 - 1);
      const std::vector<Tensor> weights = model.routing_weights();  // per layer [B, N, E]
      if (!weights.empty()) {
        if (routing_sum.empty()) routing_sum.assign(weights.size(), std::vector<double>(weights[0].size(2), 0.0));
        for (size_t layer = 0; layer < weights.size(); ++layer) {
          const Tensor w = weights[layer].to(DType::f64);
          const std::vector<double> s = sum(w, {0, 1}).to_vector<double>();
          for (size_t e = 0; e < s.size(); ++e) routing_sum[layer][e] += s[e];
          if (layer == 0) routing_rows += w.size(0) * w.size(1);
        }
      }
      i = j;
    }
    out.loss = out.tokens ? nll / static_cast<double>(out.tokens) : 0.0;
    out.ppl = std::exp(out.loss);
    for (auto& layer : routing_sum)
      for (double& x : layer) x /= static_cast<double>(std::max<int64_t>(routing_rows, 1));
    out.routing = std::move(routing_sum);
    total_nll += nll;
    result.tokens += out.tokens;
    result.domains[set.domains[d]] = std::move(out);
  }
  result.loss = result.tokens ? total_nll / static_cast<double>(result.tokens) : 0.0;
  result.ppl = std::exp(result.loss);
  model.train(was_training);
  return result;
}

std::string eval_result_json(const EvalResult& r, const nn::LoryConfig& config,
                             const std::map<std::string, std::string>& extra) {
  nlohmann::ordered_json j;
  for (const auto& [k, v] : extra) j[k] = v;
  j["routing"] = r.routing;
  j["loss"] = r.loss;
  j["ppl"] = r.ppl;
  j["tokens"] = r.tokens;
  j["num_layers"] = config.num_hidden_layers;
  j["num_experts"] = config.num_experts;
  nlohmann::ordered_json domains = nlohmann::ordered_json::object(), routing = nlohmann::ordered_json::object();
  for (const auto& [name, d] : r.domains) {
    domains[name] = {{"loss", d.loss}, {"ppl", d.ppl}, {"tokens", d.tokens}};
    if (!d.routing.empty()) routing[name] = d.routing;
  }
  j["domains"] = domains;
  if (!routing.empty()) j["routing_weights"] = routing;
  return j.dump(1) + "\n";
}

std::string eval_result_table(const EvalResult& r) {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "  %-14s %10s %8s %10s\n", "domain", "tokens", "loss", "ppl");
  out += line;
  for (const auto& [name, d] : r.domains) {
    std::snprintf(line, sizeof line, "  %-14s %10lld %8.4f %10.2f\n", name.c_str(), static_cast<long long>(d.tokens),
                  d.loss, d.ppl);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-14s %10lld %8.4f %10.2f\n", "all", static_cast<long long>(r.tokens), r.loss,
                r.ppl);
  out += line;
  return out;
}

}  // namespace lory::train
