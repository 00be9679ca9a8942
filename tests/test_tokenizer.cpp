// Tokenizer (corpus/tokenizer.h): exact round trips on every domain of
// the fixture with a committed 2k BPE model (tests/data/tokenizer-2k.model,
// trained by train_tokenizer on the fixture's train split), and training.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "tensor/error.h"
#include "corpus/corpus.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::corpus;

namespace {
const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";
}

TEST_CASE("tokenizer: decode(encode(text)) == text on every document of every domain of the fixture") {
  Tokenizer tok(kData + "tokenizer-2k.model");
  CHECK(tok.vocab_size() == 2000);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  std::map<std::string, int> docs;
  for (const char* split : {"train", "valid", "test"}) {
    for (const auto& line : read_corpus_jsonl(kData + "corpus/" + split + ".jsonl.gz")) {
      const std::vector<int32_t> ids = tok.encode(line.text);
      CHECK_MESSAGE(tok.decode(ids) == line.text, line.source);
      CHECK((!ids.empty() && *std::min_element(ids.begin(), ids.end()) >= 0 &&
             *std::max_element(ids.begin(), ids.end()) < 2000));
      ++docs[line.domain];
    }
  }
  CHECK(docs.size() == 8);
  // What defaults would destroy: runs of spaces, tabs, newlines, characters never seen.
  for (const std::string text : {"  def f(x):\n\treturn x  # two  spaces\n\n\n",
                                 "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "123456789", " leading and trailing "})
    CHECK(tok.decode(tok.encode(text)) == text);
  // Digits are split one per token, as in LLaMA.
  CHECK(tok.encode("2024").size() >= 4);
}

TEST_CASE("tokenizer: train_tokenizer trains a BPE model of the requested size that round-trips") {
  const auto dir = std::filesystem::temp_directory_path() / "lory_tok_test";
  std::filesystem::create_directories(dir);
  TokenizerTrainOptions o;
  o.corpus_files = {kData + "corpus/valid.jsonl.gz"};
  o.model_prefix = (dir / "tiny").string();
  o.vocab_size = 400;
  o.threads = 2;
  const std::string model = train_tokenizer(o);
  Tokenizer tok(model);
  CHECK(tok.vocab_size() == 400);
  for (const auto& line : read_corpus_jsonl(kData + "corpus/test.jsonl.gz"))
    CHECK(tok.decode(tok.encode(line.text)) == line.text);
  o.vocab_size = 100;
  CHECK_THROWS_WITH_AS(train_tokenizer(o), doctest::Contains("vocab_size 100 is too small"), Error);
  CHECK_THROWS_WITH_AS(Tokenizer((dir / "missing.model").string()),
                       doctest::Contains("cannot load SentencePiece model"), Error);
  std::filesystem::remove_all(dir);
}
