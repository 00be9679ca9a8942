// encode_corpus.h — corpus text -> token shards, streaming and in parallel.
//
// Inputs are JSONL corpus files (plain or compressed) or folders of plain
// text files (one document per file, the domain being the file's top-level
// subfolder). Documents are read in order, a batch at a time, tokenised on
// all cores, and appended to shards in input order, so the output does not
// depend on the thread count and memory stays at one batch however large
// the corpus is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lory::corpus {

struct EncodeProgress {
  int64_t documents = 0, tokens = 0, bytes = 0;
  double seconds = 0;
};

struct EncodeOptions {
  std::string model;                     // SentencePiece .model
  std::vector<std::string> inputs;       // JSONL files and/or text folders
  std::string out_prefix;                // shards are <out_prefix>-00000.bin, -00001.bin, ...
  int64_t shard_tokens = 1'000'000'000;  // a new shard starts after this many tokens
  int64_t batch_documents = 256;
  std::string default_domain = "text";  // for text files directly inside a folder
  std::function<void(const EncodeProgress&)> progress = [](const EncodeProgress&) {};
};

struct EncodeResult {
  std::vector<std::string> shards;
  EncodeProgress totals;
};

EncodeResult encode_corpus(const EncodeOptions& options);

}  // namespace lory::corpus
