// attention.h — causal multi-head self-attention with rotary positions.
//
// x: [B, L, d] -> q [B, L, H, Dh], k and v [B, L, Hkv, Dh] -> RoPE on q and
// k (position offset = tokens already in the KV cache) -> heads-major
// [B, H, L, Dh] / [B, Hkv, L, Dh] -> softmax(q k^T / sqrt(Dh) + causal mask) v
// (one fused op with its own backward) -> [B, L, d] -> o_proj.
// Hkv = num_key_value_heads: H (multi-head attention, the paper's models) or
// a divisor of H (grouped-query attention: H / Hkv query heads share one key
// and value head, as in LLaMA-2 70B and LLaMA-3).
#pragma once

#include "nn/config.h"
#include "nn/linear.h"

namespace lory::nn {

// Keys and values of the positions seen so far, for incremental decoding.
// Preallocated to `capacity` positions; forward() writes the new positions
// in place and attends over [0, length).
struct KVCache {
  Tensor k, v;         // [B, Hkv, capacity, Dh]
  int64_t length = 0;  // positions filled
};

class Attention : public Module {
 public:
  Attention(const LoryConfig& config, const InitOptions& init);
  // x: [B, L, d]. With a cache, x holds the positions after cache->length
  // and the cache grows by L (allocated on first use to `capacity`).
  Tensor forward(const Tensor& x, KVCache* cache = nullptr, int64_t capacity = 0) const;

  Linear q_proj, k_proj, v_proj, o_proj;
  int64_t num_heads, num_kv_heads, head_dim;
  double rope_theta;
};

}  // namespace lory::nn
