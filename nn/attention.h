// attention.h — causal multi-head self-attention with rotary positions.
//
// x: [B, L, d] -> q, k, v projections [B, L, H, Dh] -> RoPE on q and k
// (position offset = tokens already in the KV cache) -> [B, H, L, Dh] ->
// softmax(q k^T / sqrt(Dh) + causal mask) v (one fused op with its own
// backward) -> [B, L, d] -> o_proj.
#pragma once

#include "nn/config.h"
#include "nn/linear.h"

namespace lory::nn {

// Keys and values of the positions seen so far, for incremental decoding.
// Preallocated to `capacity` positions; forward() writes the new positions
// in place and attends over [0, length).
struct KVCache {
  Tensor k, v;         // [B, H, capacity, Dh]
  int64_t length = 0;  // positions filled
};

class Attention : public Module {
 public:
  Attention(const LoryConfig& config, const InitOptions& init);
  // x: [B, L, d]. With a cache, x holds the positions after cache->length
  // and the cache grows by L (allocated on first use to `capacity`).
  Tensor forward(const Tensor& x, KVCache* cache = nullptr, int64_t capacity = 0) const;

  Linear q_proj, k_proj, v_proj, o_proj;
  int64_t num_heads, head_dim;
  double rope_theta;
};

}  // namespace lory::nn
