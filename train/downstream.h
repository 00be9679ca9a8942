// downstream.h — in-context multiple-choice evaluation (paper Table 1): a
// model reads a context and each candidate continuation, and picks the
// continuation it finds most likely, as lm-evaluation-harness scores its
// multiple-choice tasks (PIQA, HellaSwag, ARC, BoolQ, SST-2, ...).
//
// Task files are JSONL, one example a line:
//   {"context": "Question: ...\nAnswer:", "choices": [" yes", " no"], "gold": 0}
// with an optional "split": "train" (examples k-shot prompts are drawn from)
// or "test" (the default: the examples scored). A choice usually starts with
// the space that separates it from the context, as in the harness.
//
// Scoring one example with k shots: the prompt is k train examples drawn
// with a seed (each its context and gold choice, joined by `separator`),
// then the example's context. For each choice the score is
//   loglik = Σ log p(choice token | prompt, earlier choice tokens)
// over the tokens of the choice, tokenized as the harness does: the
// continuation's tokens are those encode(prompt + choice) has after
// encode(prompt)'s. acc counts the examples whose gold choice has the
// highest loglik; acc_norm the ones whose gold choice has the highest
// loglik per byte of the choice (the harness's length normalisation).
// Lory layers route once from the prompt (paper §3.1, prompt-only routing):
// the choices never influence the merged experts, so every choice is scored
// by the same model. The choices of an example run as one right-padded
// batch. When the prompt and a choice exceed max_position_embeddings, the
// prompt loses its first tokens, as many for every choice (what the longest
// one needs), where the harness cuts each choice's window on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "corpus/tokenizer.h"
#include "nn/lory_lm.h"

namespace lory::train {

struct ChoiceExample {
  std::string context;
  std::vector<std::string> choices;
  int64_t gold = 0;  // index into choices
};

struct ChoiceTask {
  std::string name;                  // the file's stem
  std::vector<ChoiceExample> test;   // scored
  std::vector<ChoiceExample> train;  // the k-shot pool
};

// Reads a task file; a bad line throws naming the file, the line and the field.
ChoiceTask load_choice_task(const std::string& path);

struct ChoiceOptions {
  int64_t shots = 0;                  // k train examples before each test example
  uint64_t seed = 1234;               // draws the shots (per example, reproducibly)
  std::string separator = "\n\n";     // between shots, and before the example
  int64_t max_examples = 0;           // score the first n test examples (0: all)
  nn::InferenceRouting routing = nn::InferenceRouting::prompt;  // how Lory layers route
};

// The text a test example's choices continue: k shots, then its context.
std::string choice_prompt(const ChoiceTask& task, size_t example, const ChoiceOptions& options);

struct ChoiceScores {
  std::vector<double> loglik;       // per choice
  std::vector<int64_t> bytes;       // per choice: its length in bytes
  int64_t prompt_tokens = 0;
};
// The log-likelihood of each choice after `prompt` (BOS first when the
// tokenizer's Hugging Face settings add one).
ChoiceScores score_choices(nn::LoryLM& model, const corpus::Tokenizer& tokenizer, const std::string& prompt,
                           const std::vector<std::string>& choices, nn::InferenceRouting routing);

struct TaskResult {
  std::string task;
  int64_t examples = 0, shots = 0;
  double acc = 0, acc_stderr = 0;            // fraction right; its standard error sqrt(p(1-p)/(n-1))
  double acc_norm = 0, acc_norm_stderr = 0;  // the same with loglik per byte
  // Per test example, in order: 1 if the choice picked was the gold one (for
  // paired comparisons of two models on the same examples).
  std::vector<int> correct, correct_norm;
};

TaskResult evaluate_choice_task(nn::LoryLM& model, const corpus::Tokenizer& tokenizer, const ChoiceTask& task,
                                const ChoiceOptions& options);

}  // namespace lory::train
