// token_shard.cpp — see token_shard.h.
#include "corpus/token_shard.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace lory::corpus {

namespace {

constexpr char kMagic[8] = {'L', 'O', 'R', 'Y', 'T', 'O', 'K', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 64, kDomainNameBytes = 32;
constexpr uint64_t kTokensStart = kHeaderBytes + kMaxShardDomains * kDomainNameBytes;  // 2112

uint64_t align8(uint64_t x) { return (x + 7) & ~uint64_t{7}; }

// fwrite of n bytes; nothing for n == 0 (an empty vector's data() may be null,
// which fwrite must not be given).
bool write_all(std::FILE* f, const void* p, size_t n) { return n == 0 || std::fwrite(p, 1, n, f) == n; }

template <typename T>
void put(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);  // the machines we run on are little-endian, as the format is
}
template <typename T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

ShardWriter::ShardWriter(const std::string& path, int64_t vocab_size)
    : path_(path), vocab_size_(vocab_size), token_bytes_(vocab_size <= 65536 ? 2 : 4) {
  LORY_CHECK(vocab_size > 0, "shard ", path, ": vocab size must be > 0, got ", vocab_size);
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  tmp_ = path + ".tmp";
  f_ = std::fopen(tmp_.c_str(), "wb");
  LORY_CHECK(f_, "shard ", tmp_, ": cannot create: ", std::strerror(errno));
  std::vector<unsigned char> zeros(kTokensStart, 0);  // header and domain table, filled in by close()
  LORY_CHECK(std::fwrite(zeros.data(), 1, zeros.size(), f_) == zeros.size(), "shard ", tmp_, ": write failed");
}

ShardWriter::~ShardWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void ShardWriter::add(const std::vector<int32_t>& tokens, const std::string& domain) {
  LORY_CHECK(f_, "shard ", path_, ": add after close");
  uint32_t id = 0;
  while (id < domains_.size() && domains_[id] != domain) ++id;
  if (id == domains_.size()) {
    LORY_CHECK(domains_.size() < kMaxShardDomains, "shard ", path_, ": more than ", kMaxShardDomains, " domains");
    LORY_CHECK(domain.size() < kDomainNameBytes, "shard ", path_, ": domain name '", domain, "' is longer than ",
               kDomainNameBytes - 1, " bytes");
    domains_.push_back(domain);
  }
  buffer_.resize(tokens.size() * static_cast<size_t>(token_bytes_));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    LORY_CHECK(t >= 0 && t < vocab_size_, "shard ", path_, ": token ", t, " of document ", domain_ids_.size(),
               " is outside the vocabulary of ", vocab_size_);
    if (token_bytes_ == 2)
      put(buffer_.data() + 2 * i, static_cast<uint16_t>(t));
    else
      put(buffer_.data() + 4 * i, static_cast<uint32_t>(t));
  }
  LORY_CHECK(write_all(f_, buffer_.data(), buffer_.size()), "shard ", tmp_, ": write failed: ", std::strerror(errno));
  offsets_.push_back(offsets_.back() + tokens.size());
  domain_ids_.push_back(id);
}

void ShardWriter::close() {
  LORY_CHECK(f_, "shard ", path_, ": closed twice");
  const uint64_t tokens_end = kTokensStart + offsets_.back() * static_cast<uint64_t>(token_bytes_);
  const std::vector<unsigned char> pad(align8(tokens_end) - tokens_end, 0);
  bool ok = write_all(f_, pad.data(), pad.size());
  ok = ok && write_all(f_, offsets_.data(), 8 * offsets_.size());
  ok = ok && write_all(f_, domain_ids_.data(), 4 * domain_ids_.size());
  std::vector<unsigned char> head(kTokensStart, 0);
  std::memcpy(head.data(), kMagic, 8);
  put(head.data() + 8, kVersion);
  put(head.data() + 12, static_cast<uint32_t>(token_bytes_));
  put(head.data() + 16, static_cast<uint64_t>(vocab_size_));
  put(head.data() + 24, static_cast<uint64_t>(domain_ids_.size()));
  put(head.data() + 32, static_cast<uint64_t>(offsets_.back()));
  put(head.data() + 40, static_cast<uint32_t>(domains_.size()));
  for (size_t d = 0; d < domains_.size(); ++d)
    std::memcpy(head.data() + kHeaderBytes + d * kDomainNameBytes, domains_[d].data(), domains_[d].size());
  ok = ok && std::fseek(f_, 0, SEEK_SET) == 0 && std::fwrite(head.data(), 1, head.size(), f_) == head.size();
  ok = ok && std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail("shard ", path_, ": write failed: ", std::strerror(errno));
  }
}

ShardReader::ShardReader(const std::string& path, int64_t expected_vocab)
    : path_(path), file_(path, "shard"), map_(file_.data()), size_(file_.size()) {
  // Check everything before trusting anything.
  const std::string where = "shard " + path;
  LORY_CHECK(size_ >= kTokensStart, where, ": truncated: ", size_, " bytes, less than the ", kTokensStart,
             "-byte header");
  LORY_CHECK(std::memcmp(map_, kMagic, 8) == 0, where, ": wrong magic (not a Lory token shard)");
  const uint32_t version = get<uint32_t>(map_ + 8);
  LORY_CHECK(version == kVersion, where, ": wrong version ", version, " (this build reads version ", kVersion, ")");
  token_bytes_ = static_cast<int>(get<uint32_t>(map_ + 12));
  LORY_CHECK(token_bytes_ == 2 || token_bytes_ == 4, where, ": corrupt header: token size ", token_bytes_,
             " is neither 2 nor 4");
  vocab_size_ = static_cast<int64_t>(get<uint64_t>(map_ + 16));
  num_documents_ = static_cast<int64_t>(get<uint64_t>(map_ + 24));
  num_tokens_ = static_cast<int64_t>(get<uint64_t>(map_ + 32));
  const uint32_t num_domains = get<uint32_t>(map_ + 40);
  LORY_CHECK(vocab_size_ > 0 && (token_bytes_ == 4 || vocab_size_ <= 65536), where, ": corrupt header: vocab size ",
             vocab_size_, " with ", token_bytes_, "-byte tokens");
  LORY_CHECK(num_domains <= kMaxShardDomains, where, ": corrupt header: ", num_domains, " domains");
  LORY_CHECK(expected_vocab <= 0 || expected_vocab == vocab_size_, where, ": vocab mismatch: the shard was made with ",
             vocab_size_, " tokens, the model has ", expected_vocab);
  // The counts are bounded by the file's size before any arithmetic on them,
  // so the expected size below cannot wrap around to match a small file.
  LORY_CHECK(num_tokens_ >= 0 && static_cast<uint64_t>(num_tokens_) <= size_ / static_cast<uint64_t>(token_bytes_),
             where, ": corrupt header: ", static_cast<uint64_t>(num_tokens_), " tokens cannot fit in ", size_,
             " bytes");
  LORY_CHECK(num_documents_ >= 0 && static_cast<uint64_t>(num_documents_) <= size_ / 12, where,
             ": corrupt header: ", static_cast<uint64_t>(num_documents_), " documents cannot fit in ", size_, " bytes");
  const uint64_t tokens_end = kTokensStart + static_cast<uint64_t>(num_tokens_) * static_cast<uint64_t>(token_bytes_);
  const uint64_t index_start = align8(tokens_end);
  const uint64_t expected =
      index_start + 8 * (static_cast<uint64_t>(num_documents_) + 1) + 4 * static_cast<uint64_t>(num_documents_);
  LORY_CHECK(size_ == expected, where, ": ", size_ < expected ? "truncated" : "corrupt", ": ", size_,
             " bytes, but the header's ", num_documents_, " documents and ", num_tokens_, " tokens need ", expected);
  for (uint32_t d = 0; d < num_domains; ++d) {
    const char* name = reinterpret_cast<const char*>(map_ + kHeaderBytes + d * kDomainNameBytes);
    domains_.emplace_back(name, strnlen(name, kDomainNameBytes));
  }
  tokens_ = map_ + kTokensStart;
  offsets_ = reinterpret_cast<const uint64_t*>(map_ + index_start);
  domain_ids_ = reinterpret_cast<const uint32_t*>(map_ + index_start + 8 * (num_documents_ + 1));
  LORY_CHECK(offsets_[0] == 0 && offsets_[num_documents_] == static_cast<uint64_t>(num_tokens_), where,
             ": corrupt document index: offsets run from ", offsets_[0], " to ", offsets_[num_documents_],
             ", not 0 to ", num_tokens_);
  for (int64_t d = 0; d < num_documents_; ++d) {
    LORY_CHECK(offsets_[d] <= offsets_[d + 1], where, ": corrupt document index: document ", d,
               " ends before it starts");
    LORY_CHECK(domain_ids_[d] < num_domains, where, ": corrupt document index: document ", d, " has domain id ",
               domain_ids_[d], " of ", num_domains);
  }
}

int32_t ShardReader::token(int64_t i) const {
  return token_bytes_ == 2 ? get<uint16_t>(tokens_ + 2 * i) : static_cast<int32_t>(get<uint32_t>(tokens_ + 4 * i));
}

void ShardReader::read_tokens(int64_t start, int64_t n, int32_t* out) const {
  LORY_CHECK(start >= 0 && n >= 0 && start + n <= num_tokens_, "shard ", path_, ": tokens [", start, ", ", start + n,
             ") are outside [0, ", num_tokens_, ")");
  if (n == 0) return;  // `out` may be the null data() of an empty vector
  if (token_bytes_ == 2) {
    for (int64_t i = 0; i < n; ++i) out[i] = get<uint16_t>(tokens_ + 2 * (start + i));
  } else {
    std::memcpy(out, tokens_ + 4 * start, static_cast<size_t>(n) * 4);
  }
}

std::vector<std::unique_ptr<ShardReader>> open_shards(const std::string& list, int64_t expected_vocab) {
  std::vector<std::unique_ptr<ShardReader>> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(std::make_unique<ShardReader>(list.substr(start, comma - start), expected_vocab));
    start = comma + 1;
  }
  LORY_CHECK(!out.empty(), "shards: no shard paths in '", list, "'");
  return out;
}

std::vector<const ShardReader*> pointers(const std::vector<std::unique_ptr<ShardReader>>& shards) {
  std::vector<const ShardReader*> out;
  for (const auto& s : shards) out.push_back(s.get());
  return out;
}

}  // namespace lory::corpus
