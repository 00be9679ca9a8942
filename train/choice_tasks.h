// choice_tasks.h — making multiple-choice tasks (train/downstream.h's
// format): from a held-out corpus, offline, and from the public releases of
// the usual benchmarks, prompted as lm-evaluation-harness prompts them.
//
// From a corpus (documents with a domain), two task families of the paper's
// Table 1 kind:
//   continuation  HellaSwag-like: a passage's opening, and its true next
//                 words among the words at the same place in other documents
//                 of the same domain (so the domain does not give it away);
//   domain        in-context text classification: "Text: ...\nDomain:",
//                 one choice per domain of the corpus.
// Every cut falls before a space, so every choice starts with one, as the
// harness's choices do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "corpus/corpus.h"
#include "train/downstream.h"

namespace lory::train {

struct CorpusTaskOptions {
  int64_t test_examples = 500;
  int64_t train_examples = 50;      // the k-shot pool (documents not used by test examples)
  int64_t context_bytes = 400;      // about this much of the opening (cut before a space)
  int64_t continuation_bytes = 80;  // continuation: about this much of what follows
  int64_t choices = 4;              // continuation: the true one and choices - 1 from other documents
  uint64_t seed = 1;
};

ChoiceTask continuation_task(const std::vector<corpus::CorpusLine>& documents, const CorpusTaskOptions& options);
ChoiceTask domain_task(const std::vector<corpus::CorpusLine>& documents, const CorpusTaskOptions& options);

// A public release in its own format -> our format, prompted as the harness
// prompts it. `format`: hellaswag (its .jsonl), piqa (.jsonl, with the
// labels file as `labels`), arc (ARC-*.jsonl), boolq (SuperGLUE .jsonl),
// sst2 (GLUE's dev.tsv). Errors name the file, the line and the field.
ChoiceTask convert_public_task(const std::string& format, const std::string& path, const std::string& labels = "");
std::vector<std::string> public_task_formats();

// Writes a task as JSONL (train examples first, marked "split": "train"), atomically.
void write_choice_task(const ChoiceTask& task, const std::string& path);

}  // namespace lory::train
