// tokenizer.cpp — see tokenizer.h.
#include "corpus/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "corpus/corpus.h"
#include "io/json_text.h"
#include "tensor/error.h"

namespace lory::corpus {

namespace {

// A Hugging Face directory names its SentencePiece model tokenizer.model.
std::string model_file_of(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return (std::filesystem::path(path) / "tokenizer.model").string();
  return path;
}

// add_bos_token / add_eos_token of the tokenizer_config.json beside the
// model, where there is one; keys absent keep LlamaTokenizer's defaults.
// Its other keys (legacy, add_prefix_space, the token strings, ...) are not
// read: encode() is the legacy=True tokenization (see tokenizer.h), and the
// special tokens are the model's own control and unknown pieces.
SpecialTokenOptions read_hf_special_tokens(const std::string& model_path) {
  SpecialTokenOptions options;
  const auto config = std::filesystem::path(model_path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config, ec)) return options;
  std::ifstream in(config);
  LORY_CHECK(in.good(), config.string(), ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = io::parse_json<nlohmann::json>(text.str(), config.string());
  LORY_CHECK(j.is_object(), config.string(), ": expected a JSON object, got ", j.type_name());
  const std::pair<const char*, bool*> keys[] = {{"add_bos_token", &options.add_bos},
                                                {"add_eos_token", &options.add_eos}};
  for (const auto& [key, flag] : keys) {
    if (!j.contains(key) || j[key].is_null()) continue;
    LORY_CHECK(j[key].is_boolean(), config.string(), ": ", key, " must be true or false, got ", io::json_excerpt(j[key]));
    *flag = j[key].get<bool>();
  }
  return options;
}

constexpr const char* kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Whether `bytes` is well-formed UTF-8 (no overlongs, surrogates or code
// points past U+10FFFF), as Rust's String::from_utf8, which HF's ByteFallback
// decoder uses, decides. The table is RFC 3629's: for each range of lead
// bytes, how many continuation bytes follow and the range of the first one
// (the others are 0x80..0xBF).
bool valid_utf8(const std::string& bytes) {
  struct Lead {
    unsigned char lo, hi;  // lead bytes
    int continuations;
    unsigned char second_lo, second_hi;
  };
  static constexpr Lead kLeads[] = {
      {0x00, 0x7F, 0, 0x00, 0x00}, {0xC2, 0xDF, 1, 0x80, 0xBF}, {0xE0, 0xE0, 2, 0xA0, 0xBF},
      {0xE1, 0xEC, 2, 0x80, 0xBF}, {0xED, 0xED, 2, 0x80, 0x9F}, {0xEE, 0xEF, 2, 0x80, 0xBF},
      {0xF0, 0xF0, 3, 0x90, 0xBF}, {0xF1, 0xF3, 3, 0x80, 0xBF}, {0xF4, 0xF4, 3, 0x80, 0x8F}};
  auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  for (size_t i = 0; i < bytes.size();) {
    const Lead* lead = nullptr;
    for (const Lead& l : kLeads)
      if (byte(i) >= l.lo && byte(i) <= l.hi) lead = &l;
    if (lead == nullptr || i + lead->continuations >= bytes.size()) return false;  // not a lead byte; truncated
    for (int k = 1; k <= lead->continuations; ++k) {
      const unsigned char lo = k == 1 ? lead->second_lo : 0x80, hi = k == 1 ? lead->second_hi : 0xBF;
      if (byte(i + k) < lo || byte(i + k) > hi) return false;
    }
    i += 1 + lead->continuations;
  }
  return true;
}

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

Tokenizer::Tokenizer(const std::string& path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_file_of(path)) {
  const auto status = load_model(*sp_, path_);
  LORY_CHECK(status.ok(), path_, ": cannot load SentencePiece model: ", status.ToString());
  hf_options_ = read_hf_special_tokens(path_);
  // HF's special tokens of a LLaMA tokenizer are <unk>, <s> and </s>: the
  // model's unknown and control pieces.
  for (int id = 0; id < sp_->GetPieceSize(); ++id)
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) special_pieces_.emplace_back(sp_->IdToPiece(id), id);
  std::stable_sort(special_pieces_.begin(), special_pieces_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  // With add_dummy_prefix the model turns "a" into "▁a" (or "▁", "a"); without, "a" stays "a".
  std::vector<std::string> pieces;
  LORY_CHECK(sp_->Encode("a", &pieces).ok(), path_, ": cannot encode \"a\"");
  dummy_prefix_ = !pieces.empty() && pieces[0].rfind(kSpaceSymbol, 0) == 0;
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  LORY_CHECK(status.ok(), path_, ": encode failed: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

// HF's slow LlamaTokenizer (legacy=True) tokenizes as PreTrainedTokenizer
// does: its added-token trie cuts the text at every special-token string
// (leftmost first; none of LLaMA's is a prefix of another, and we take the
// longest at a position), empty pieces between are dropped, and every other
// piece goes to sp_model.encode on its own — so each gets a dummy-prefix
// space: "before <s> after" -> "▁before", "▁", <s>, "▁", "▁after". Then
// build_inputs_with_special_tokens puts BOS before and EOS after.
std::vector<int32_t> Tokenizer::encode(const std::string& text, const SpecialTokenOptions& options) const {
  // A model without <s> or </s> (id -1) gets nothing added, as HF adds
  // nothing for a bos_token of None.
  std::vector<int32_t> ids;
  if (options.add_bos && bos_id() >= 0) ids.push_back(bos_id());
  auto encode_piece = [&](size_t begin, size_t end) {
    if (end == begin) return;
    const std::vector<int32_t> piece = encode(text.substr(begin, end - begin));
    ids.insert(ids.end(), piece.begin(), piece.end());
  };
  size_t start = 0;  // the text not yet encoded begins here
  if (options.special_tokens_in_text) {
    for (size_t i = 0; i < text.size();) {
      const std::pair<std::string, int32_t>* match = nullptr;
      for (const auto& special : special_pieces_)
        if (text.compare(i, special.first.size(), special.first) == 0) {
          match = &special;
          break;
        }
      if (match == nullptr) {
        ++i;
        continue;
      }
      encode_piece(start, i);
      ids.push_back(match->second);
      i += match->first.size();
      start = i;
    }
  }
  encode_piece(start, text.size());
  if (options.add_eos && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  LORY_CHECK(status.ok(), path_, ": decode failed: ", status.ToString());
  return text;
}

// HF's LlamaTokenizerFast decoder, step by step (tokenizer.json "decoder":
// Replace "▁" -> " ", ByteFallback, Fuse, Strip one leading " "), on the ids
// left after dropping the special ones.
std::string Tokenizer::decode_skipping_special(const std::vector<int32_t>& ids) const {
  std::string text, bytes;  // bytes: the current run of byte pieces
  auto flush_bytes = [&] {
    if (valid_utf8(bytes)) {
      text += bytes;
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) text += "\xEF\xBF\xBD";  // U+FFFD per byte
    }
    bytes.clear();
  };
  for (const int32_t id : ids) {
    LORY_CHECK(id >= 0 && id < sp_->GetPieceSize(), path_, ": decode: id ", id, " is outside the vocabulary of ",
               sp_->GetPieceSize());
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) continue;
    const std::string& piece = sp_->IdToPiece(id);
    if (sp_->IsByte(id)) {  // "<0xAB>"
      bytes.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      continue;
    }
    flush_bytes();
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, kSpaceSymbol) == 0) {
        text += ' ';
        i += 3;
      } else {
        text += piece[i++];
      }
    }
  }
  flush_bytes();
  if (dummy_prefix_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
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
