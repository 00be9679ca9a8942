// memory_plan.cpp — see memory_plan.h.
//
// The activation estimate follows the ops, so when an op starts saving more
// (or less) for its backward, this file must follow. Symbols: c compute
// bytes, B sequences of L tokens, n = B·L, d hidden, f FFN width, H heads,
// V vocab, E experts, T segment length, N = ceil(L/T) segments per
// sequence, S = B·N merged segments, n' = S·T tokens after padding the last
// segment. "tok_d" is one [B, L, d] tensor, c·n·d bytes.
//
// What one DecoderLayer's forward keeps for backward (nn/lory_lm.cpp), op by op:
//   input_layernorm   rms_norm saves its input x (the layer input, counted
//                     apart as layer_input) and rstd, f32 [n]               4n
//   q/k/v_proj        the three matmuls save their shared input, normed1   tok_d
//   rope, permute     nothing
//   attention         contiguous q [B, H, L, Dh], k, v [B, Hkv, L, Dh] (the
//                     permuted views are copied; tok_kv = c·n·Hkv·Dh, tok_d
//                     without GQA), its output and lse, f32 [B, H, L]     2 tok_d + 2 tok_kv + 4nH
//   o_proj            its input, the heads regrouped to [B, L, d] (a copy) tok_d
//   add_rms_norm      h = x + attn (the residual) and rstd                 tok_d + 4n
//   dense FFN         normed2 (gate and up share it), gate and up (swiglu),
//                     swiglu's output (down_proj)                           tok_d + 3 c·n·f
//   Lory FFN          the tokens grouped by segment, [S, T, d] (normed2
//                     itself, or a zero-padded copy when T does not divide
//                     L), gate, up and swiglu's output [S, T, f]            c·n'·d + 3 c·n'·f
//                     with train.merge_kernel = "gemm" only: the merged
//                     matrices W̄ of gate, up, down [S, f, d], kept by the
//                     batched matmuls that use them (the fused kernel
//                     never stores one)                                     3 c·S·f·d
//                     routing: segment means [S, d] (router input), the
//                     softmax output [S, E] and the shifted weights [S, E]  c·S·(d + 2E)
//   the final add     nothing; its output is the next layer's input
// With train.recompute = "blocks" (autograd/checkpoint.cpp) a layer keeps
// only its input; its backward runs the layer again, so one layer's saved set
// is live again while that layer's backward runs.
//
// After the last layer: model.norm saves the last layer's output (tok_d) and
// rstd (4n); lm_head saves normed (tok_d); cross_entropy saves the logits
// (c·n·V), lse (4n) and the i64 targets; the embedding saves the i64 ids.
// Targets and ids are copies (8n each) when B > 1 (a column slice of the
// [B, L+1] batch is not contiguous), views of the batch when B = 1.
//
// Each Lory layer also keeps its routing weights [B, N, E] between steps
// (LoryFFN::last_routing_weights()).
//
// The backward frees each op's saved tensors once that op's backward has
// run (autograd/engine.cpp), and visits a parameter's gradient path right
// after the op that uses it, so the parameter's gradient is added into the
// flat buffer at once. The peak is then at one of four moments:
//   cross-entropy backward   everything saved, plus dlogits                 + c·n·V
//   lm_head backward         logits freed, dlogits still live, plus
//                            d(normed) and lm_head's weight gradient         + tok_d + c·V·d
//   the top layer's FFN      the head freed; the layers below; the layer's
//   backward                 input, saved set and incoming gradient (with
//                            recomputation: its saved set recomputed, and
//                            the recomputed output); the largest transient
//                            of the FFN ops' backwards (ffn_extra, below)
//   the top layer's          the FFN's saved set freed; x, the attention's
//   attention backward       saved set, and 6 tok_d of gradients
// Lower layers have less alive below them, so the top layer is their peak.
// The forward's own peak is below the first moment: it ends at the saved
// set plus the loss.
//
// Measured on the CPU (tests/test_memory_plan.cpp, tensor/memory_stats.h):
// the saved bytes within 2% and the peak within 5% for dense and Lory models,
// bf16 and f32, with and without either recomputation, padded segments.
#include "train/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/error.h"

namespace lory::train {

namespace {

constexpr int64_t kAlign = 16;  // FlatParameters::kAlign (train/flat_parameters.h)

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Every parameter's numel, as LoryLM registers them (nn/lory_lm.h).
std::vector<int64_t> parameter_numels(const nn::LoryConfig& c) {
  const int64_t d = c.hidden_size, f = c.intermediate_size, V = c.vocab_size, E = c.num_experts;
  std::vector<int64_t> numels{V * d};  // model.embed_tokens
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    numels.push_back(d);                                  // input_layernorm
    numels.push_back(d * d);           // q_proj
    numels.push_back(c.kv_dim() * d);  // k_proj (grouped-query attention: fewer heads)
    numels.push_back(c.kv_dim() * d);  // v_proj
    numels.push_back(d * d);           // o_proj
    numels.push_back(d);                                  // post_attention_layernorm
    if (c.is_lory()) {
      for (int i = 0; i < 3; ++i) numels.push_back(E * f * d);  // experts.{gate,up,down}_proj
      numels.push_back(E * d);                                  // router
    } else {
      for (int i = 0; i < 3; ++i) numels.push_back(f * d);  // gate, up, down
    }
  }
  numels.push_back(d);      // model.norm
  if (!c.tie_word_embeddings) numels.push_back(V * d);  // lm_head
  return numels;
}

void check_input(const nn::LoryConfig& model, const MemoryPlanInput& in) {
  LORY_CHECK(in.world >= 1, "memory plan: world (ranks) must be >= 1, got ", in.world);
  LORY_CHECK(in.zero >= 0 && in.zero <= 2, "memory plan: the ZeRO stage must be 0, 1 or 2, got ", in.zero);
  LORY_CHECK(in.accumulation >= 1, "memory plan: accumulation must be >= 1, got ", in.accumulation);
  LORY_CHECK(in.micro_batch >= 1, "memory plan: micro_batch must be >= 1, got ", in.micro_batch);
  LORY_CHECK(in.seq_len >= 1 && in.seq_len <= model.max_position_embeddings, "memory plan: seq_len must be in [1, ",
             model.max_position_embeddings, "] (max_position_embeddings), got ", in.seq_len);
  LORY_CHECK(in.compute == DType::bf16 || in.compute == DType::f32,
             "memory plan: the compute dtype must be bf16 or f32, got ", dtype_name(in.compute));
  LORY_CHECK(in.bucket_bytes >= 1, "memory plan: bucket_bytes must be >= 1, got ", in.bucket_bytes);
}

}  // namespace

int64_t flat_parameter_elements(const nn::LoryConfig& model, int64_t world) {
  LORY_CHECK(world >= 1, "memory plan: world (ranks) must be >= 1, got ", world);
  int64_t psi = 0;
  for (int64_t numel : parameter_numels(model)) psi += round_up(numel, kAlign);
  return round_up(psi, kAlign * world);
}

ActivationEstimate estimate_activations(const nn::LoryConfig& m, const MemoryPlanInput& in) {
  check_input(m, in);
  const int64_t c = static_cast<int64_t>(dtype_size(in.compute));
  const int64_t B = in.micro_batch, L = in.seq_len, n = B * L;
  const int64_t d = m.hidden_size, f = m.intermediate_size, H = m.num_attention_heads, V = m.vocab_size;
  const int64_t layers = m.num_hidden_layers;
  const int64_t tok_d = c * n * d;

  ActivationEstimate a;
  a.layer_input = tok_d;

  // ---- one layer's saved set, besides its input (the table at the top) ----
  const int64_t tok_kv = c * n * m.kv_dim();  // one [B, L, Hkv·Dh]: k or v
  const int64_t attention_saved = tok_d + 4 * n                           // normed1, rstd1
                                  + 2 * tok_d + 2 * tok_kv + 4 * n * H  // q, k, v, output, lse
                                  + tok_d;                                // o_proj's input
  const int64_t residual_saved = tok_d + 4 * n;            // h, rstd2
  // ffn_extra: the most the FFN's backward holds beyond the layer's saved
  // set and its incoming gradient (transients of each op's backward):
  //   dense  down_proj: d(swiglu out) c·n·f and dW c·f·d; or swiglu's: its
  //          output freed, dgate and dup 2 c·n·f
  //   Lory   fused: down's backward holds d(swiglu out) c·n'·f and the
  //          experts' gradient c·E·f·d at once (no W̄ or dW̄ exists); or
  //          swiglu's, as dense.
  //          gemm: down's batched matmul: d(swiglu out) c·n'·f and dW̄
  //          c·S·f·d; or the merge's backward: the experts' gradient c·E·f·d
  //          (swiglu's output and W̄_down freed by then); or swiglu's, as
  //          dense, with W̄_down freed.
  //          When T does not divide L, the output's gradient is padded back
  //          to [S, T, d] (a copy) on top.
  int64_t ffn_saved = 0, ffn_extra = 0, routing_kept = 0;
  if (m.is_lory() && m.moe_type != nn::MoEType::lory) {
    // Expert Choice (nn/expert_choice_ffn.h): the dense FFN's activations for
    // the cap·n gathered rows, plus the gathered input and the gated output
    // ([E, k·m, d] each), the scores S and S^T, and the gates.
    const int64_t E = m.num_experts, rows = static_cast<int64_t>(std::ceil(m.capacity_factor * static_cast<double>(n)));
    const int64_t units = m.moe_type == nn::MoEType::expert_choice_token ? n : B * ((L + m.segment_length - 1) / m.segment_length);
    ffn_saved = tok_d + 2 * c * rows * d + 3 * c * rows * f + 2 * c * units * E + c * rows;
    ffn_extra = std::max(c * rows * f + c * E * f * d, 2 * c * rows * f);
    routing_kept = in.recompute_blocks ? c * units * E : 0;
  } else if (m.is_lory()) {
    const int64_t E = m.num_experts, T = m.segment_length, N = (L + T - 1) / T, S = B * N, np = S * T;
    const int64_t merged = c * S * f * d;  // one W̄ stack [S, f, d]
    const int64_t expert_grad = c * E * f * d;
    const int64_t routing = c * S * d + c * S * E + (N > 1 ? c * S * E : 0);
    const bool fused = in.merge_kernel == nn::MergeKernel::fused;
    ffn_saved = c * np * d + 3 * c * np * f + routing + (fused ? 0 : 3 * merged);
    ffn_extra = fused ? std::max(c * np * f + expert_grad, 2 * c * np * f)
                      : std::max({c * np * f + merged, expert_grad, 2 * c * np * f - merged});
    if (np != n) ffn_extra += c * np * d;
    // LoryFFN::last_routing_weights() keeps each layer's [B, N, E] weights
    // between steps: part of the saved set, except under recomputation.
    routing_kept = in.recompute_blocks ? c * S * E : 0;
  } else {
    ffn_saved = tok_d + 3 * c * n * f;
    ffn_extra = std::max(c * n * f + c * f * d, 2 * c * n * f);
  }
  a.layer_saved = attention_saved + residual_saved + ffn_saved;

  // ---- the head, after the last layer ----
  const int64_t token_copies = B > 1 ? 8 * n : 0;  // each of ids and targets
  a.head_saved = tok_d /* last layer's output */ + 4 * n /* its rstd */ + tok_d /* normed, lm_head's input */ +
                 c * n * V /* logits */ + 4 * n /* lse */ + token_copies /* targets */;
  const int64_t ids = token_copies;  // the embedding's, freed last

  const int64_t per_layer = in.recompute_blocks ? tok_d + routing_kept : tok_d + a.layer_saved;
  a.saved = layers * per_layer + a.head_saved + ids;

  // ---- the top layer's backward ----
  // Live besides the layer's own tensors: the layers below, the ids, and with
  // recomputation the checkpoint's incoming gradient and the recomputed
  // output, both held through the nested backward.
  // Tied embeddings: the output projection's weight gradient [V, d] waits in
  // the one accumulator of embed_tokens.weight until the embedding's own
  // gradient reaches it at the very end (autograd/engine.cpp), so it is
  // live through the whole backward of the layers.
  const int64_t tied_grad = m.tie_word_embeddings ? c * V * d : 0;
  const int64_t rest = (layers - 1) * per_layer + ids + (in.recompute_blocks ? 2 * tok_d : 0) + tied_grad;
  // The FFN's backward: the layer's input and whole saved set, its incoming
  // gradient (without recomputation; with it, the one in `rest`), ffn_extra.
  const int64_t ffn_moment = rest + tok_d + a.layer_saved + (in.recompute_blocks ? 0 : tok_d) + ffn_extra;
  // The attention's backward: x, and the attention's saved set but o_proj's
  // input (freed; as many bytes as x), and 6 tok_d of gradients: the
  // residual's, o_proj's input gradient, its contiguous copy, dq; dk, dv (tok_kv each).
  const int64_t attn_moment = rest + attention_saved + 4 * tok_d + 2 * tok_kv;

  struct Moment {
    const char* what;
    int64_t bytes;
  };
  const Moment moments[] = {
      {"cross-entropy backward", a.saved + c * n * V},
      {"lm_head backward", a.saved + tok_d + c * V * d},
      {"backward of the top layer's FFN", ffn_moment},
      {"backward of the top layer's attention", attn_moment},
  };
  const Moment* peak = &moments[0];
  for (const Moment& mo : moments)
    if (mo.bytes > peak->bytes) peak = &mo;
  a.peak = peak->bytes;
  a.peak_at = peak->what;
  return a;
}

MemoryPlan plan_memory(const nn::LoryConfig& model, const MemoryPlanInput& in) {
  check_input(model, in);
  MemoryPlan p;
  const int64_t psi = flat_parameter_elements(model, in.world), shard = psi / in.world;
  const int64_t c = static_cast<int64_t>(dtype_size(in.compute));
  const bool bf16 = in.compute == DType::bf16, sharded = in.zero >= 1;
  p.flat_elements = psi;
  p.shard_elements = shard;
  p.weights = c * psi;
  p.gradients = c * psi;
  // bf16: the f32 sum of the micro-batches (one rank, stage 0, stage 1 with
  // accumulation), or two f32 staging buckets (zero_optimizer.h).
  // Buckets hold whole 16-element blocks (gradient_reducer.h). The
  // micro-batches are summed in a whole buffer (f32: autograd's own) with
  // one rank, in stage 0, and in stage 1 unless bf16 has nothing to sum.
  const bool accumulator = in.world == 1 || in.zero == 0 || (in.zero == 1 && (in.accumulation > 1 || !bf16));
  const int64_t bucket = std::max<int64_t>(1, in.bucket_bytes / 4 / 16) * 16;
  if (bf16) p.gradients += accumulator ? 4 * psi : 2 * 4 * std::min(bucket, psi);
  // Several ranks: the reduced shard, and without an accumulator the shard
  // each micro-batch's reduction lands in before it is added.
  if (in.world > 1) p.gradients += (accumulator ? 1 : 2) * 4 * shard;
  p.master = bf16 ? 4 * (sharded ? shard : psi) : 0;
  p.moments = 8 * (sharded ? shard : psi);
  p.activations = estimate_activations(model, in);
  return p;
}

}  // namespace lory::train
