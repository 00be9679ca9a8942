// token_shard.h — binary token shards: a tokenised corpus on disk, read by
// memory mapping.
//
// Layout of one shard (little-endian):
//   [0, 64)        header: magic "LORYTOKS", u32 version (1), u32 token bytes
//                  (2 for vocabularies up to 65536, else 4), u64 vocab size,
//                  u64 documents, u64 tokens, u32 domains, 20 reserved bytes
//   [64, 2112)     domain names: 64 slots of 32 bytes, NUL-padded
//   [2112, ...)    the tokens of every document, back to back
//   then, 8-byte aligned: documents + 1 u64 token offsets (document d is
//                  tokens [offset[d], offset[d+1])), then documents u32 domain ids
// A reader checks every field against the file's size and names the file and
// the problem (truncated, wrong magic, wrong version, vocab mismatch, ...).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace lory::corpus {

constexpr int kMaxShardDomains = 64;

class ShardWriter {
 public:
  // Writes to a temporary file beside `path`; close() renames it into place.
  ShardWriter(const std::string& path, int64_t vocab_size);
  ~ShardWriter();  // a writer never closed leaves nothing behind
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void add(const std::vector<int32_t>& tokens, const std::string& domain);
  void close();
  int64_t num_tokens() const { return offsets_.back(); }
  int64_t num_documents() const { return static_cast<int64_t>(domain_ids_.size()); }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  int64_t vocab_size_;
  int token_bytes_;
  std::vector<uint64_t> offsets_{0};
  std::vector<uint32_t> domain_ids_;
  std::vector<std::string> domains_;
  std::vector<unsigned char> buffer_;
};

class ShardReader {
 public:
  // expected_vocab > 0: the shard must have been made with that vocabulary size.
  explicit ShardReader(const std::string& path, int64_t expected_vocab = 0);
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  int64_t vocab_size() const { return vocab_size_; }
  int token_bytes() const { return token_bytes_; }
  int64_t num_documents() const { return num_documents_; }
  int64_t num_tokens() const { return num_tokens_; }
  const std::vector<std::string>& domains() const { return domains_; }
  int64_t doc_start(int64_t d) const { return static_cast<int64_t>(offsets_[d]); }
  int64_t doc_length(int64_t d) const { return static_cast<int64_t>(offsets_[d + 1] - offsets_[d]); }
  int32_t doc_domain(int64_t d) const { return static_cast<int32_t>(domain_ids_[d]); }
  int32_t token(int64_t i) const;
  // out[0, n) = tokens [start, start + n).
  void read_tokens(int64_t start, int64_t n, int32_t* out) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  io::MappedFile file_;
  const unsigned char* map_ = nullptr;
  size_t size_ = 0;
  int64_t vocab_size_ = 0, num_documents_ = 0, num_tokens_ = 0;
  int token_bytes_ = 0;
  std::vector<std::string> domains_;
  const unsigned char* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
  const uint32_t* domain_ids_ = nullptr;
};

// Opens comma-separated shard paths ("a.bin,b.bin"), all with `expected_vocab` when > 0.
std::vector<std::unique_ptr<ShardReader>> open_shards(const std::string& comma_separated, int64_t expected_vocab = 0);
// Plain pointers to them, as DocumentSet takes.
std::vector<const ShardReader*> pointers(const std::vector<std::unique_ptr<ShardReader>>& shards);

}  // namespace lory::corpus
