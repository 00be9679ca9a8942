// train/downstream.h: multiple-choice in-context evaluation (paper Table 1,
// scored as lm-evaluation-harness scores it).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tests/errors.h"
#include "train/downstream.h"

using namespace lory;
using namespace lory::train;
using lory::test::error_of;

namespace {

const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";

std::string write_task(const std::string& name, const std::string& jsonl) {
  const auto dir = std::filesystem::temp_directory_path() / "lory_downstream_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (name + ".jsonl")).string();
  std::ofstream(path) << jsonl;
  return path;
}

// A tiny model over the fixture tokenizer's 2000 ids, in f64.
std::unique_ptr<nn::LoryLM> tiny_model(int64_t experts, uint64_t seed) {
  nn::LoryConfig c = nn::preset("tiny");
  c.vocab_size = 2000;
  c.num_experts = experts;
  c.segment_length = 8;
  c.router_init_std = 1.0;  // routing that differs between prompts
  manual_seed(seed);
  auto model = std::make_unique<nn::LoryLM>(c);
  model->to(DType::f64);
  model->eval();
  return model;
}

}  // namespace

TEST_CASE("downstream: a task file reads its train and test splits; a bad line is named with its field") {
  const std::string path = write_task("toy", R"({"context": "Q: 2+2?\nA:", "choices": [" 4", " 5"], "gold": 0}
{"context": "Q: 3+3?\nA:", "choices": [" 5", " 6", " 7"], "gold": 1, "split": "test"}

{"context": "Q: 1+1?\nA:", "choices": [" 2", " 3"], "gold": 0, "split": "train"}
)");
  const ChoiceTask task = load_choice_task(path);
  CHECK(task.name == "toy");
  REQUIRE(task.test.size() == 2);
  REQUIRE(task.train.size() == 1);
  CHECK(task.test[1].choices.size() == 3);
  CHECK(task.test[1].gold == 1);
  CHECK(task.train[0].context == "Q: 1+1?\nA:");
  auto error_for = [](const std::string& line) {
    const std::string p = write_task("bad", line + "\n");
    return error_of([&] { load_choice_task(p); });
  };
  const std::string bad = (std::filesystem::temp_directory_path() / "lory_downstream_test" / "bad.jsonl").string();
  CHECK(error_for(R"({"context": "x", "choices": [" a", " b"], "gold": 2})") ==
        bad + ":1: \"gold\" 2 is not an index into the 2 choices");
  CHECK(error_for(R"({"context": "x", "choices": [" a"], "gold": 0})") ==
        bad + ":1: \"choices\" must be a list of at least 2 strings");
  CHECK(error_for(R"({"choices": [" a", " b"], "gold": 0})") == bad + ":1: \"context\" must be a string");
  CHECK(error_for(R"({"context": "x", "choices": [" a", " b"], "gold": 0, "split": "dev"})") ==
        bad + ":1: \"split\" must be \"test\" or \"train\", got \"dev\"");
  CHECK(error_for("{\"context\": ").find(bad + ":1: not valid JSON") == 0);
  CHECK(error_of([] { load_choice_task("/nonexistent/task.jsonl"); }) ==
        "/nonexistent/task.jsonl: cannot open the task file");
}

TEST_CASE("downstream: k-shot prompts are k distinct train examples with their gold answers, fixed by the seed") {
  std::string jsonl;
  for (int i = 0; i < 6; ++i)
    jsonl += R"({"context": "T)" + std::to_string(i) + R"(:", "choices": [" x)" + std::to_string(i) +
             R"(", " y"], "gold": 0, "split": "train"})" + "\n";
  jsonl += R"({"context": "Q:", "choices": [" a", " b"], "gold": 1})" "\n";
  jsonl += R"({"context": "R:", "choices": [" a", " b"], "gold": 1})" "\n";
  const ChoiceTask task = load_choice_task(write_task("shots", jsonl));
  ChoiceOptions o;
  CHECK(choice_prompt(task, 0, o) == "Q:");
  o.shots = 3;
  const std::string p = choice_prompt(task, 0, o);
  CHECK(p == choice_prompt(task, 0, o));  // reproducible
  CHECK(p.size() >= 3 * std::string("T0: x0\n\n").size());
  CHECK(p.substr(p.size() - 4) == "\n\nQ:");
  int shots = 0;
  for (int i = 0; i < 6; ++i) {
    const std::string shot = "T" + std::to_string(i) + ": x" + std::to_string(i) + "\n\n";
    if (p.find(shot) != std::string::npos) ++shots;
  }
  CHECK(shots == 3);  // distinct examples, each with its gold choice
  o.seed = 99;
  bool differs = false;
  for (size_t e = 0; e < 2; ++e) differs = differs || choice_prompt(task, e, o) != p;
  CHECK(differs);
  o.shots = 7;
  CHECK(error_of([&] { choice_prompt(task, 0, o); }) == "shots: 7 shots asked for, the task has 6 train examples");
}

TEST_CASE("downstream: a choice's score is its tokens' log-likelihood after the prompt (cross_entropy agrees)") {
  corpus::Tokenizer tok(kData + "tokenizer-2k.model");
  auto model = tiny_model(0, 3);
  const std::string prompt = "The package installs the";
  const std::vector<std::string> choices = {" documentation", " shared library files", " x"};
  const ChoiceScores s = score_choices(*model, tok, prompt, choices, nn::InferenceRouting::prompt);
  REQUIRE(s.loglik.size() == 3);
  CHECK(s.bytes == std::vector<int64_t>{14, 21, 2});
  corpus::SpecialTokenOptions special = tok.hf_special_tokens();
  special.special_tokens_in_text = false;
  const std::vector<int32_t> context = tok.encode(prompt, special);
  CHECK(s.prompt_tokens == static_cast<int64_t>(context.size()));
  NoGradGuard no_grad;
  for (size_t c = 0; c < choices.size(); ++c) {
    INFO(choices[c]);
    // Independently: the summed cross-entropy of the choice's positions.
    const std::vector<int32_t> all = tok.encode(prompt + choices[c], special);
    REQUIRE(all.size() > context.size());
    const int64_t n = static_cast<int64_t>(all.size());
    std::vector<int64_t> inputs(all.begin(), all.end() - 1), targets;
    for (int64_t t = 1; t < n; ++t)
      targets.push_back(t >= static_cast<int64_t>(context.size()) ? all[static_cast<size_t>(t)] : -100);
    const Tensor logits = model->forward(from_vector(inputs, {1, n - 1}, {DType::i64}));
    const double mean = cross_entropy(logits.reshape({n - 1, 2000}), from_vector(targets, {n - 1}, {DType::i64}))
                            .item();
    const double count = static_cast<double>(all.size() - context.size());
    CHECK(s.loglik[c] == doctest::Approx(-mean * count).epsilon(1e-6));
    CHECK(s.loglik[c] < 0);
  }
}

TEST_CASE("downstream: a prompt longer than the model's context loses its start; the choice's score stays exact") {
  corpus::Tokenizer tok(kData + "tokenizer-2k.model");
  auto model = tiny_model(0, 4);  // max_position_embeddings 64
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "the package " + std::to_string(i) + " ";
  prompt += "is";
  const std::string choice = " installed";
  const ChoiceScores s = score_choices(*model, tok, prompt, {choice, choice}, nn::InferenceRouting::prompt);
  corpus::SpecialTokenOptions special = tok.hf_special_tokens();
  special.special_tokens_in_text = false;
  const std::vector<int32_t> context = tok.encode(prompt, special), all = tok.encode(prompt + choice, special);
  REQUIRE(all.size() > 65);
  // (Both choices the same: the window is the last 65 tokens of each.)
  const int64_t drop = static_cast<int64_t>(all.size()) - 65;
  std::vector<int64_t> inputs(all.begin() + drop, all.end() - 1), targets;
  for (int64_t t = drop + 1; t < static_cast<int64_t>(all.size()); ++t)
    targets.push_back(t >= static_cast<int64_t>(context.size()) ? all[static_cast<size_t>(t)] : -100);
  NoGradGuard no_grad;
  const Tensor logits = model->forward(from_vector(inputs, {1, 64}, {DType::i64}));
  const double mean = cross_entropy(logits.reshape({64, 2000}), from_vector(targets, {64}, {DType::i64})).item();
  const double count = static_cast<double>(all.size() - context.size());
  CHECK(s.loglik[0] == doctest::Approx(-mean * count).epsilon(1e-6));
  CHECK(s.loglik[1] == s.loglik[0]);
}

TEST_CASE("downstream: with prompt-only routing a Lory model scores choices as its export routed by the prompt does") {
  // Paper §3.1: one routing decision from the prompt; the choices cannot
  // change it, so the Lory model is the dense model export_dense makes from
  // the same prompt, for every choice.
  corpus::Tokenizer tok(kData + "tokenizer-2k.model");
  auto lory = tiny_model(4, 5);
  const std::string prompt = "Debian packages are built from source";
  const std::vector<std::string> choices = {" packages", " by the maintainers and uploaded", "."};
  corpus::SpecialTokenOptions special = tok.hf_special_tokens();
  special.special_tokens_in_text = false;
  const std::vector<int32_t> context = tok.encode(prompt, special);
  const std::vector<int64_t> ids(context.begin(), context.end());
  const ChoiceScores a = score_choices(*lory, tok, prompt, choices, nn::InferenceRouting::prompt);
  auto dense = nn::export_dense(*lory, from_vector(ids, {1, static_cast<int64_t>(ids.size())}, {DType::i64}));
  const ChoiceScores b = score_choices(*dense, tok, prompt, choices, nn::InferenceRouting::prompt);
  for (size_t c = 0; c < choices.size(); ++c) CHECK(std::abs(a.loglik[c] - b.loglik[c]) < 1e-9);
  // Segment routing re-routes inside the choices: another model, other scores.
  const ChoiceScores seg = score_choices(*lory, tok, prompt, choices, nn::InferenceRouting::segment);
  CHECK(std::abs(seg.loglik[1] - a.loglik[1]) > 1e-9);
}

TEST_CASE("downstream: accuracy counts argmax choices (ties to the first), with the binomial standard error") {
  corpus::Tokenizer tok(kData + "tokenizer-2k.model");
  auto model = tiny_model(0, 7);
  // Identical choices tie: the first wins, so gold 0 is right and gold 1 wrong.
  std::string jsonl;
  for (int gold : {0, 0, 0, 1})
    jsonl += R"({"context": "A:", "choices": [" same", " same"], "gold": )" + std::to_string(gold) + "}\n";
  const ChoiceTask task = load_choice_task(write_task("ties", jsonl));
  const TaskResult r = evaluate_choice_task(*model, tok, task, {});
  CHECK(r.examples == 4);
  CHECK(r.acc == 0.75);
  CHECK(r.acc_norm == 0.75);
  CHECK(r.correct == std::vector<int>{1, 1, 1, 0});  // per example, in order
  CHECK(r.correct_norm == std::vector<int>{1, 1, 1, 0});
  CHECK(r.acc_stderr == doctest::Approx(std::sqrt(0.75 * 0.25 / 3)));
  ChoiceOptions first_two;
  first_two.max_examples = 2;
  CHECK(evaluate_choice_task(*model, tok, task, first_two).acc == 1.0);
}
