// The training data loader (corpus/data_loader.h): deterministic order,
// disjoint rank shares covering each epoch exactly once, exact resume, and
// instance-file validation. Instance i of the test file holds the token i
// in every position, so a batch says which instances it holds.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "tensor/error.h"
#include "corpus/data_loader.h"
#include "corpus/similarity_batching.h"

using namespace lory;
using namespace lory::corpus;

namespace {

std::string instances_file(int64_t count, int64_t length, int64_t vocab = 1000) {
  const auto path = (std::filesystem::temp_directory_path() /
                     ("lory_loader_" + std::to_string(count) + "_" + std::to_string(vocab) + ".bin"))
                        .string();
  Instances inst;
  inst.instance_tokens = length;
  for (int64_t i = 0; i < count; ++i) inst.tokens.insert(inst.tokens.end(), length, static_cast<int32_t>(i));
  write_instances(path, inst, vocab);
  return path;
}

// The instance ids of the next batch.
std::vector<int64_t> next_ids(DataLoader& loader) {
  const int32_t* b = loader.next();
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < loader.batch_size(); ++i) {
    const int32_t* row = b + i * loader.instance_tokens();
    CHECK(std::all_of(row, row + loader.instance_tokens(), [&](int32_t t) { return t == row[0]; }));
    ids.push_back(row[0]);
  }
  return ids;
}

}  // namespace

TEST_CASE("loader: the same seed gives the same batches; another seed another order") {
  const std::string path = instances_file(10, 5);
  DataLoader a(path, 3, 0, 1, 42), b(path, 3, 0, 1, 42), c(path, 3, 0, 1, 43);
  std::vector<int64_t> sa, sc;
  for (int step = 0; step < 7; ++step) {
    const auto ids = next_ids(a);
    CHECK(ids == next_ids(b));
    sa.insert(sa.end(), ids.begin(), ids.end());
    const auto other = next_ids(c);
    sc.insert(sc.end(), other.begin(), other.end());
  }
  CHECK(sa != sc);
  // Each epoch of 10 is a permutation: the first 10 drawn are 0..9 once each.
  std::vector<int64_t> first(sa.begin(), sa.begin() + 10);
  std::sort(first.begin(), first.end());
  for (int64_t i = 0; i < 10; ++i) CHECK(first[i] == i);
}

TEST_CASE("loader: N ranks drawing m each take exactly what one rank drawing N m takes, across epochs") {
  const std::string path = instances_file(11, 4);  // 11 instances over 3 ranks: rows straddle epochs
  DataLoader single(path, 1, 0, 1, 5);
  std::vector<int64_t> stream;
  for (int i = 0; i < 3 * 9; ++i) stream.push_back(next_ids(single)[0]);
  for (int rank = 0; rank < 3; ++rank) {
    DataLoader loader(path, 1, rank, 3, 5);
    for (int i = 0; i < 9; ++i) CHECK(next_ids(loader)[0] == stream[static_cast<size_t>(i * 3 + rank)]);
    // The state is the row reached, the same on every rank and for the single loader at the same point.
    CHECK(loader.state().epoch == 2);
    CHECK(loader.state().offset == 27 - 22);
  }
  CHECK(single.state().epoch == 2);
  CHECK(single.state().offset == 5);
  // Every epoch is still one permutation: the first 11 of the stream are 0..10 once each.
  std::vector<int64_t> first(stream.begin(), stream.begin() + 11);
  std::sort(first.begin(), first.end());
  for (int64_t i = 0; i < 11; ++i) CHECK(first[static_cast<size_t>(i)] == i);
}

TEST_CASE("loader: a state saved at one world size resumes at another") {
  const std::string path = instances_file(13, 4);
  DataLoader single(path, 2, 0, 1, 7);
  std::vector<int64_t> stream;
  for (int i = 0; i < 12; ++i)
    for (int64_t id : next_ids(single)) stream.push_back(id);
  // 4 ranks draw two batches of 2 (16 positions), then 2 ranks go on from their state.
  LoaderState saved;
  for (int rank = 0; rank < 4; ++rank) {
    DataLoader loader(path, 2, rank, 4, 7);
    next_ids(loader), next_ids(loader);
    saved = loader.state();
  }
  CHECK(saved.epoch == 1);
  CHECK(saved.offset == 3);
  for (int rank = 0; rank < 2; ++rank) {
    DataLoader resumed(path, 2, rank, 2, 7, saved);
    const std::vector<int64_t> ids = next_ids(resumed);  // positions 16 + rank, 18 + rank
    CHECK(ids == std::vector<int64_t>{stream[static_cast<size_t>(16 + rank)], stream[static_cast<size_t>(18 + rank)]});
  }
}

TEST_CASE("loader: resuming from a saved state continues with exactly the batches that would have followed") {
  const std::string path = instances_file(13, 6);
  DataLoader straight(path, 4, 1, 2, 9);
  std::vector<std::vector<int64_t>> all;
  for (int step = 0; step < 9; ++step) all.push_back(next_ids(straight));  // crosses several epochs
  DataLoader first(path, 4, 1, 2, 9);
  for (int step = 0; step < 4; ++step) CHECK(next_ids(first) == all[step]);
  const LoaderState saved = first.state();
  DataLoader resumed(path, 4, 1, 2, 9, saved);
  for (int step = 4; step < 9; ++step) CHECK(next_ids(resumed) == all[step]);
}

TEST_CASE("loader: truncated, foreign and mismatched instance files are refused with the problem named") {
  const std::string path = instances_file(5, 8, 500);
  auto error_of = [&](int64_t vocab) {
    try {
      InstanceFile f(path, vocab);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of(500) == "no error");
  CHECK(error_of(32000).find("vocab mismatch: the instances were made with 500 tokens, the model has 32000") !=
        std::string::npos);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 2);
  CHECK(error_of(0).find("truncated: ") != std::string::npos);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.write("NOTINSTS", 8);
  }
  CHECK(error_of(0).find("wrong magic") != std::string::npos);
  CHECK_THROWS_WITH_AS(DataLoader(instances_file(2, 8), 1, 0, 3), doctest::Contains("fewer than the 3 ranks"), Error);
}
