// lory_lm.h — LoryLM: a LLaMA-style decoder whose FFNs are Lory layers.
//
//   ids [B, L] -> model.embed_tokens -> N x DecoderLayer -> model.norm -> lm_head -> logits [B, L, V]
//   DecoderLayer: h = x + self_attn(input_layernorm(x))
//                 y = h + mlp(post_attention_layernorm(h))
// mlp is a dense SwiGLU when num_experts == 0 (the model of the dense
// warm-up, and the paper's dense baselines), a LoryFFN otherwise, or, for
// the paper's §5.3 baselines (moe_type expert_choice_*), an ExpertChoiceFFN.
// Parameter names are Hugging Face LLaMA's (nn/module.h). Embeddings are
// untied (the paper's models) unless tie_word_embeddings: then the logits are
// hidden · model.embed_tokens.weight^T and there is no lm_head.weight, as in
// a tied transformers checkpoint.
#pragma once

#include <memory>
#include <vector>

#include "nn/attention.h"
#include "nn/config.h"
#include "nn/expert_choice_ffn.h"
#include "nn/linear.h"
#include "nn/lory_ffn.h"
#include "nn/swiglu_ffn.h"

namespace lory::nn {

// How a whole-sequence forward routes its Lory layers: a TrainingRouting
// (what training computes), or an InferenceRouting (what generation would
// compute on the same tokens; nn/config.h).
struct ForwardOptions {
  ForwardRouting routing;     // e.g. {TrainingRouting::causal_segment} or {InferenceRouting::prompt, P}
  int64_t prompt_length = 0;  // InferenceRouting::prompt: tokens whose mean decides (0 = all)
};

// What generation keeps between calls: per layer, keys/values and the Lory
// routing state.
struct InferenceState {
  InferenceState(int64_t num_layers, int64_t capacity, InferenceRouting routing)
      : kv(num_layers), lory(num_layers), capacity(capacity), routing(routing) {}
  std::vector<KVCache> kv;
  std::vector<LoryCache> lory;
  int64_t capacity;          // positions the KV caches hold
  InferenceRouting routing;  // prompt or segment
  int64_t length() const { return kv.empty() ? 0 : kv[0].length; }
};

class DecoderLayer : public Module {
 public:
  DecoderLayer(const LoryConfig& config, const InitOptions& init);
  Tensor forward(const Tensor& x, const ForwardOptions& options);
  Tensor forward_cached(const Tensor& x, InferenceState& state, size_t layer);
  Tensor mlp_forward(const Tensor& x, const ForwardOptions& options);

  RMSNorm input_layernorm;
  Attention self_attn;
  RMSNorm post_attention_layernorm;
  std::unique_ptr<SwiGLU> dense_mlp;                   // exactly one of these three is set,
  std::unique_ptr<LoryFFN> lory_mlp;                   // by num_experts and moe_type;
  std::unique_ptr<ExpertChoiceFFN> expert_choice_mlp;  // it is registered as "mlp"
};

// The "model." part of the tree (HF's LlamaModel).
class Backbone : public Module {
 public:
  Backbone(const LoryConfig& config, const InitOptions& init);
  Embedding embed_tokens;
  std::vector<std::unique_ptr<DecoderLayer>> layers;
  RMSNorm norm;
};

class LoryLM : public Module {
 public:
  explicit LoryLM(const LoryConfig& config, InitOptions init = {});

  // ids: integer [B, L] -> logits [B, L, V]. Routing defaults to the config's
  // (the TrainingRouting the model trains with).
  Tensor forward(const Tensor& ids);
  Tensor forward(const Tensor& ids, const ForwardOptions& options);
  // The same from input embeddings x: [B, L, d] (what model.embed_tokens
  // returns), for tests and analyses that need gradients at the input.
  Tensor forward_embeddings(const Tensor& x, const ForwardOptions& options);
  // The final hidden states (after model.norm, before lm_head): [B, L, d].
  // Their mean over a document is the model's document embedding.
  Tensor hidden_states(const Tensor& ids, const ForwardOptions& options);
  // Incremental: ids [B, L] are the tokens after state.length(); returns their logits.
  Tensor forward_cached(const Tensor& ids, InferenceState& state);
  InferenceState new_inference_state(int64_t capacity, InferenceRouting routing) const {
    return InferenceState(config.num_hidden_layers, capacity, routing);
  }
  // tokens: integer [B, L+1]. Mean cross-entropy of predicting tokens[:, 1:]
  // from tokens[:, :-1] (an f32 scalar). Routing defaults to the config's.
  Tensor loss(const Tensor& tokens);
  Tensor loss(const Tensor& tokens, const ForwardOptions& options);

  // Per Lory layer, the routing weights of the last forward ([B, N, E]); per
  // Expert Choice layer its scores ([B, N, E], or [B, L, E] at token level); empty for dense.
  std::vector<Tensor> routing_weights() const;
  // Sets how every Lory layer applies its merged experts (fused by default).
  void set_merge_kernel(MergeKernel kernel);
  // Activation recomputation per decoder layer (autograd/checkpoint.h): a
  // training forward keeps only each layer's input and runs the layer again
  // in backward. For long contexts, where activations dominate memory.
  bool recompute_activations = false;

  // The output projection: hidden [..., d] -> logits [..., V], by lm_head
  // or, when tied, by the input embedding matrix [V, d].
  Tensor logits_from_hidden(const Tensor& hidden) const;
  const Tensor& output_weight() const { return lm_head ? lm_head->weight : model.embed_tokens.weight; }

  LoryConfig config;
  Backbone model;
  std::unique_ptr<Linear> lm_head;  // null when config.tie_word_embeddings

 private:
  // embeddings [B, L, d] -> the layers -> model.norm.
  Tensor final_hidden(const Tensor& embeddings, const ForwardOptions& options);
};

}  // namespace lory::nn
