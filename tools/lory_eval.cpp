// lory_eval — held-out perplexity per domain of a checkpoint, and the mean
// routing weights per domain and layer (paper Table 1 and Fig. 6):
//
//   lory_eval --ckpt runs/lory-8e --data 'data/shards/valid-*.bin' --seq-len 256 --out eval.json
//   lory_eval --compare dense=runs/dense/eval.json,lory-8e=runs/lory-8e/eval.json
//
// --ckpt takes a model directory (config.json + model.safetensors), a
// training checkpoint (one is a model directory), or a run directory (its
// newest checkpoint). --compare prints the per-domain perplexities of
// several models side by side (each one eval JSON, or several: one per
// training seed), with the gain of each over the first and its 95% interval
// (a paired bootstrap over held-out document blocks and seeds).
//
//   lory_eval --compare 'dense=runs/dense-seed*/eval.json,lory-8e=runs/lory-seed1/eval.json+runs/lory-seed2/eval.json' [--out cmp.json]
//
// In-context multiple choice (paper Table 1; train/downstream.h has the task
// format and the scoring, lm-evaluation-harness's), Lory layers routed from
// the prompt only:
//
//   lory_eval --ckpt runs/lory-8e --tasks piqa.jsonl,hellaswag.jsonl --shots 5 [--tokenizer data/tokenizer.model]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "nn/checkpoint.h"
#include "tools/cli.h"
#include "train/downstream.h"
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

// One model of a comparison: its label and one eval JSON per training seed.
struct Model {
  std::string label;
  std::vector<std::string> paths;
  std::vector<nlohmann::json> evals;
  std::vector<train::RunLosses> losses;
  std::vector<std::string> seeds;  // the training seed of each run ("" when the eval JSON does not say)
};

// "dense=a.json+b.json" or "dense=runs/dense-seed*/eval.json" -> the label and its files.
Model read_model(const std::string& item) {
  const auto eq = item.find('=');
  Model m;
  m.label = eq == std::string::npos ? item : item.substr(0, eq);
  std::string list = eq == std::string::npos ? item : item.substr(eq + 1);
  for (char& c : list)
    if (c == '+') c = ',';
  m.paths = train::expand_paths(list);
  for (const std::string& path : m.paths) {
    std::ifstream in(path);
    LORY_CHECK(in.good(), path, ": cannot open");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    m.losses.push_back(train::run_losses_from_json(text, path));
    m.evals.push_back(nlohmann::json::parse(text));
    m.seeds.push_back(m.evals.back().value("seed", std::string()));
  }
  return m;
}

// The perplexity of one eval JSON on a domain ("all": the whole file's).
double ppl_of(const nlohmann::json& j, const std::string& domain) {
  const nlohmann::json* d = domain == "all" ? &j : (j["domains"].contains(domain) ? &j["domains"][domain] : nullptr);
  return d && d->contains("ppl") ? (*d)["ppl"].get<double>() : NAN;
}

// Prints, per domain: the tokens it rests on, each model's perplexity (the
// mean over its seeds, with their spread), and the gain of each model over
// the first with a 95% interval from a paired bootstrap over document blocks
// and seeds (train/bootstrap.h); '*' marks a gain whose interval excludes 0.
// With `out`, the same numbers unrounded as JSON (the experiment runner's
// input): {"reference", "paired", "models": [{label, runs, seeds}],
// "domains": {name: {tokens, ppl: [per model], sd: [per model | null],
// gains: [{model, gain, lo, hi, significant} per model after the first]}}},
// gains as fractions (lo/hi null when the domain has too few blocks).
int compare(const std::string& list, const std::string& out) {
  std::vector<Model> models;
  for (const std::string& item : tools::split_commas(list)) models.push_back(read_model(item));
  LORY_CHECK(models.size() >= 2, "--compare needs at least two models, got ", models.size());
  size_t min_seeds = models[0].paths.size(), max_seeds = min_seeds;
  for (const Model& m : models) {
    min_seeds = std::min(min_seeds, m.paths.size());
    max_seeds = std::max(max_seeds, m.paths.size());
  }
  std::vector<std::string> domains;
  for (const auto& [name, d] : models[0].evals[0]["domains"].items()) domains.push_back(name);
  // Seeds are paired when every model has the same runs count: run r of each
  // was trained with the same seed (the main job's dense-seedN/lory-seedN; a
  // glob sorts both lists alike). Eval JSONs that name their seed must agree.
  bool paired = true;
  for (const Model& m : models) paired = paired && m.paths.size() == models[0].paths.size();
  if (paired)
    for (const Model& m : models)
      for (size_t r = 0; r < m.seeds.size(); ++r)
        LORY_CHECK(m.seeds[r].empty() || models[0].seeds[r].empty() || m.seeds[r] == models[0].seeds[r],
                   "--compare: run ", r + 1, " of '", m.label, "' (", m.paths[r], ") was trained with seed ", m.seeds[r],
                   " but run ", r + 1, " of '", models[0].label, "' (", models[0].paths[r], ") with seed ",
                   models[0].seeds[r], "; list the runs of every model in the same seed order");

  std::printf("held-out perplexity per domain (lower is better), ");
  if (max_seeds == 1)
    std::printf("one training run per model (no seed spread measured)\n");
  else
    std::printf("%zu%s training seeds per model: the perplexity of their mean loss, +- the seeds' standard deviation\n",
                min_seeds, min_seeds == max_seeds ? "" : "+");
  std::printf("gain = 1 - ppl / ppl(%s); [95%% interval]: paired bootstrap over held-out document blocks%s;\n",
              models[0].label.c_str(),
              max_seeds == 1 ? "" : paired ? " and over seeds (run r of every model: the same seed)" : " and seeds");
  std::printf("* = the interval excludes 0 (a gain, or a loss, beyond the uncertainty)\n\n");
  std::printf("  %-12s %7s", "domain", "tokens");
  for (const Model& m : models) std::printf(" %17s", m.label.c_str());
  for (size_t r = 1; r < models.size(); ++r)
    std::printf(r + 1 < models.size() ? "  %-26s" : "  %s", ("gain " + models[r].label).c_str());
  std::printf("\n");
  nlohmann::ordered_json j{{"reference", models[0].label}, {"paired", paired}};
  for (const Model& m : models) j["models"].push_back({{"label", m.label}, {"runs", m.paths}, {"seeds", m.seeds}});
  domains.push_back("all");
  for (const std::string& domain : domains) {
    const nlohmann::json& first = models[0].evals[0];
    const nlohmann::json& where = domain == "all" ? first : first["domains"][domain];
    const int64_t tokens = where.value("tokens", int64_t{0});
    nlohmann::ordered_json row{{"tokens", tokens}, {"ppl", nlohmann::json::array()}, {"sd", nlohmann::json::array()},
                               {"gains", nlohmann::json::array()}};
    std::printf("  %-12s %7lld", domain.c_str(), static_cast<long long>(tokens));
    for (const Model& m : models) {
      // The pooled perplexity (mean NLL over seeds) and the seeds' spread.
      double mean_loss = 0, sum = 0, sum_sq = 0;
      for (const nlohmann::json& j : m.evals) {
        const double p = ppl_of(j, domain);
        mean_loss += std::log(p) / static_cast<double>(m.evals.size());
        sum += p;
        sum_sq += p * p;
      }
      const double n = static_cast<double>(m.evals.size());
      row["ppl"].push_back(std::exp(mean_loss));
      if (m.evals.size() > 1) {
        const double sd = std::sqrt(std::max(0.0, (sum_sq - sum * sum / n) / (n - 1)));
        std::printf(" %9.2f +- %5.2f", std::exp(mean_loss), sd);
        row["sd"].push_back(sd);
      } else {
        std::printf(" %17.2f", std::exp(mean_loss));
        row["sd"].push_back(nullptr);
      }
    }
    std::vector<std::string> over = domain == "all" ? std::vector<std::string>(domains.begin(), domains.end() - 1)
                                                    : std::vector<std::string>{domain};
    for (size_t r = 1; r < models.size(); ++r) {
      train::GainEstimate g;
      try {
        g = train::bootstrap_gain(models[0].losses, models[r].losses, over, paired);
      } catch (const Error& e) {
        fail("--compare: '", models[r].label, "' against '", models[0].label, "': ", e.what());
      }
      const bool known = g.interval.known();
      row["gains"].push_back({{"model", models[r].label},
                              {"gain", g.gain},
                              {"lo", known ? nlohmann::json(g.interval.lo) : nlohmann::json(nullptr)},
                              {"hi", known ? nlohmann::json(g.interval.hi) : nlohmann::json(nullptr)},
                              {"significant", known && g.significant()}});
      char cell[64];
      if (known)
        std::snprintf(cell, sizeof cell, "%+6.1f%% [%+.1f, %+.1f]%s", 100 * g.gain, 100 * g.interval.lo,
                      100 * g.interval.hi, g.significant() ? " *" : "");
      else
        std::snprintf(cell, sizeof cell, "%+6.1f%% (too few blocks)", 100 * g.gain);
      std::printf(r + 1 < models.size() ? "  %-26s" : "  %s", cell);
    }
    std::printf("\n");
    j["domains"][domain] = std::move(row);
  }
  if (!out.empty()) {
    io::write_file_atomically(out, j.dump(2) + "\n");
    std::printf("\nwrote %s\n", out.c_str());
  }
  return 0;
}

// --tasks: accuracy per task, as a table (and JSON with --out).
int score_tasks(nn::LoryLM& model, const std::string& dir, const std::string& tasks, std::string tokenizer_path,
                const std::string& routing_arg, int64_t shots, uint64_t seed, int64_t max_examples,
                const std::string& out) {
  if (tokenizer_path.empty()) tokenizer_path = dir;  // DIR/tokenizer.model
  const corpus::Tokenizer tokenizer(tokenizer_path);
  train::ChoiceOptions options;
  options.shots = shots;
  options.seed = seed;
  options.max_examples = max_examples;
  // The training routing is no way to answer a prompt: inference routings only (prompt by default).
  options.routing = routing_arg == "causal_segment" ? nn::InferenceRouting::prompt
                                                    : nn::parse_inference_routing(routing_arg, "--routing");
  std::printf("%s: %d-shot, %s routing\n%-24s %8s %16s %16s\n", dir.c_str(), static_cast<int>(shots),
              nn::routing_name(options.routing), "task", "examples", "acc", "acc_norm");
  nlohmann::ordered_json j{{"checkpoint", dir}, {"shots", shots}, {"seed", seed},
                           {"routing", nn::routing_name(options.routing)}};
  for (const std::string& path : train::expand_paths(tasks)) {
    const train::TaskResult r = train::evaluate_choice_task(model, tokenizer, train::load_choice_task(path), options);
    std::printf("%-24s %8lld %8.4f ± %.4f %8.4f ± %.4f\n", r.task.c_str(), static_cast<long long>(r.examples), r.acc,
                r.acc_stderr, r.acc_norm, r.acc_norm_stderr);
    j["tasks"][r.task] = {{"file", path},          {"examples", r.examples}, {"acc", r.acc},
                          {"acc_stderr", r.acc_stderr}, {"acc_norm", r.acc_norm}, {"acc_norm_stderr", r.acc_norm_stderr},
                          {"correct", r.correct},       {"correct_norm", r.correct_norm}};
  }
  if (!out.empty()) {
    io::write_file_atomically(out, j.dump(2) + "\n");
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tools::App app("lory_eval", "Held-out perplexity per domain of a checkpoint (and routing weights per domain).");
  std::string ckpt, data, routing_arg = "causal_segment", out, compare_list;
  int64_t prompt_length = 0, seq_len_arg = 0, tokens_per_domain = 65536, batch = 4;
  app.add_option("--ckpt", ckpt, "model directory, training checkpoint, or run directory (its newest checkpoint)")
      ->type_name("DIR");
  app.add_option("--data", data, "token shards: a glob or comma list ('data/shards/valid-*.bin')")->type_name("SHARDS");
  app.add_option("--routing", routing_arg, "causal_segment or prefix (training's), prompt or segment (inference's)")
      ->type_name("MODE");
  app.add_option("--prompt-length", prompt_length, "prompt/segment routing: tokens whose mean routes (0: one segment)")
      ->type_name("N");
  app.add_option("--seq-len", seq_len_arg, "tokens per sequence (0: the model's max_position_embeddings)")
      ->type_name("L");
  app.add_option("--tokens-per-domain", tokens_per_domain, "held-out tokens per domain")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "sequences per forward")->type_name("B")->check(CLI::PositiveNumber);
  app.add_option("--out", out, "write the results as JSON (lory_plot routing reads it; with --compare: the table's numbers, unrounded)")->type_name("FILE");
  std::string tasks, tokenizer_path;
  int64_t shots = 0, max_examples = 0;
  uint64_t seed = 1234;
  app.add_option("--tasks", tasks, "multiple-choice task files (JSONL; a glob or comma list) to score instead of --data")
      ->type_name("FILES");
  app.add_option("--tokenizer", tokenizer_path, "--tasks: the SentencePiece model (default: DIR/tokenizer.model)")
      ->type_name("FILE|DIR");
  app.add_option("--shots", shots, "--tasks: train examples before each test example")->type_name("K");
  app.add_option("--seed", seed, "--tasks: seed of the shots drawn")->type_name("S");
  app.add_option("--max-examples", max_examples, "--tasks: score the first N test examples of each (0: all)")
      ->type_name("N");
  auto* compare_opt =
      app.add_option("--compare", compare_list,
                     "print models side by side instead of evaluating: per model one eval JSON, or several ('+' or a "
                     "glob: one per seed); gains over the first with bootstrap intervals")
          ->type_name("A=a.json,B=b1.json+b2.json");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  if (compare_opt->count() == 0) {
    if (ckpt.empty()) app.usage_error("--ckpt is required (or --compare)");
    if (data.empty() == tasks.empty()) app.usage_error("give one of --data and --tasks (or --compare)");
  }
  try {
    if (compare_opt->count() > 0) return compare(compare_list, out);
    const std::string dir = resolve_model_dir(ckpt);
    auto model = nn::load_pretrained(dir);
    if (!tasks.empty()) return score_tasks(*model, dir, tasks, tokenizer_path, routing_arg, shots, seed, max_examples, out);
    const nn::ForwardRouting routing = nn::parse_forward_routing(routing_arg, "--routing");
    const int64_t seq_len = seq_len_arg > 0 ? seq_len_arg : model->config.max_position_embeddings;
    LORY_CHECK(seq_len <= model->config.max_position_embeddings, "--seq-len ", seq_len,
               " is longer than the model's max_position_embeddings ", model->config.max_position_embeddings);
    const train::EvalSet set = train::build_eval_set(
        data, seq_len, tokens_per_domain, static_cast<int32_t>(model->config.eos_token_id), model->config.vocab_size);
    const train::EvalResult r = train::evaluate(*model, set, routing, batch, prompt_length);
    std::printf("%s: %s routing, %lld-token sequences\n%s", dir.c_str(), r.routing.c_str(),
                static_cast<long long>(seq_len), train::eval_result_table(r).c_str());
    if (!out.empty()) {
      io::write_file_atomically(out, train::eval_result_json(r, model->config, {{"checkpoint", dir}, {"data", data}}));
      std::printf("wrote %s\n", out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
