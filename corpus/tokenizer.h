// tokenizer.h — SentencePiece tokenizers: load any .model (the LLaMA
// tokenizer a user brings), and train our own BPE on a corpus.
//
// Our models are trained so that decode(encode(text)) == text for every
// text, code included: no normalisation (identity rule), whitespace kept as
// it is (no collapsing, whitespace-only pieces allowed), digits split (as
// LLaMA does), and byte fallback, so a character never seen in training
// still round-trips as its UTF-8 bytes. Newlines are not in any piece;
// they encode as the byte token <0x0A>, as in LLaMA's tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lory::corpus {

class Tokenizer {
 public:
  // Loads a SentencePiece .model; throws naming the file.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> encode(const std::string& text) const;  // no BOS/EOS added
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  const std::string& path() const { return path_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

struct TokenizerTrainOptions {
  std::vector<std::string> corpus_files;  // JSONL corpora (plain or .gz); their "text" fields are the input
  std::string model_prefix;               // writes <prefix>.model and <prefix>.vocab
  int64_t vocab_size = 32000;
  int64_t max_bytes = 200'000'000;  // training text budget (documents in file order until reached)
  int threads = 0;                  // 0: all cores
  std::string model_type = "bpe";   // bpe or unigram
};

// Trains a tokenizer; returns the .model path. Throws with SentencePiece's message on failure.
std::string train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace lory::corpus
