// encode_corpus.cpp — see encode_corpus.h.
#include "corpus/encode_corpus.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "tensor/error.h"
#include "corpus/jsonl.h"
#include "corpus/token_shard.h"
#include "corpus/tokenizer.h"

namespace lory::corpus {

namespace {

// Yields documents from the inputs in order.
class DocumentStream {
 public:
  DocumentStream(const std::vector<std::string>& inputs, std::string default_domain)
      : default_domain_(std::move(default_domain)) {
    for (const auto& in : inputs) {
      if (std::filesystem::is_directory(in)) {
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::recursive_directory_iterator(in))
          if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) items_.push_back({f.string(), in, true});
      } else {
        LORY_CHECK(std::filesystem::exists(in), "encode: input ", in, " does not exist");
        items_.push_back({in, "", false});
      }
    }
  }

  bool next(CorpusLine& doc) {
    for (;;) {
      if (jsonl_ && jsonl_->next(doc)) {
        if (doc.domain.empty()) doc.domain = default_domain_;
        return true;
      }
      jsonl_.reset();
      if (index_ >= items_.size()) return false;
      const Item& item = items_[index_++];
      if (!item.is_text_file) {
        jsonl_ = std::make_unique<JsonlReader>(item.path);
        continue;
      }
      std::ifstream in(item.path, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      if (text.empty() || text.find('\0') != std::string::npos) continue;  // empty or binary
      const auto rel = std::filesystem::relative(item.path, item.root);
      doc.text = std::move(text);
      doc.source = item.path;
      doc.domain = std::distance(rel.begin(), rel.end()) > 1 ? rel.begin()->string() : default_domain_;
      return true;
    }
  }

 private:
  struct Item {
    std::string path, root;
    bool is_text_file;
  };
  std::vector<Item> items_;
  size_t index_ = 0;
  std::unique_ptr<JsonlReader> jsonl_;
  std::string default_domain_;
};

std::string shard_name(const std::string& prefix, size_t index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-%05zu.bin", index);
  return prefix + buf;
}

}  // namespace

EncodeResult encode_corpus(const EncodeOptions& o) {
  LORY_CHECK(!o.inputs.empty(), "encode: no inputs given");
  LORY_CHECK(o.shard_tokens > 0 && o.batch_documents > 0, "encode: shard_tokens and batch_documents must be > 0");
  const Tokenizer tok(o.model);
  DocumentStream stream(o.inputs, o.default_domain);
  EncodeResult result;
  std::unique_ptr<ShardWriter> writer;
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;

  std::vector<CorpusLine> batch(static_cast<size_t>(o.batch_documents));
  std::vector<std::vector<int32_t>> ids(batch.size());
  for (;;) {
    size_t n = 0;
    while (n < batch.size() && stream.next(batch[n])) ++n;
    if (n == 0) break;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) ids[i] = tok.encode(batch[i].text);
    for (size_t i = 0; i < n; ++i) {
      if (!writer || writer->num_tokens() >= o.shard_tokens) {
        if (writer) writer->close();
        result.shards.push_back(shard_name(o.out_prefix, result.shards.size()));
        writer = std::make_unique<ShardWriter>(result.shards.back(), tok.vocab_size());
      }
      writer->add(ids[i], batch[i].domain);
      result.totals.documents += 1;
      result.totals.tokens += static_cast<int64_t>(ids[i].size());
      result.totals.bytes += static_cast<int64_t>(batch[i].text.size());
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::seconds(2)) {
      result.totals.seconds = std::chrono::duration<double>(now - start).count();
      o.progress(result.totals);
      last_report = now;
    }
  }
  if (writer) writer->close();
  result.totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace lory::corpus
