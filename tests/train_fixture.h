// train_fixture.h — the data and the run config the trainer's tests share
// (tests/test_train.cpp, and the data-parallel tests in tests/mpi/).
//
// Data: the committed fixture corpus (tests/data/corpus) encoded with the
// fixture tokenizer (vocab 2000) and packed into instances of 64 + 1 tokens.
// Model: the "tiny" preset (2 layers, d 32, 4 heads, f 48, 4 experts) with
// segments of 16 tokens and the data's vocabulary; a step is 4 sequences.
#pragma once

#include <string>
#include <vector>

#include "train/train_config.h"

namespace lory::test {

struct TrainData {
  std::string instances;  // training instances of 64 + 1 tokens (documents in random order)
  std::string valid;      // the validation shards, comma-separated
  int64_t vocab = 0;
  int32_t eos = 0;
};

// Encodes and packs the fixture corpus into `dir` (build = false: only
// names the instances an earlier call, maybe by another process, wrote
// there; `valid` is then empty).
TrainData make_train_data(const std::string& dir, bool build = true);

// The run config of these tests: the tiny Lory model, 6 steps of 4 x 64
// tokens in micro-batches of 2, the first one dense, checkpoints in `dir`.
// `overrides` come last, so they win.
train::TrainConfig tiny_train_config(const TrainData& data, const std::string& dir,
                                     const std::vector<train::ConfigOverride>& overrides = {});

}  // namespace lory::test
