// lory_tasks — multiple-choice tasks for `lory_eval --tasks` (the format is
// train/downstream.h's; how they are made, train/choice_tasks.h):
//
//   lory_tasks build --corpus data/main/corpus/valid.jsonl --kind continuation --out tasks/continuation.jsonl
//   lory_tasks build --corpus data/main/corpus/valid.jsonl --kind domain --out tasks/domain.jsonl
//   lory_tasks convert --format hellaswag --input hellaswag_val.jsonl [--train hellaswag_train.jsonl] --out hellaswag.jsonl
//   lory_tasks convert --format piqa --input valid.jsonl --labels valid-labels.lst --out piqa.jsonl
//
// `build` makes tasks offline from a held-out corpus (a HellaSwag-like
// continuation task and in-context domain classification); `convert` turns
// the public release of a benchmark you have (arc, boolq, hellaswag, piqa,
// sst2) into the format, prompted as lm-evaluation-harness prompts it;
// --train adds the release's train file as the k-shot pool.
#include <cstdio>
#include <exception>

#include "corpus/corpus.h"
#include "tools/cli.h"
#include "train/choice_tasks.h"

using namespace lory;

int main(int argc, char** argv) {
  tools::App app("lory_tasks", "Makes multiple-choice tasks for lory_eval --tasks: from a corpus, or from a benchmark.");
  app.require_subcommand(1);
  std::string corpus_path, kind = "continuation", out, format, input, labels, train_input, train_labels;
  train::CorpusTaskOptions o;
  CLI::App* build = app.add_subcommand("build", "tasks from a held-out corpus JSONL (text and domain per line)");
  build->add_option("--corpus", corpus_path, "corpus JSONL (plain or compressed)")->type_name("FILE")->required();
  build->add_option("--kind", kind, "continuation (HellaSwag-like) or domain (text classification)")
      ->type_name("KIND")
      ->check(CLI::IsMember({"continuation", "domain"}));
  build->add_option("--examples", o.test_examples, "test examples")->type_name("N")->check(CLI::PositiveNumber);
  build->add_option("--train-examples", o.train_examples, "examples of the k-shot pool")->type_name("N");
  build->add_option("--context-bytes", o.context_bytes, "about how much of each opening")->type_name("B");
  build->add_option("--continuation-bytes", o.continuation_bytes, "about how long each continuation")->type_name("B");
  build->add_option("--choices", o.choices, "continuation: choices per example")->type_name("N");
  build->add_option("--seed", o.seed, "seed of the documents and distractors drawn")->type_name("S");
  build->add_option("--out", out, "the task file to write")->type_name("FILE")->required();
  CLI::App* convert = app.add_subcommand("convert", "a benchmark's public release into the task format");
  convert->add_option("--format", format, "arc, boolq, hellaswag, piqa or sst2")
      ->type_name("FORMAT")
      ->required()
      ->check(CLI::IsMember(train::public_task_formats()));
  convert->add_option("--input", input, "the release's evaluation file (its test or validation split)")
      ->type_name("FILE")
      ->required();
  convert->add_option("--labels", labels, "piqa: the labels file of --input")->type_name("FILE");
  convert->add_option("--train", train_input, "the release's train file: the k-shot pool")->type_name("FILE");
  convert->add_option("--train-labels", train_labels, "piqa: the labels file of --train")->type_name("FILE");
  convert->add_option("--out", out, "the task file to write")->type_name("FILE")->required();
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    train::ChoiceTask task;
    if (build->parsed()) {
      const std::vector<corpus::CorpusLine> docs = corpus::read_corpus_jsonl(corpus_path);
      task = kind == "continuation" ? train::continuation_task(docs, o) : train::domain_task(docs, o);
    } else {
      task = train::convert_public_task(format, input, labels);
      if (!train_input.empty()) task.train = train::convert_public_task(format, train_input, train_labels).test;
    }
    train::write_choice_task(task, out);
    std::printf("wrote %s: %zu test and %zu train examples\n", out.c_str(), task.test.size(), task.train.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_tasks: %s\n", e.what());
    return 1;
  }
  return 0;
}
