// tokenizer.cpp — see tokenizer.h.
#include "corpus/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <thread>
#include <unordered_map>

#include "tensor/error.h"
#include "corpus/corpus.h"

namespace lory::corpus {

namespace {

// SentencePiece reports most bad files through its status, but reads the
// file with an ifstream that throws std::ios_base::failure on a directory:
// that is turned into a status too, so every error names the file.
sentencepiece::util::Status load_model(sentencepiece::SentencePieceProcessor& sp, const std::string& path) {
  try {
    return sp.Load(path);
  } catch (const std::exception& e) {
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, e.what());
  }
}

}  // namespace

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  const auto status = load_model(*sp_, model_path);
  LORY_CHECK(status.ok(), model_path, ": cannot load SentencePiece model: ", status.ToString());
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  LORY_CHECK(status.ok(), path_, ": encode failed: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  LORY_CHECK(status.ok(), path_, ": decode failed: ", status.ToString());
  return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }

namespace {

// Feeds SentencePiece the lines of the corpus documents (its unit of
// training text), skipping empty ones, until the byte budget is reached.
class CorpusLines : public sentencepiece::SentenceIterator {
 public:
  CorpusLines(const std::vector<std::string>& files, int64_t max_bytes) {
    for (const auto& f : files) {
      for (const auto& doc : read_corpus_jsonl(f)) {
        size_t start = 0;
        while (start <= doc.text.size() && budget_ < max_bytes) {
          const size_t end = std::min(doc.text.find('\n', start), doc.text.size());
          if (end > start) {
            lines_.push_back(doc.text.substr(start, end - start));
            budget_ += static_cast<int64_t>(end - start);
          }
          start = end + 1;
        }
        if (budget_ >= max_bytes) return;
      }
    }
  }
  bool done() const override { return index_ >= lines_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return lines_[index_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }
  size_t count() const { return lines_.size(); }

 private:
  std::vector<std::string> lines_;
  size_t index_ = 0;
  int64_t budget_ = 0;
};

}  // namespace

std::string train_tokenizer(const TokenizerTrainOptions& o) {
  LORY_CHECK(!o.corpus_files.empty(), "train_tokenizer: no corpus files given");
  LORY_CHECK(!o.model_prefix.empty(), "train_tokenizer: no model prefix given");
  LORY_CHECK(o.vocab_size >= 300, "train_tokenizer: vocab_size ", o.vocab_size,
             " is too small (byte fallback alone needs 256 pieces + specials)");
  CorpusLines lines(o.corpus_files, o.max_bytes);
  LORY_CHECK(lines.count() > 0, "train_tokenizer: the corpus files have no text");
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::unordered_map<std::string, std::string> args = {
      {"model_prefix", o.model_prefix},
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "0.9995"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", std::to_string(threads)},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", "1"},
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines);
  LORY_CHECK(status.ok(), "train_tokenizer: SentencePiece failed: ", status.ToString());
  return o.model_prefix + ".model";
}

}  // namespace lory::corpus
