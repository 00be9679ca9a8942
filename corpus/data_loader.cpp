// data_loader.cpp — see data_loader.h.
#include "corpus/data_loader.h"

#include <cerrno>
#include <cstring>
#include <numeric>

#include "tensor/error.h"
#include "corpus/similarity_batching.h"

namespace lory::corpus {

InstanceFile::InstanceFile(const std::string& path, int64_t expected_vocab)
    : path_(path), file_(path, "instances"), map_(file_.data()), size_(file_.size()) {
  const std::string where = "instances " + path;
  LORY_CHECK(size_ >= 64, where, ": truncated: ", size_, " bytes, less than the 64-byte header");
  LORY_CHECK(std::memcmp(map_, "LORYINST", 8) == 0, where, ": wrong magic (not a Lory instances file)");
  uint32_t version, tb;
  uint64_t vocab, len, count;
  std::memcpy(&version, map_ + 8, 4);
  std::memcpy(&tb, map_ + 12, 4);
  std::memcpy(&vocab, map_ + 16, 8);
  std::memcpy(&len, map_ + 24, 8);
  std::memcpy(&count, map_ + 32, 8);
  LORY_CHECK(version == 1, where, ": wrong version ", version, " (this build reads version 1)");
  LORY_CHECK((tb == 2 || tb == 4) && len >= 2, where, ": corrupt header (token size ", tb, ", instance length ", len,
             ")");
  token_bytes_ = static_cast<int>(tb);
  vocab_size_ = static_cast<int64_t>(vocab);
  instance_tokens_ = static_cast<int64_t>(len);
  count_ = static_cast<int64_t>(count);
  LORY_CHECK(expected_vocab <= 0 || expected_vocab == vocab_size_, where,
             ": vocab mismatch: the instances were made with ", vocab_size_, " tokens, the model has ", expected_vocab);
  LORY_CHECK(vocab > 0 && vocab <= (uint64_t{1} << 31) && (tb == 4 || vocab <= 65536), where,
             ": corrupt header: vocab size ", vocab, " with ", tb, "-byte tokens");
  // The counts are bounded by the file's size before they are multiplied, so
  // the expected size below cannot wrap around to match a small file.
  LORY_CHECK(len <= size_ / tb && count <= size_ / (len * tb), where, ": corrupt header: ", count, " instances of ",
             len, " tokens cannot fit in ", size_, " bytes");
  const uint64_t expected = 64 + count * len * tb;
  LORY_CHECK(size_ == expected, where, ": ", size_ < expected ? "truncated" : "corrupt", ": ", size_, " bytes, but ",
             count, " instances of ", len, " tokens need ", expected);
}

void InstanceFile::read(int64_t instance, int32_t* out) const {
  LORY_CHECK(instance >= 0 && instance < count_, "instances ", path_, ": instance ", instance, " of ", count_);
  const unsigned char* p = map_ + 64 + static_cast<size_t>(instance * instance_tokens_ * token_bytes_);
  if (token_bytes_ == 4) {
    std::memcpy(out, p, static_cast<size_t>(instance_tokens_) * 4);
    return;
  }
  for (int64_t i = 0; i < instance_tokens_; ++i) {
    uint16_t t;
    std::memcpy(&t, p + 2 * i, 2);
    out[i] = t;
  }
}

DataLoader::DataLoader(const std::string& path, int64_t batch_size, int rank, int world_size, uint64_t seed,
                       LoaderState start, int64_t expected_vocab)
    : file_(path, expected_vocab),
      batch_size_(batch_size),
      rank_(rank),
      world_(world_size),
      seed_(seed),
      produced_(start),
      returned_(start) {
  LORY_CHECK(batch_size > 0, "data loader: batch size must be > 0, got ", batch_size);
  LORY_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "data loader: rank ", rank, " is not in [0, ",
             world_size, ")");
  LORY_CHECK(file_.count() >= world_size, "data loader: ", path, " has ", file_.count(), " instances, fewer than the ",
             world_size, " ranks");
  LORY_CHECK(start.epoch >= 0 && start.offset >= 0, "data loader: bad resume state (epoch ", start.epoch, ", offset ",
             start.offset, ")");
  for (auto& b : buffers_) b.resize(static_cast<size_t>(batch_size * file_.instance_tokens()));
  thread_ = std::thread([this] { worker(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int64_t DataLoader::take(LoaderState& s) {
  const int64_t count = file_.count();
  // This rank's position of the row; the last row of an epoch may reach into the next one.
  const int64_t epoch = s.epoch + (s.offset + rank_) / count, index = (s.offset + rank_) % count;
  if (permutation_epoch_ != epoch) {
    permutation_.resize(static_cast<size_t>(count));
    std::iota(permutation_.begin(), permutation_.end(), 0);
    shuffle_with_seed(permutation_, seed_ + static_cast<uint64_t>(epoch));
    permutation_epoch_ = epoch;
  }
  s.offset += world_;
  s.epoch += s.offset / count;
  s.offset %= count;
  return permutation_[static_cast<size_t>(index)];
}

void DataLoader::fill(std::vector<int32_t>& buffer, LoaderState& s) {
  for (int64_t b = 0; b < batch_size_; ++b) file_.read(take(s), buffer.data() + b * file_.instance_tokens());
}

// Fills the buffer that is not handed out, then waits until next() takes it.
void DataLoader::worker() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !ready_; });
    if (stop_) return;
    const int target = 1 - current_;
    LoaderState s = produced_;
    lock.unlock();
    fill(buffers_[target], s);  // the slow part, outside the lock
    lock.lock();
    produced_ = s;
    ready_ = true;
    cv_.notify_all();
  }
}

const int32_t* DataLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return ready_; });
  current_ = 1 - current_;
  returned_ = produced_;
  ready_ = false;
  cv_.notify_all();  // the worker starts on the batch after this one
  return buffers_[current_].data();
}

}  // namespace lory::corpus
