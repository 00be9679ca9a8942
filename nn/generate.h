// generate.h — autoregressive decoding with a KV cache: greedy, temperature,
// top-k and top-p (nucleus) sampling, reproducible from a seed.
//
// The prompt is run once (filling every layer's KV cache and, for Lory
// layers, making the first routing decision); then each new token costs one
// single-position forward. With prompt routing (InferenceRouting::prompt,
// paper §3.1) every Lory layer keeps the merged FFN of the prompt, so
// decoding costs what a dense model's does; with segment routing it merges
// again each time T more tokens complete a segment.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "nn/lory_lm.h"

namespace lory::nn {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens (0: all)
  double top_p = 1.0;        // keep the smallest set whose probability reaches p
};

// Picks a token from one position's logits; u is a uniform number in [0, 1)
// (the caller's randomness, so sampling itself is a pure function). Ties go
// to the lower token id.
int64_t sample_token(const std::vector<double>& logits, const SamplingOptions& options, double u);

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  uint64_t seed = 0;                                    // token i uses uniform (seed, i) from Philox
  InferenceRouting routing = InferenceRouting::prompt;  // prompt (paper §3.1) or segment
  int64_t stop_token = -1;  // stop after generating this token (e.g. EOS); -1: never
};

// Returns the generated tokens (not the prompt); calls on_token for each as
// soon as it is chosen (streaming).
std::vector<int64_t> generate(LoryLM& model, const std::vector<int64_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int64_t)>& on_token = {});

}  // namespace lory::nn
