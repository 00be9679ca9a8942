// data_loader.h — training batches from an instances file (lory_batch's
// output): memory-mapped, in a seeded order, split across data-parallel
// ranks, resumable, prefetched, with no allocation per step.
//
// Order: epoch e visits the instances in the permutation
// shuffle_with_seed(0..count-1, seed + e); the epochs one after another make
// one global stream. The N data-parallel ranks take it in rows of N: rank r
// takes positions r, r + N, r + 2N, ... So the ranks' draws are disjoint,
// and N ranks drawing m each take exactly the first N m positions, what one
// rank drawing N m takes: a global batch is the same instances whatever the
// world size (the equivalence data parallelism is tested against). The
// stream runs from one epoch into the next, so a batch never waits for an
// epoch boundary and nothing is skipped. The state (epoch, offset: the next
// row's first position in that epoch) is the same on every rank, and all a
// checkpoint needs to resume exactly, at any world size.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/mapped_file.h"

namespace lory::corpus {

// A memory-mapped instances file; the reader checks the header against the size.
class InstanceFile {
 public:
  explicit InstanceFile(const std::string& path, int64_t expected_vocab = 0);
  InstanceFile(const InstanceFile&) = delete;
  InstanceFile& operator=(const InstanceFile&) = delete;
  int64_t count() const { return count_; }
  int64_t instance_tokens() const { return instance_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  void read(int64_t instance, int32_t* out) const;  // out: instance_tokens() values

 private:
  std::string path_;
  io::MappedFile file_;
  const unsigned char* map_ = nullptr;
  size_t size_ = 0;
  int64_t count_ = 0, instance_tokens_ = 0, vocab_size_ = 0;
  int token_bytes_ = 0;
};

struct LoaderState {
  int64_t epoch = 0;   // current epoch
  int64_t offset = 0;  // positions of that epoch already taken, by all ranks together
};

class DataLoader {
 public:
  DataLoader(const std::string& path, int64_t batch_size, int rank = 0, int world_size = 1, uint64_t seed = 0,
             LoaderState start = {}, int64_t expected_vocab = 0);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch, [batch_size, instance_tokens] row-major; valid until the
  // next call. The following batch is already being read in the background.
  const int32_t* next();
  // Where a resumed loader must start to return exactly the batches that
  // would have followed the last one next() returned.
  LoaderState state() const { return returned_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t instance_tokens() const { return file_.instance_tokens(); }
  int64_t instances_per_epoch() const { return file_.count(); }

 private:
  // This rank's instance of the row at `state`, advancing it by a row.
  int64_t take(LoaderState& state);
  void fill(std::vector<int32_t>& buffer, LoaderState& state);
  void worker();

  InstanceFile file_;
  int64_t batch_size_;
  int rank_, world_;
  uint64_t seed_;
  std::vector<int64_t> permutation_;  // of the epoch in permutation_epoch_
  int64_t permutation_epoch_ = -1;
  LoaderState produced_, returned_;
  std::vector<int32_t> buffers_[2];
  int current_ = 0;     // buffer handed out by the last next()
  bool ready_ = false;  // the other buffer holds the next batch
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace lory::corpus
