// downstream.cpp — see downstream.h.
#include "train/downstream.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/json_text.h"
#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::train {

ChoiceTask load_choice_task(const std::string& path) {
  std::ifstream in(path);
  LORY_CHECK(in.good(), path, ": cannot open the task file");
  ChoiceTask task;
  task.name = std::filesystem::path(path).stem().string();
  int64_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_number);
    const nlohmann::json j = io::parse_json<nlohmann::json>(line, where);
    LORY_CHECK(j.is_object(), where, ": expected an object {\"context\", \"choices\", \"gold\"}, got ", j.type_name());
    ChoiceExample e;
    LORY_CHECK(j.contains("context") && j["context"].is_string(), where, ": \"context\" must be a string");
    e.context = j["context"].get<std::string>();
    LORY_CHECK(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2, where,
               ": \"choices\" must be a list of at least 2 strings");
    for (const auto& c : j["choices"]) {
      LORY_CHECK(c.is_string() && !c.get<std::string>().empty(), where, ": every choice must be a non-empty string");
      e.choices.push_back(c.get<std::string>());
    }
    LORY_CHECK(j.contains("gold") && j["gold"].is_number_integer(), where, ": \"gold\" must be an integer index");
    e.gold = j["gold"].get<int64_t>();
    LORY_CHECK(e.gold >= 0 && e.gold < static_cast<int64_t>(e.choices.size()), where, ": \"gold\" ", e.gold,
               " is not an index into the ", e.choices.size(), " choices");
    const std::string split = j.contains("split") && j["split"].is_string() ? j["split"].get<std::string>() : "test";
    LORY_CHECK(split == "test" || split == "train", where, ": \"split\" must be \"test\" or \"train\", got \"", split,
               "\"");
    (split == "train" ? task.train : task.test).push_back(std::move(e));
  }
  LORY_CHECK(!task.test.empty(), path, ": no test examples");
  return task;
}

std::string choice_prompt(const ChoiceTask& task, size_t example, const ChoiceOptions& options) {
  LORY_CHECK(options.shots >= 0 && options.shots <= static_cast<int64_t>(task.train.size()), task.name, ": ",
             options.shots, " shots asked for, the task has ", task.train.size(), " train examples");
  // k distinct train examples: the first k of a Fisher-Yates shuffle driven
  // by raw mt19937_64 outputs (portable, unlike std::shuffle), seeded per
  // test example so that any subset of examples gets the same prompts.
  std::vector<size_t> pool(task.train.size());
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = i;
  std::mt19937_64 rng(options.seed * 0x9E3779B97F4A7C15ull + example);
  std::string prompt;
  for (int64_t s = 0; s < options.shots; ++s) {
    const size_t pick = static_cast<size_t>(s) + static_cast<size_t>(rng() % (pool.size() - static_cast<size_t>(s)));
    std::swap(pool[static_cast<size_t>(s)], pool[pick]);
    const ChoiceExample& shot = task.train[pool[static_cast<size_t>(s)]];
    prompt += shot.context + shot.choices[static_cast<size_t>(shot.gold)] + options.separator;
  }
  return prompt + task.test[example].context;
}

ChoiceScores score_choices(nn::LoryLM& model, const corpus::Tokenizer& tokenizer, const std::string& prompt,
                           const std::vector<std::string>& choices, nn::InferenceRouting routing) {
  corpus::SpecialTokenOptions special = tokenizer.hf_special_tokens();
  special.add_eos = false;
  special.special_tokens_in_text = false;  // task text is text
  const std::vector<int32_t> context = tokenizer.encode(prompt, special);
  LORY_CHECK(!context.empty(),
             "score_choices: the prompt encodes to no token (and the tokenizer adds no BOS): "
             "nothing to predict the first choice token from");
  ChoiceScores out;
  out.prompt_tokens = static_cast<int64_t>(context.size());
  const int64_t n_context = static_cast<int64_t>(context.size());
  // Each choice's tokens, prompt first. The harness's split: the choice's
  // tokens are what encode(prompt + choice) has after encode(prompt) (a
  // piece may span the boundary otherwise); when the prefix differs, the
  // choice is encoded alone.
  std::vector<std::vector<int32_t>> sequences;
  for (const std::string& choice : choices) {
    std::vector<int32_t> tokens = tokenizer.encode(prompt + choice, special);
    if (tokens.size() <= context.size() || !std::equal(context.begin(), context.end(), tokens.begin())) {
      corpus::SpecialTokenOptions plain = special;
      plain.add_bos = false;
      tokens = context;
      for (int32_t id : tokenizer.encode(choice, plain)) tokens.push_back(id);
    }
    sequences.push_back(std::move(tokens));
    out.bytes.push_back(static_cast<int64_t>(choice.size()));
  }
  // Longer than the model's context: keep the last max_position_embeddings
  // + 1 tokens of each, as the harness does (the prompt loses its start).
  int64_t drop = 0, longest = 0;
  for (const auto& t : sequences) {
    drop = std::max<int64_t>(drop, static_cast<int64_t>(t.size()) - 1 - model.config.max_position_embeddings);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(t.size()));
  }
  LORY_CHECK(drop < n_context, "score_choices: a choice of ", longest - n_context,
             " tokens does not fit the model's max_position_embeddings");
  // All choices in one batch, right-padded: a causal model's logits at a real
  // position never see the padding after it, and neither does routing (the
  // prompt's mean; or, segment by segment, segments that precede the padding).
  const int64_t C = static_cast<int64_t>(sequences.size()), L = longest - 1 - drop;
  std::vector<int64_t> ids(static_cast<size_t>(C * L), 0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(sequences[c].size()) - drop; ++t)
      ids[static_cast<size_t>(c * L + t)] = sequences[c][static_cast<size_t>(t + drop)];
  NoGradGuard no_grad;
  const Tensor x = from_vector(ids, {C, L}, {DType::i64}).to(model.output_weight().device());
  const Tensor logits = model.forward(x, {routing, n_context - drop});  // [C, L, V], on the model's device
  for (int64_t c = 0; c < C; ++c) {
    const std::vector<int32_t>& tokens = sequences[static_cast<size_t>(c)];
    // Token t of the sequence (t >= n_context: the choice's) is predicted at
    // window position t - drop - 1: only those rows leave the device.
    const int64_t count = static_cast<int64_t>(tokens.size()) - n_context;
    const std::vector<double> logp =
        log_softmax(logits.select(0, c).narrow(0, n_context - drop - 1, count).to(DType::f64), 1)
            .to(cpu_device())
            .to_vector<double>();
    const int64_t V = logits.size(2);
    double loglik = 0;
    for (int64_t i = 0; i < count; ++i)
      loglik += logp[static_cast<size_t>(i * V + tokens[static_cast<size_t>(n_context + i)])];
    out.loglik.push_back(loglik);
  }
  return out;
}

TaskResult evaluate_choice_task(nn::LoryLM& model, const corpus::Tokenizer& tokenizer, const ChoiceTask& task,
                                const ChoiceOptions& options) {
  TaskResult r;
  r.task = task.name;
  r.shots = options.shots;
  const size_t n = options.max_examples > 0 ? std::min(task.test.size(), static_cast<size_t>(options.max_examples))
                                            : task.test.size();
  int64_t right = 0, right_norm = 0;
  for (size_t i = 0; i < n; ++i) {
    const ChoiceExample& e = task.test[i];
    const ChoiceScores s = score_choices(model, tokenizer, choice_prompt(task, i, options), e.choices, options.routing);
    // Ties go to the lower index (the harness's argmax).
    size_t best = 0, best_norm = 0;
    for (size_t c = 1; c < e.choices.size(); ++c) {
      if (s.loglik[c] > s.loglik[best]) best = c;
      if (s.loglik[c] / s.bytes[c] > s.loglik[best_norm] / s.bytes[best_norm]) best_norm = c;
    }
    r.correct.push_back(best == static_cast<size_t>(e.gold) ? 1 : 0);
    r.correct_norm.push_back(best_norm == static_cast<size_t>(e.gold) ? 1 : 0);
    right += r.correct.back();
    right_norm += r.correct_norm.back();
  }
  r.examples = static_cast<int64_t>(n);
  auto stderr_of = [n](double p) { return n > 1 ? std::sqrt(p * (1 - p) / static_cast<double>(n - 1)) : 0.0; };
  r.acc = static_cast<double>(right) / static_cast<double>(n);
  r.acc_norm = static_cast<double>(right_norm) / static_cast<double>(n);
  r.acc_stderr = stderr_of(r.acc);
  r.acc_norm_stderr = stderr_of(r.acc_norm);
  return r;
}

}  // namespace lory::train
