// lory_tokenize — trains a SentencePiece tokenizer on a corpus, or encodes a
// corpus into token shards.
//
//   lory_tokenize train  --corpus data/corpus/train.jsonl --vocab-size 32000 --out data/tok
//   lory_tokenize encode --model data/tok.model --input data/corpus/train.jsonl --out data/shards/train
//
// train writes <out>.model and <out>.vocab (BPE, byte fallback, settings that
// round-trip code exactly: corpus/tokenizer.h). encode writes
// <out>-00000.bin, ... (corpus/token_shard.h) from JSONL files and/or
// folders of text files, printing documents/s and MB/s as it goes.
#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>
#include <thread>

#include "tools/cli.h"
#include "corpus/encode_corpus.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::corpus;

namespace {
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  tools::Cli cli(
      "lory_tokenize " + (command.empty() ? std::string("train|encode") : command),
      "train: trains a BPE tokenizer on corpus JSONL. encode: turns JSONL or text folders into token shards.");
  if (command == "train") {
    cli.option("corpus", "A.jsonl,B.jsonl", "corpus files (plain or .gz)");
    cli.option("vocab-size", "N", "vocabulary size", "32000");
    cli.option("max-mb", "MB", "training text budget", "200");
    cli.option("model-type", "bpe|unigram", "SentencePiece model type", "bpe");
    cli.option("out", "PREFIX", "writes PREFIX.model and PREFIX.vocab");
  } else if (command == "encode") {
    cli.option("model", "FILE", "a SentencePiece .model");
    cli.option("input", "A.jsonl,DIR", "JSONL files and/or folders of text files");
    cli.option("out", "PREFIX", "writes PREFIX-00000.bin, ...");
    cli.option("shard-tokens", "N", "tokens per shard", "1000000000");
  } else if (command != "--help" && command != "-h") {
    std::fprintf(stderr, "usage: lory_tokenize train|encode [options]  (lory_tokenize train --help)\n");
    return 2;
  }
  if (command == "--help" || command == "-h") {
    std::printf(
        "usage: lory_tokenize train|encode [options]\n  train   trains a BPE tokenizer on corpus JSONL\n"
        "  encode  encodes JSONL files or text folders into token shards\n"
        "run 'lory_tokenize train --help' or 'lory_tokenize encode --help' for their options\n");
    return 0;
  }
  if (!cli.parse(argc - 1, argv + 1)) return cli.exit_code();
  try {
    if (command == "train") {
      TokenizerTrainOptions o;
      o.corpus_files = split_commas(cli.require("corpus"));
      o.model_prefix = cli.require("out");
      o.vocab_size = cli.get_int("vocab-size");
      o.max_bytes = static_cast<int64_t>(cli.get_double("max-mb") * 1e6);
      o.model_type = cli.get("model-type");
      const auto t0 = std::chrono::steady_clock::now();
      const std::string model = train_tokenizer(o);
      std::printf("wrote %s (vocab %lld) in %.1f s\n", model.c_str(), static_cast<long long>(o.vocab_size),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } else {
      EncodeOptions o;
      o.model = cli.require("model");
      o.inputs = split_commas(cli.require("input"));
      o.out_prefix = cli.require("out");
      o.shard_tokens = cli.get_int("shard-tokens");
      o.progress = [](const EncodeProgress& p) {
        std::fprintf(stderr, "  %lld documents, %lld tokens, %.0f docs/s, %.1f MB/s\n",
                     static_cast<long long>(p.documents), static_cast<long long>(p.tokens), p.documents / p.seconds,
                     p.bytes / p.seconds / 1e6);
      };
      const EncodeResult r = encode_corpus(o);
      std::printf("%lld documents, %lld tokens (%.2f bytes/token) in %.1f s: %.0f docs/s, %.1f MB/s, %zu shard(s)\n",
                  static_cast<long long>(r.totals.documents), static_cast<long long>(r.totals.tokens),
                  r.totals.tokens ? static_cast<double>(r.totals.bytes) / r.totals.tokens : 0.0, r.totals.seconds,
                  r.totals.documents / std::max(r.totals.seconds, 1e-9),
                  r.totals.bytes / std::max(r.totals.seconds, 1e-9) / 1e6, r.shards.size());
      for (const auto& s : r.shards) std::printf("  %s\n", s.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_tokenize: %s\n", e.what());
    return 1;
  }
  return 0;
}
