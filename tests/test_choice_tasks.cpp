// train/choice_tasks.h: multiple-choice tasks made from a corpus, and from
// the public releases of benchmarks (prompted as lm-evaluation-harness does).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/errors.h"
#include "train/choice_tasks.h"

using namespace lory;
using namespace lory::train;
using lory::test::error_of;

namespace {

std::string temp_file(const std::string& name, const std::string& contents) {
  const auto dir = std::filesystem::temp_directory_path() / "lory_choice_tasks_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << contents;
  return path;
}

// 12 documents per domain, each its own words, so every span is traceable to its document.
std::vector<corpus::CorpusLine> synthetic_corpus() {
  std::vector<corpus::CorpusLine> docs;
  for (const char* domain : {"alpha", "beta", "gamma"})
    for (int d = 0; d < 12; ++d) {
      std::string text;
      for (int w = 0; w < 60; ++w) text += (w ? " " : "") + std::string(domain) + std::to_string(d) + "w" + std::to_string(w);
      docs.push_back({text, domain, "test"});
    }
  docs.push_back({"short", "alpha", "test"});  // too short to use
  return docs;
}

}  // namespace

TEST_CASE("choice tasks: a continuation example is a document's opening, its true next words, and same-domain distractors") {
  const std::vector<corpus::CorpusLine> docs = synthetic_corpus();
  CorpusTaskOptions o;
  o.test_examples = 20;
  o.train_examples = 5;
  o.context_bytes = 100;
  o.continuation_bytes = 30;
  o.choices = 4;
  const ChoiceTask task = continuation_task(docs, o);
  REQUIRE(task.test.size() == 20);
  REQUIRE(task.train.size() == 5);
  std::set<std::string> contexts;
  std::set<int64_t> golds;
  for (const ChoiceExample& e : task.test) {
    REQUIRE(e.choices.size() == 4);
    contexts.insert(e.context);
    golds.insert(e.gold);
    // The document this opening comes from: the gold choice is what follows it there.
    const corpus::CorpusLine* doc = nullptr;
    for (const auto& d : docs)
      if (d.text.rfind(e.context, 0) == 0) doc = &d;
    REQUIRE(doc != nullptr);
    CHECK(doc->text.compare(e.context.size(), e.choices[static_cast<size_t>(e.gold)].size(),
                            e.choices[static_cast<size_t>(e.gold)]) == 0);
    CHECK(e.context.size() <= 100);
    for (size_t c = 0; c < e.choices.size(); ++c) {
      CHECK(e.choices[c][0] == ' ');  // every cut is before a space
      CHECK(e.choices[c].back() != ' ');
      if (static_cast<int64_t>(c) == e.gold) continue;
      // A distractor: another document's words, of the same domain.
      CHECK(e.choices[c].substr(1, doc->domain.size()) == doc->domain);
      CHECK(doc->text.find(e.choices[c]) == std::string::npos);
    }
  }
  CHECK(contexts.size() == 20);  // 20 different documents
  CHECK(golds.size() > 1);       // the right answer moves around
  // Reproducible from the seed; another seed, other examples.
  CHECK(continuation_task(docs, o).test[3].context == task.test[3].context);
  o.seed = 2;
  CHECK(continuation_task(docs, o).test[0].context != task.test[0].context);
  o.test_examples = 40;
  CHECK(error_of([&] { continuation_task(docs, o); }).find("36 documents hold 100 + 30 bytes, 45 are needed") !=
        std::string::npos);
}

TEST_CASE("choice tasks: domain classification is balanced over the domains, one choice per domain") {
  CorpusTaskOptions o;
  o.test_examples = 9;
  o.train_examples = 3;
  o.context_bytes = 60;
  const ChoiceTask task = domain_task(synthetic_corpus(), o);
  REQUIRE(task.test.size() == 9);
  int per_domain[3] = {0, 0, 0};
  for (const ChoiceExample& e : task.test) {
    CHECK(e.choices == std::vector<std::string>{" alpha", " beta", " gamma"});
    CHECK(e.context.rfind("Text: ", 0) == 0);
    CHECK(e.context.substr(e.context.size() - 8) == "\nDomain:");
    // The text is from a document of the gold domain.
    CHECK(e.context.substr(6, e.choices[static_cast<size_t>(e.gold)].size() - 1) ==
          e.choices[static_cast<size_t>(e.gold)].substr(1));
    ++per_domain[e.gold];
  }
  CHECK(per_domain[0] == 3);
  CHECK(per_domain[1] == 3);
  CHECK(per_domain[2] == 3);
}

TEST_CASE("choice tasks: a written task reads back as it was") {
  CorpusTaskOptions o;
  o.test_examples = 4;
  o.train_examples = 2;
  o.context_bytes = 50;
  o.continuation_bytes = 20;
  const ChoiceTask task = continuation_task(synthetic_corpus(), o);
  const std::string path = temp_file("roundtrip.jsonl", "");
  write_choice_task(task, path);
  const ChoiceTask back = load_choice_task(path);
  REQUIRE(back.test.size() == 4);
  REQUIRE(back.train.size() == 2);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(back.test[i].context == task.test[i].context);
    CHECK(back.test[i].choices == task.test[i].choices);
    CHECK(back.test[i].gold == task.test[i].gold);
  }
  CHECK(back.train[1].context == task.train[1].context);
}

TEST_CASE("choice tasks: public releases convert to the harness's prompts (hellaswag, piqa, arc, boolq, sst2)") {
  // HellaSwag: activity label, ctx_a and ctx_b capitalised, [title] and tags cleaned.
  const ChoiceTask hs = convert_public_task(
      "hellaswag",
      temp_file("hs.jsonl",
                R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off [title] Remove the [step] shingles", " a   b [title] c [x]  d\n", "starts pulling up roofing on a roof."], "label": 3})"
                "\n"));
  REQUIRE(hs.test.size() == 1);
  CHECK(hs.test[0].context == "Roof shingle removal: A man is sitting on a roof. He");
  CHECK(hs.test[0].choices[1] == " is ripping level tiles off. Remove the shingles");
  CHECK(hs.test[0].choices[3] == " starts pulling up roofing on a roof.");
  // What Python's preprocess gives for odd spacing (checked with Python 3.11).
  CHECK(hs.test[0].choices[2] == " a  b. c  d");
  CHECK(hs.test[0].gold == 3);
  // PIQA: the labels come from their own file.
  const ChoiceTask piqa = convert_public_task(
      "piqa", temp_file("piqa.jsonl", R"({"goal": "How do I open a jar?", "sol1": "Twist the lid.", "sol2": "Eat it."})" "\n"),
      temp_file("piqa-labels.lst", "0\n"));
  CHECK(piqa.test[0].context == "Question: How do I open a jar?\nAnswer:");
  CHECK(piqa.test[0].choices == std::vector<std::string>{" Twist the lid.", " Eat it."});
  CHECK(piqa.test[0].gold == 0);
  // ARC: the answer key names a choice label.
  const ChoiceTask arc = convert_public_task(
      "arc",
      temp_file("arc.jsonl",
                R"({"id": "x", "question": {"stem": "Which is a gas?", "choices": [{"text": "ice", "label": "A"}, {"text": "steam", "label": "B"}, {"text": "rock", "label": "C"}]}, "answerKey": "B"})"
                "\n"));
  CHECK(arc.test[0].context == "Question: Which is a gas?\nAnswer:");
  CHECK(arc.test[0].choices == std::vector<std::string>{" ice", " steam", " rock"});
  CHECK(arc.test[0].gold == 1);
  // BoolQ (SuperGLUE's "label"; the original release's "answer" too).
  const ChoiceTask boolq = convert_public_task(
      "boolq", temp_file("boolq.jsonl", R"({"question": "is the sky blue", "passage": "The sky is blue.", "idx": 0, "label": true})"
                                        "\n"
                                        R"({"question": "is ice hot", "passage": "Ice is cold.", "answer": false})"
                                        "\n"));
  CHECK(boolq.test[0].context == "The sky is blue.\nQuestion: is the sky blue?\nAnswer:");
  CHECK(boolq.test[0].choices == std::vector<std::string>{" no", " yes"});
  CHECK(boolq.test[0].gold == 1);
  CHECK(boolq.test[1].gold == 0);
  // SST-2: GLUE's dev.tsv with its header.
  const ChoiceTask sst2 =
      convert_public_task("sst2", temp_file("dev.tsv", "sentence\tlabel\nit 's a charming journey . \t1\n"));
  CHECK(sst2.test[0].context ==
        "it 's a charming journey . \nQuestion: Is this sentence positive or negative?\nAnswer:");
  CHECK(sst2.test[0].gold == 1);
  // Errors name the file, the line and the field.
  const std::string bad = temp_file("bad-arc.jsonl", R"({"question": {"stem": "?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "E"})" "\n");
  CHECK(error_of([&] { convert_public_task("arc", bad); }) == bad + ":1: answerKey \"E\" names no choice");
  CHECK(error_of([] { convert_public_task("mmlu", "x"); }) ==
        "unknown task format 'mmlu'; formats: arc, boolq, hellaswag, piqa, sst2");
}
