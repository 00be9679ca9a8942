// attention.cpp — see attention.h.
#include "nn/attention.h"

#include "tensor/graph.h"

namespace lory::nn {

Attention::Attention(const LoryConfig& c, const InitOptions& init)
    : q_proj(c.hidden_size, c.hidden_size, init),
      k_proj(c.hidden_size, c.kv_dim(), init),
      v_proj(c.hidden_size, c.kv_dim(), init),
      o_proj(c.hidden_size, c.hidden_size, init),
      num_heads(c.num_attention_heads),
      num_kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim()),
      rope_theta(c.rope_theta) {
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("o_proj", o_proj);
}

Tensor Attention::forward(const Tensor& x, KVCache* cache, int64_t capacity) const {
  LORY_CHECK(x.dim() == 3, "Attention: x must be [B, L, d], got ", x.describe());
  const int64_t B = x.size(0), L = x.size(1), Dh = head_dim;
  const int64_t past = cache ? cache->length : 0;
  // [B, L, heads, Dh]: the layout RoPE takes; then heads-major for attention.
  auto split_heads = [&](const Linear& proj, int64_t heads, bool rotate) {
    Tensor t = proj.forward(x).view({B, L, heads, Dh});
    if (rotate) t = rope(t, rope_theta, past);
    return t.permute({0, 2, 1, 3});  // [B, heads, L, Dh]
  };
  // Queries have H heads, keys and values Hkv (= H, or fewer with GQA: the
  // attention kernel lets query head h read key/value head h / (H / Hkv),
  // so the shared heads are never copied H / Hkv times).
  const Tensor q = split_heads(q_proj, num_heads, true);
  Tensor k = split_heads(k_proj, num_kv_heads, true), v = split_heads(v_proj, num_kv_heads, false);
  if (cache) {
    LORY_CHECK(!grad_mode_enabled() || !k.requires_grad(),
               "Attention: a KV cache is for inference; run it under NoGradGuard");
    if (!cache->k.defined()) {
      LORY_CHECK(capacity >= past + L, "Attention: KV cache capacity ", capacity, " is smaller than ", past + L,
                 " positions");
      cache->k = zeros({B, num_kv_heads, capacity, Dh}, {k.dtype(), k.device(), false});
      cache->v = zeros({B, num_kv_heads, capacity, Dh}, {v.dtype(), v.device(), false});
    }
    LORY_CHECK(past + L <= cache->k.size(2), "Attention: KV cache is full: ", past, " + ", L, " positions exceed ",
               cache->k.size(2));
    cache->k.narrow(2, past, L).copy_(k);
    cache->v.narrow(2, past, L).copy_(v);
    cache->length = past + L;
    k = cache->k.narrow(2, 0, past + L);
    v = cache->v.narrow(2, 0, past + L);
  }
  // Causal with S = past + L keys: query i sees keys j <= i + past.
  const Tensor o = scaled_dot_product_attention(q, k, v, true);  // [B, H, L, Dh]
  return o_proj.forward(o.permute({0, 2, 1, 3}).reshape({B, L, num_heads * Dh}));
}

}  // namespace lory::nn
