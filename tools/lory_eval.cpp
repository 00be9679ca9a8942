// lory_eval — held-out perplexity per domain of a checkpoint, and the mean
// routing weights per domain and layer (paper Table 1 and Fig. 6):
//
//   lory_eval --ckpt runs/lory-8e --data 'data/shards/valid-*.bin' --seq-len 256 --out eval.json
//   lory_eval --compare dense=runs/dense/eval.json,lory-8e=runs/lory-8e/eval.json
//
// --ckpt takes a model directory (config.json + model.safetensors), a
// training checkpoint (one is a model directory), or a run directory (its
// newest checkpoint). --compare prints the per-domain perplexities of
// several eval JSON files side by side, with the relative gain of each over
// the first.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nn/atomic_file.h"
#include "nn/checkpoint.h"
#include "tools/cli.h"
#include "train/evaluate.h"
#include "train/train_checkpoint.h"

using namespace lory;

namespace {

std::string resolve_model_dir(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(path) / "config.json")) return path;
  const std::string latest = train::latest_checkpoint(path);
  LORY_CHECK(!latest.empty(), path, ": neither a model directory (no config.json) nor a run directory with checkpoints");
  return latest;
}

// Prints domain | ppl of each run | gain of each run over the first.
int compare(const std::string& list) {
  std::vector<std::pair<std::string, nlohmann::json>> runs;
  for (const std::string& item : tools::split_commas(list)) {
    const auto eq = item.find('=');
    const std::string label = eq == std::string::npos ? item : item.substr(0, eq);
    const std::string path = eq == std::string::npos ? item : item.substr(eq + 1);
    std::ifstream in(path);
    LORY_CHECK(in.good(), path, ": cannot open");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": not valid JSON: ", e.what());
    }
    LORY_CHECK(j.contains("domains") && j["domains"].is_object(), path, ": no \"domains\" object (not an eval JSON)");
    runs.emplace_back(label, j);
  }
  LORY_CHECK(runs.size() >= 2, "--compare needs at least two eval files, got ", runs.size());
  std::printf("held-out perplexity per domain (lower is better); gain = 1 - ppl / ppl(%s)\n\n",
              runs[0].first.c_str());
  std::printf("  %-14s", "domain");
  for (const auto& [label, j] : runs) std::printf(" %12s", label.c_str());
  for (size_t r = 1; r < runs.size(); ++r) std::printf(" %12s", ("gain " + runs[r].first).substr(0, 12).c_str());
  std::printf("\n");
  std::vector<std::string> domains;
  for (const auto& [name, d] : runs[0].second["domains"].items()) domains.push_back(name);
  domains.push_back("all");
  for (const std::string& domain : domains) {
    std::printf("  %-14s", domain.c_str());
    std::vector<double> ppl;
    for (const auto& [label, j] : runs) {
      const nlohmann::json* d = domain == "all" ? &j : (j["domains"].contains(domain) ? &j["domains"][domain] : nullptr);
      const double p = d && d->contains("ppl") ? (*d)["ppl"].get<double>() : NAN;
      ppl.push_back(p);
      std::printf(" %12.2f", p);
    }
    for (size_t r = 1; r < runs.size(); ++r) std::printf(" %+11.1f%%", 100.0 * (1.0 - ppl[r] / ppl[0]));
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tools::Cli cli("lory_eval", "Held-out perplexity per domain of a checkpoint (and routing weights per domain).");
  cli.option("ckpt", "DIR", "model directory, training checkpoint, or run directory (its newest checkpoint)");
  cli.option("data", "SHARDS", "token shards: a glob or comma list ('data/shards/valid-*.bin')");
  cli.option("routing", "MODE", "causal_segment (training's), prompt or segment (inference's)", "causal_segment");
  cli.option("prompt-length", "N", "prompt/segment routing: tokens whose mean routes (default: one segment)", "0");
  cli.option("seq-len", "L", "tokens per sequence (default: the model's max_position_embeddings)", "0");
  cli.option("tokens-per-domain", "N", "held-out tokens per domain", "65536");
  cli.option("batch", "B", "sequences per forward", "4");
  cli.option("out", "FILE", "write the results as JSON (lory_plot routing reads it)");
  cli.option("compare", "A=a.json,B=b.json", "print eval JSON files side by side instead of evaluating");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    if (cli.has("compare")) return compare(cli.get("compare"));
    const std::string dir = resolve_model_dir(cli.require("ckpt"));
    const std::string data = cli.require("data");
    auto model = nn::load_pretrained(dir);
    const nn::Routing routing = nn::parse_routing(cli.get("routing"), "--routing");
    const int64_t seq_len =
        cli.get_int("seq-len") > 0 ? cli.get_int("seq-len") : model->config.max_position_embeddings;
    LORY_CHECK(seq_len <= model->config.max_position_embeddings, "--seq-len ", seq_len,
               " is longer than the model's max_position_embeddings ", model->config.max_position_embeddings);
    const train::EvalSet set =
        train::build_eval_set(data, seq_len, cli.get_int("tokens-per-domain"),
                              static_cast<int32_t>(model->config.eos_token_id), model->config.vocab_size);
    const train::EvalResult r =
        train::evaluate(*model, set, routing, cli.get_int("batch"), cli.get_int("prompt-length"));
    std::printf("%s: %s routing, %lld-token sequences\n%s", dir.c_str(), r.routing.c_str(),
                static_cast<long long>(seq_len), train::eval_result_table(r).c_str());
    if (cli.has("out")) {
      nn::write_file_atomically(cli.get("out"),
                                train::eval_result_json(r, model->config, {{"checkpoint", dir}, {"data", data}}));
      std::printf("wrote %s\n", cli.get("out").c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
