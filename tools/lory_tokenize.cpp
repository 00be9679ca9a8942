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

#include "tools/cli.h"
#include "corpus/encode_corpus.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::corpus;

int main(int argc, char** argv) {
  tools::App app("lory_tokenize",
                 "Trains a BPE tokenizer on corpus JSONL (train), or encodes corpus JSONL into token shards (encode).");
  app.require_subcommand(1);

  CLI::App* train = app.add_subcommand("train", "trains a BPE tokenizer on corpus JSONL");
  TokenizerTrainOptions t;  // its defaults are the options' defaults
  std::string corpus;
  double max_mb = static_cast<double>(t.max_bytes) / 1e6;
  train->add_option("--corpus", corpus, "corpus files (plain or .gz), comma-separated")
      ->type_name("A.jsonl,B.jsonl")
      ->required();
  train->add_option("--vocab-size", t.vocab_size, "vocabulary size")->type_name("N")->check(CLI::PositiveNumber);
  train->add_option("--max-mb", max_mb, "training text budget")->type_name("MB");
  train->add_option("--model-type", t.model_type, "SentencePiece model type")->type_name("bpe|unigram");
  train->add_option("--out", t.model_prefix, "writes PREFIX.model and PREFIX.vocab")->type_name("PREFIX")->required();

  CLI::App* encode = app.add_subcommand("encode", "encodes JSONL files or text folders into token shards");
  EncodeOptions e;
  std::string inputs;
  encode->add_option("--model", e.model, "a SentencePiece .model")->type_name("FILE")->required();
  encode->add_option("--input", inputs, "JSONL files and/or folders of text files, comma-separated")
      ->type_name("A.jsonl,DIR")
      ->required();
  encode->add_option("--out", e.out_prefix, "writes PREFIX-00000.bin, ...")->type_name("PREFIX")->required();
  encode->add_option("--shard-tokens", e.shard_tokens, "tokens per shard")->type_name("N")->check(CLI::PositiveNumber);
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    if (train->parsed()) {
      t.corpus_files = tools::split_commas(corpus);
      t.max_bytes = static_cast<int64_t>(max_mb * 1e6);
      const auto t0 = std::chrono::steady_clock::now();
      const std::string model = train_tokenizer(t);
      std::printf("wrote %s (vocab %lld) in %.1f s\n", model.c_str(), static_cast<long long>(t.vocab_size),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } else {
      e.inputs = tools::split_commas(inputs);
      e.progress = [](const EncodeProgress& p) {
        std::fprintf(stderr, "  %lld documents, %lld tokens, %.0f docs/s, %.1f MB/s\n",
                     static_cast<long long>(p.documents), static_cast<long long>(p.tokens), p.documents / p.seconds,
                     p.bytes / p.seconds / 1e6);
      };
      const EncodeResult r = encode_corpus(e);
      std::printf("%lld documents, %lld tokens (%.2f bytes/token) in %.1f s: %.0f docs/s, %.1f MB/s, %zu shard(s)\n",
                  static_cast<long long>(r.totals.documents), static_cast<long long>(r.totals.tokens),
                  r.totals.tokens ? static_cast<double>(r.totals.bytes) / r.totals.tokens : 0.0, r.totals.seconds,
                  r.totals.documents / std::max(r.totals.seconds, 1e-9),
                  r.totals.bytes / std::max(r.totals.seconds, 1e-9) / 1e6, r.shards.size());
      for (const auto& s : r.shards) std::printf("  %s\n", s.c_str());
    }
  } catch (const std::exception& err) {
    std::fprintf(stderr, "lory_tokenize: %s\n", err.what());
    return 1;
  }
  return 0;
}
