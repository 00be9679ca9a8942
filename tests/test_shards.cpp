// Token shards (corpus/token_shard.h) and corpus encoding
// (corpus/encode_corpus.h): round trips, every validation error, and
// encoding the fixture into shards that decode back to the corpus.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "corpus/corpus.h"
#include "corpus/encode_corpus.h"
#include "corpus/token_shard.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::corpus;

namespace {

const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";

std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lory_shard_test_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string shard_error(const std::string& path, int64_t vocab = 0) {
  try {
    ShardReader r(path, vocab);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

void patch(const std::string& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("shards: documents, tokens and domains round-trip, with 2- and 4-byte tokens") {
  const auto dir = fresh_dir("roundtrip");
  for (const int64_t vocab : {int64_t{1000}, int64_t{70000}}) {
    const std::string path = (dir / ("s" + std::to_string(vocab) + ".bin")).string();
    const std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {}, {static_cast<int32_t>(vocab - 1), 0}, {7}};
    const std::vector<std::string> domains = {"web", "books", "web", "code-c"};
    {
      ShardWriter w(path, vocab);
      for (size_t i = 0; i < docs.size(); ++i) w.add(docs[i], domains[i]);
      CHECK(w.num_tokens() == 6);
      w.close();
    }
    ShardReader r(path, vocab);
    CHECK(r.token_bytes() == (vocab <= 65536 ? 2 : 4));
    CHECK(r.vocab_size() == vocab);
    CHECK(r.num_documents() == 4);
    CHECK(r.num_tokens() == 6);
    CHECK(r.domains() == std::vector<std::string>{"web", "books", "code-c"});
    for (int64_t d = 0; d < 4; ++d) {
      CHECK(r.domains()[r.doc_domain(d)] == domains[d]);
      std::vector<int32_t> got(r.doc_length(d));
      r.read_tokens(r.doc_start(d), r.doc_length(d), got.data());
      CHECK(got == docs[d]);
    }
    CHECK(r.token(5) == 7);
  }
  ShardWriter w((dir / "bad.bin").string(), 10);
  CHECK_THROWS_WITH_AS(w.add({3, 10}, "web"),
                       doctest::Contains("token 10 of document 0 is outside the vocabulary of 10"), Error);
}

TEST_CASE(
    "shards: truncated, foreign, wrong-version, mismatched and corrupt files are refused with the problem named") {
  const auto dir = fresh_dir("errors");
  const std::string path = (dir / "s.bin").string();
  auto make = [&] {
    ShardWriter w(path, 500);
    w.add({1, 2, 3, 4}, "web");
    w.add({5, 6}, "books");
    w.close();
  };
  make();
  CHECK(shard_error(path, 500) == "no error");
  CHECK(shard_error(path, 32000) ==
        "shard " + path + ": vocab mismatch: the shard was made with 500 tokens, the model has 32000");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  CHECK(shard_error(path).find(": truncated: ") != std::string::npos);
  std::filesystem::resize_file(path, 100);
  CHECK(shard_error(path).find(": truncated: 100 bytes, less than the 2112-byte header") != std::string::npos);
  make();
  patch(path, 0, "NOTASHRD");
  CHECK(shard_error(path).find("wrong magic (not a Lory token shard)") != std::string::npos);
  make();
  patch(path, 8, std::string("\x02\x00\x00\x00", 4));
  CHECK(shard_error(path).find("wrong version 2 (this build reads version 1)") != std::string::npos);
  make();
  // The last document's domain id points past the domain table.
  patch(path, std::filesystem::file_size(path) - 4, std::string("\x09\x00\x00\x00", 4));
  CHECK(shard_error(path).find("corrupt document index: document 1 has domain id 9 of 2") != std::string::npos);
  CHECK(shard_error((dir / "none.bin").string()).find("cannot open") != std::string::npos);
}

TEST_CASE("encode: the fixture encodes into shards that decode back to every document, deterministically") {
  const auto dir = fresh_dir("encode");
  EncodeOptions o;
  o.model = kData + "tokenizer-2k.model";
  o.inputs = {kData + "corpus/valid.jsonl.gz", kData + "corpus/test.jsonl.gz"};
  o.out_prefix = (dir / "held").string();
  o.shard_tokens = 50000;  // several shards
  o.batch_documents = 7;
  const EncodeResult r = encode_corpus(o);
  CHECK(r.shards.size() > 1);
  std::vector<CorpusLine> docs = read_corpus_jsonl(o.inputs[0]);
  for (auto& l : read_corpus_jsonl(o.inputs[1])) docs.push_back(l);
  CHECK(r.totals.documents == static_cast<int64_t>(docs.size()));
  Tokenizer tok(o.model);
  size_t next = 0;
  int64_t tokens = 0;
  for (const auto& shard : r.shards) {
    ShardReader s(shard, tok.vocab_size());
    for (int64_t d = 0; d < s.num_documents(); ++d, ++next) {
      std::vector<int32_t> ids(s.doc_length(d));
      s.read_tokens(s.doc_start(d), s.doc_length(d), ids.data());
      REQUIRE(next < docs.size());
      CHECK(tok.decode(ids) == docs[next].text);
      CHECK(s.domains()[s.doc_domain(d)] == docs[next].domain);
    }
    tokens += s.num_tokens();
  }
  CHECK(next == docs.size());
  CHECK(tokens == r.totals.tokens);
  // Same bytes for another batch size (the thread and batch layout do not matter).
  o.out_prefix = (dir / "again").string();
  o.batch_documents = 64;
  const EncodeResult again = encode_corpus(o);
  REQUIRE(again.shards.size() == r.shards.size());
  for (size_t i = 0; i < r.shards.size(); ++i) {
    std::ifstream a(r.shards[i], std::ios::binary), b(again.shards[i], std::ios::binary);
    CHECK(std::string((std::istreambuf_iterator<char>(a)), {}) == std::string((std::istreambuf_iterator<char>(b)), {}));
  }
}

TEST_CASE("encode: a folder of text files is one document per file, domain from its subfolder") {
  const auto dir = fresh_dir("folder");
  std::filesystem::create_directories(dir / "in" / "poems");
  std::ofstream(dir / "in" / "poems" / "a.txt") << "Roses are red,\nviolets are blue.\n";
  std::ofstream(dir / "in" / "loose.txt") << "A file at the top.";
  std::ofstream(dir / "in" / "empty.txt") << "";
  EncodeOptions o;
  o.model = kData + "tokenizer-2k.model";
  o.inputs = {(dir / "in").string()};
  o.out_prefix = (dir / "out").string();
  const EncodeResult r = encode_corpus(o);
  REQUIRE(r.shards.size() == 1);
  ShardReader s(r.shards[0]);
  REQUIRE(s.num_documents() == 2);  // the empty file is skipped; files in path order
  CHECK(s.domains()[s.doc_domain(0)] == "text");
  CHECK(s.domains()[s.doc_domain(1)] == "poems");
}
