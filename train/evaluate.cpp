// evaluate.cpp — see evaluate.h.
#include "train/evaluate.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tensor/graph.h"
#include "tensor/ops.h"
#include "corpus/token_shard.h"
#include "train/routing_stats.h"

namespace lory::train {

std::vector<std::string> expand_paths(const std::string& list) {
  std::vector<std::string> items;  // the comma-separated items, empty ones dropped
  for (size_t start = 0; start <= list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) items.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  std::vector<std::string> out;
  for (const std::string& item : items) {
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
                       int64_t expected_vocab, int64_t block_tokens) {
  LORY_CHECK(seq_len >= 1 && tokens_per_domain >= 1 && block_tokens >= 1,
             "build_eval_set: seq_len, tokens_per_domain and block_tokens must be >= 1, got ", seq_len, ", ",
             tokens_per_domain, " and ", block_tokens);
  std::vector<std::unique_ptr<corpus::ShardReader>> shards;
  for (const std::string& path : expand_paths(shard_list))
    shards.push_back(std::make_unique<corpus::ShardReader>(path, expected_vocab));
  EvalSet set;
  set.seq_len = seq_len;
  // Each domain's token stream, filled until it holds what its sequences
  // need, and beside it the block (within the domain) of every token.
  std::map<std::string, std::vector<int32_t>> streams, stream_blocks, block_document;
  std::map<std::string, int32_t> doc_count;
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
      // Blocks of block_tokens; the EOS joins the document's last block.
      std::vector<int32_t>& blocks = stream_blocks[domain];
      std::vector<int32_t>& owner = block_document[domain];
      const int32_t doc = doc_count[domain]++;
      const int64_t n = std::max<int64_t>(shard->doc_length(d), 1);  // an empty document: its EOS alone
      for (int64_t k = 0; k < n; ++k) {
        if (k % block_tokens == 0) owner.push_back(doc);
        blocks.push_back(static_cast<int32_t>(owner.size()) - 1);
      }
      blocks.resize(stream.size(), blocks.back());
    }
  }
  for (auto& [domain, stream] : streams) {
    if (stream.size() < 2) continue;
    const std::vector<int32_t>& blocks = stream_blocks[domain];
    std::vector<std::vector<int32_t>> seqs, seq_blocks;
    int64_t predicted = 0;
    // Sequence k covers stream[k L, k L + L]: its last token is the next one's first.
    for (size_t begin = 0; begin + 1 < stream.size() && predicted < tokens_per_domain;
         begin += static_cast<size_t>(seq_len)) {
      const size_t len = std::min(static_cast<size_t>(seq_len) + 1, stream.size() - begin);
      if (len < static_cast<size_t>(seq_len) + 1 && !seqs.empty()) break;  // a short tail only for tiny domains
      const auto first = static_cast<std::ptrdiff_t>(begin), end = static_cast<std::ptrdiff_t>(begin + len);
      seqs.emplace_back(stream.begin() + first, stream.begin() + end);
      seq_blocks.emplace_back(blocks.begin() + first + 1, blocks.begin() + end);  // the predicted tokens'
      predicted += static_cast<int64_t>(len) - 1;
    }
    set.domains.push_back(domain);
    set.sequences.push_back(std::move(seqs));
    set.blocks.push_back(std::move(seq_blocks));
    set.block_document.push_back(std::move(block_document[domain]));
  }
  LORY_CHECK(!set.domains.empty(), "build_eval_set: the shards in '", shard_list, "' hold no documents");
  return set;
}

EvalResult evaluate(nn::LoryLM& model, const EvalSet& set, const nn::ForwardRouting& routing, int64_t batch,
                    int64_t prompt_length) {
  LORY_CHECK(batch >= 1, "evaluate: batch must be >= 1, got ", batch);
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  const Device device = model.output_weight().device();
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
      const int64_t B = static_cast<int64_t>(j - i), T1 = static_cast<int64_t>(seqs[i].size()), L = T1 - 1;
      const int64_t V = model.config.vocab_size;
      const Tensor tokens = from_vector(ids, {B, T1}, {DType::i64, device});
      const Tensor logits = model.forward(tokens.narrow(1, 0, L), options);  // [B, L, V]
      for (int64_t b = 0; b < B; ++b) {
        // Per-token NLL of sequence b: -log_softmax(logits)[t, target_t],
        // picked from its flat [L V] log-probabilities at t * V + target_t
        // (one sequence at a time: [L, V] in f32, not [B, L, V]).
        const std::vector<int32_t>& seq = seqs[i + static_cast<size_t>(b)];
        std::vector<int64_t> pick(static_cast<size_t>(L));
        for (int64_t t = 0; t < L; ++t) pick[static_cast<size_t>(t)] = t * V + seq[static_cast<size_t>(t + 1)];
        const std::vector<double> logp =
            index_select(log_softmax(logits.select(0, b).to(DType::f32), -1).reshape({L * V}), 0,
                         from_vector(pick, {L}, {DType::i64, device}))
                .to(DType::f64)
                .to_vector<double>();
        const std::vector<int32_t>& block_of = set.blocks[d][i + static_cast<size_t>(b)];
        for (int64_t t = 0; t < L; ++t) {
          const auto k = static_cast<size_t>(block_of[static_cast<size_t>(t)]);
          if (k >= out.blocks.nll.size()) {
            out.blocks.nll.resize(k + 1);
            out.blocks.tokens.resize(k + 1);
          }
          out.blocks.nll[k] -= logp[static_cast<size_t>(t)];
          out.blocks.tokens[k] += 1;
          nll -= logp[static_cast<size_t>(t)];
        }
      }
      out.tokens += B * L;
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
    if (!out.blocks.nll.empty()) {
      out.documents = set.block_document[d][out.blocks.nll.size() - 1] + 1;
      out.ppl_interval = bootstrap_ppl({{set.domains[d], out.blocks}}, {set.domains[d]});
    }
    for (auto& layer : routing_sum)
      for (double& x : layer) x /= static_cast<double>(std::max<int64_t>(routing_rows, 1));
    out.routing = std::move(routing_sum);
    total_nll += nll;
    result.tokens += out.tokens;
    result.domains[set.domains[d]] = std::move(out);
  }
  result.loss = result.tokens ? total_nll / static_cast<double>(result.tokens) : 0.0;
  result.ppl = std::exp(result.loss);
  RunLosses all;
  std::vector<std::string> names;
  for (const auto& [name, out] : result.domains)
    if (out.tokens) all[name] = out.blocks, names.push_back(name);
  if (!names.empty()) result.ppl_interval = bootstrap_ppl(all, names);
  model.train(was_training);
  return result;
}

namespace {
// Each domain's mean routing weights, [layer][expert], by domain name.
std::map<std::string, std::vector<std::vector<double>>> domain_routing(const EvalResult& r) {
  std::map<std::string, std::vector<std::vector<double>>> out;
  for (const auto& [name, d] : r.domains)
    if (!d.routing.empty()) out[name] = d.routing;
  return out;
}
}  // namespace

std::string eval_result_json(const EvalResult& r, const nn::LoryConfig& config,
                             const std::map<std::string, std::string>& extra) {
  nlohmann::ordered_json j;
  for (const auto& [k, v] : extra) j[k] = v;
  j["routing"] = r.routing;
  j["loss"] = r.loss;
  j["ppl"] = r.ppl;
  j["ppl_ci"] = {r.ppl_interval.lo, r.ppl_interval.hi};
  j["tokens"] = r.tokens;
  j["num_layers"] = config.num_hidden_layers;
  j["num_experts"] = config.num_experts;
  nlohmann::ordered_json domains = nlohmann::ordered_json::object(), routing = nlohmann::ordered_json::object();
  for (const auto& [name, d] : r.domains) {
    domains[name] = {{"loss", d.loss},
                     {"ppl", d.ppl},
                     {"ppl_ci", {d.ppl_interval.lo, d.ppl_interval.hi}},
                     {"tokens", d.tokens},
                     {"documents", d.documents},
                     {"blocks", d.blocks.nll.size()},
                     {"block_nll", d.blocks.nll},
                     {"block_tokens", d.blocks.tokens}};
    if (!d.routing.empty()) routing[name] = d.routing;
  }
  j["domains"] = domains;
  if (!routing.empty()) j["routing_weights"] = routing;
  const std::vector<double> specialisation = routing_specialisation(domain_routing(r));
  if (!specialisation.empty()) j["routing_specialisation"] = specialisation;
  return j.dump(1) + "\n";
}

std::string eval_result_table(const EvalResult& r) {
  std::string out;
  char line[200];
  std::snprintf(line, sizeof line, "  %-14s %8s %5s %8s %10s  %s\n", "domain", "tokens", "docs", "loss", "ppl",
                "95% interval (bootstrap over document blocks)");
  out += line;
  auto row = [&](const std::string& name, int64_t tokens, int64_t docs, double loss, double ppl, Interval ci) {
    std::snprintf(line, sizeof line, "  %-14s %8lld %5lld %8.4f %10.2f  ", name.c_str(), static_cast<long long>(tokens),
                  static_cast<long long>(docs), loss, ppl);
    out += line;
    if (ci.known())
      std::snprintf(line, sizeof line, "[%.2f, %.2f]\n", ci.lo, ci.hi);
    else
      std::snprintf(line, sizeof line, "(fewer than %zu blocks)\n", kMinBootstrapBlocks);
    out += line;
  };
  int64_t docs = 0;
  for (const auto& [name, d] : r.domains) {
    row(name, d.tokens, d.documents, d.loss, d.ppl, d.ppl_interval);
    docs += d.documents;
  }
  row("all", r.tokens, docs, r.loss, r.ppl, r.ppl_interval);
  const std::vector<double> specialisation = routing_specialisation(domain_routing(r));
  if (!specialisation.empty()) {
    out += "  routing specialisation per layer (mean JS divergence between domains' routing, bits):";
    for (double v : specialisation) {
      std::snprintf(line, sizeof line, " %.4f", v);
      out += line;
    }
    out += "\n";
  }
  return out;
}

RunLosses run_losses_from_json(const std::string& json_text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
  LORY_CHECK(j.is_object() && j.contains("domains") && j["domains"].is_object(), where,
             ": no \"domains\" object (not an eval JSON)");
  RunLosses run;
  for (const auto& [name, d] : j["domains"].items()) {
    LORY_CHECK(d.contains("block_nll") && d.contains("block_tokens"), where, ": domain '", name,
               "' has no per-block losses (block_nll, block_tokens): written before they existed; "
               "evaluate the checkpoint again (lory_eval --ckpt RUN --data SHARDS --out FILE)");
    BlockLosses& losses = run[name];
    losses.nll = d["block_nll"].get<std::vector<double>>();
    losses.tokens = d["block_tokens"].get<std::vector<int64_t>>();
    LORY_CHECK(losses.nll.size() == losses.tokens.size(), where, ": domain '", name, "' has ", losses.nll.size(),
               " block losses but ", losses.tokens.size(), " token counts");
  }
  return run;
}

}  // namespace lory::train
