// tokenizer.h — SentencePiece tokenizers: load any .model (the LLaMA
// tokenizer a user brings), and train our own BPE on a corpus.
//
// Our models are trained so that decode(encode(text)) == text for every
// text, code included: no normalisation (identity rule), whitespace kept as
// it is (no collapsing, whitespace-only pieces allowed), digits split (as
// LLaMA does), and byte fallback, so a character never seen in training
// still round-trips as its UTF-8 bytes. Newlines are not in any piece;
// they encode as the byte token <0x0A>, as in LLaMA's tokenizer.
//
// For a model's prompt, encode(text, SpecialTokenOptions) and
// decode_skipping_special() do what Hugging Face's LLaMA tokenizer does
// (BOS/EOS, "<s>" typed in the text, skipping special tokens on decode),
// with add_bos_token / add_eos_token from a tokenizer_config.json beside the
// .model; encode(text) and decode() stay plain SentencePiece.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lory::corpus {

// What Hugging Face's LLaMA tokenizer adds around the pieces of a text.
// The defaults are LlamaTokenizer's (add_bos_token true, add_eos_token
// false); a Tokenizer reads them from the tokenizer_config.json beside its
// .model when there is one (Tokenizer::hf_special_tokens()).
struct SpecialTokenOptions {
  bool add_bos = true;   // prepend <s> (bos_id)
  bool add_eos = false;  // append </s> (eos_id)
  // "<s>", "</s>" and "<unk>" typed in the text become those tokens, as in
  // HF's tokenizer(text) (split_special_tokens=False); false encodes them as
  // the characters they are.
  bool special_tokens_in_text = true;
};

class Tokenizer {
 public:
  // Loads a SentencePiece model: `path` is a .model file, or a directory
  // holding tokenizer.model (a Hugging Face model or tokenizer directory).
  // If the directory of the .model has a tokenizer_config.json, its
  // add_bos_token / add_eos_token (when present) set hf_special_tokens().
  // Throws naming the file.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // The pieces of the text only: no BOS/EOS, and special-token text ("<s>")
  // encoded as plain characters. What the corpus encoder and evaluation use.
  std::vector<int32_t> encode(const std::string& text) const;
  // As Hugging Face's LlamaTokenizer (legacy=True, LLaMA-2's): the text is
  // cut at special-token text (when options.special_tokens_in_text), each
  // piece between encoded by SentencePiece (each with its own dummy-prefix
  // space), BOS/EOS added per the options. Equal, id for id, to
  // transformers' tokenizer(text)["input_ids"] (tests/test_tokenizer.cpp).
  // A tokenizer_config.json "legacy": false is not followed: HF's
  // non-legacy mode differs only right after special-token text (no dummy
  // prefix there) and for text that begins with U+2581.
  std::vector<int32_t> encode(const std::string& text, const SpecialTokenOptions& options) const;
  // The options a prompt is encoded with: HF's defaults, or tokenizer_config.json's.
  const SpecialTokenOptions& hf_special_tokens() const { return hf_options_; }

  // SentencePiece's decoding: control tokens (<s>, </s>) give nothing, <unk>
  // gives " ⁇ ", and the first piece loses its dummy-prefix space.
  std::string decode(const std::vector<int32_t>& ids) const;
  // As Hugging Face's decode(ids, skip_special_tokens=True) (LlamaTokenizerFast,
  // and transformers 5's LlamaTokenizer): <unk>, <s> and </s> are dropped,
  // pieces joined with U+2581 as a space, runs of byte pieces turned into their
  // bytes (U+FFFD per byte when they are not valid UTF-8), and one leading
  // space removed if the model adds a dummy prefix. So decoding encode(text,
  // options) gives the text back, unless it holds special-token text
  // (dropped) or U+2581 (a space once encoded).
  std::string decode_skipping_special(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  const std::string& path() const { return path_; }  // the .model file

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  SpecialTokenOptions hf_options_;
  bool dummy_prefix_ = true;  // the model prepends U+2581 to the text (normalizer_spec.add_dummy_prefix)
  // The text of the special pieces (<unk>, <s>, </s>: unknown and control
  // pieces), longest first, with their ids.
  std::vector<std::pair<std::string, int32_t>> special_pieces_;
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
