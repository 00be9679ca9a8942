// lory_lm.cpp — see lory_lm.h.
#include "nn/lory_lm.h"

#include <string>

#include "autograd/checkpoint.h"
#include "tensor/graph.h"
#include "tensor/profiler.h"

namespace lory::nn {

namespace {
// Runs f with `layer` as the layer type a profile charges its ops and their
// backward Nodes to (tensor/profiler.h; nothing when not profiling). These
// are the model's layer types: embedding, norm, attention, ffn / lory_ffn,
// residual, lm_head, loss (and decoder_layer: a block recomputed in backward).
template <typename F>
auto in_layer(const char* layer, F&& f) {
  profiler::LayerScope scope(layer);
  return f();
}
}  // namespace

DecoderLayer::DecoderLayer(const LoryConfig& c, const InitOptions& init)
    : input_layernorm(c.hidden_size, c.rms_norm_eps, init),
      self_attn(c, init),
      post_attention_layernorm(c.hidden_size, c.rms_norm_eps, init) {
  register_module("input_layernorm", input_layernorm);
  register_module("self_attn", self_attn);
  register_module("post_attention_layernorm", post_attention_layernorm);
  if (c.is_lory() && c.moe_type != MoEType::lory) {
    expert_choice_mlp = std::make_unique<ExpertChoiceFFN>(c, init);
    register_module("mlp", *expert_choice_mlp);
  } else if (c.is_lory()) {
    lory_mlp = std::make_unique<LoryFFN>(c, init);
    register_module("mlp", *lory_mlp);
  } else {
    dense_mlp = std::make_unique<SwiGLU>(c.hidden_size, c.intermediate_size, init);
    register_module("mlp", *dense_mlp);
  }
}

Tensor DecoderLayer::mlp_forward(const Tensor& x, const ForwardOptions& options) {
  if (expert_choice_mlp) {  // routes the same way whatever options.routing says (expert_choice_ffn.h)
    profiler::LayerScope layer("expert_choice_ffn");
    return expert_choice_mlp->forward(x);
  }
  profiler::LayerScope layer(lory_mlp ? "lory_ffn" : "ffn");
  return lory_mlp ? lory_mlp->forward(x, options.routing, options.prompt_length) : dense_mlp->forward(x);
}

// h = x + attn(norm1(x));  out = h + mlp(norm2(h)). The add that makes h and
// norm2 run as one fused op (add_rms_norm): one pass over [B, L, d] on CUDA.
Tensor DecoderLayer::forward(const Tensor& x, const ForwardOptions& options) {
  const Tensor normed = in_layer("norm", [&] { return input_layernorm.forward(x); });
  const Tensor attended = in_layer("attention", [&] { return self_attn.forward(normed); });
  const auto [h, n] = in_layer("norm", [&] { return post_attention_layernorm.add_and_forward(x, attended); });
  const Tensor mlp = mlp_forward(n, options);
  return in_layer("residual", [&] { return h + mlp; });
}

Tensor DecoderLayer::forward_cached(const Tensor& x, InferenceState& state, size_t layer) {
  LORY_CHECK(!expert_choice_mlp, "forward_cached: an Expert Choice model (moe_type ",
             moe_type_name(expert_choice_mlp ? expert_choice_mlp->level : MoEType::lory),
             ") cannot decode token by token: its experts choose among all tokens of a batch at once ",
             "(nn/expert_choice_ffn.h); evaluate it on whole sequences (lory_eval)");
  const Tensor normed = in_layer("norm", [&] { return input_layernorm.forward(x); });
  const Tensor attended =
      in_layer("attention", [&] { return self_attn.forward(normed, &state.kv[layer], state.capacity); });
  const auto [h, n] = in_layer("norm", [&] { return post_attention_layernorm.add_and_forward(x, attended); });
  const Tensor mlp = in_layer(lory_mlp ? "lory_ffn" : "ffn", [&] {
    return lory_mlp ? lory_mlp->forward_cached(n, state.routing, state.lory[layer]) : dense_mlp->forward(n);
  });
  return in_layer("residual", [&] { return h + mlp; });
}

Backbone::Backbone(const LoryConfig& c, const InitOptions& init)
    : embed_tokens(c.vocab_size, c.hidden_size, init), norm(c.hidden_size, c.rms_norm_eps, init) {
  register_module("embed_tokens", embed_tokens);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(std::make_unique<DecoderLayer>(c, init));
    register_module("layers." + std::to_string(i), *layers.back());
  }
  register_module("norm", norm);
}

namespace {
InitOptions with_std(InitOptions init, double std) {
  init.std = std;
  return init;
}
}  // namespace

LoryLM::LoryLM(const LoryConfig& c, InitOptions init)
    : config((c.validate(), c)),
      model(c, with_std(init, c.initializer_range)) {
  register_module("model", model);
  if (!c.tie_word_embeddings) {
    lm_head = std::make_unique<Linear>(c.hidden_size, c.vocab_size, with_std(init, c.initializer_range));
    register_module("lm_head", *lm_head);
  }
}

Tensor LoryLM::logits_from_hidden(const Tensor& hidden) const {
  // Tied: W is embed_tokens.weight [V, d], and its gradient from here adds
  // to the embedding lookup's in the one leaf.
  return in_layer("lm_head", [&] { return linear(hidden, output_weight()); });
}

Tensor LoryLM::forward(const Tensor& ids) { return forward(ids, ForwardOptions{config.routing}); }

Tensor LoryLM::forward(const Tensor& ids, const ForwardOptions& options) {
  LORY_CHECK(ids.dim() == 2, "LoryLM: ids must be [B, L], got ", ids.describe());
  LORY_CHECK(ids.size(1) <= config.max_position_embeddings, "LoryLM: sequence of ", ids.size(1),
             " tokens is longer than max_position_embeddings = ", config.max_position_embeddings);
  return forward_embeddings(in_layer("embedding", [&] { return model.embed_tokens.forward(ids); }), options);
}

Tensor LoryLM::forward_embeddings(const Tensor& embeddings, const ForwardOptions& options) {
  const Tensor hidden = final_hidden(embeddings, options);
  return logits_from_hidden(hidden);
}

Tensor LoryLM::hidden_states(const Tensor& ids, const ForwardOptions& options) {
  LORY_CHECK(ids.dim() == 2, "LoryLM: ids must be [B, L], got ", ids.describe());
  return final_hidden(in_layer("embedding", [&] { return model.embed_tokens.forward(ids); }), options);
}

Tensor LoryLM::final_hidden(const Tensor& embeddings, const ForwardOptions& options) {
  LORY_CHECK(embeddings.dim() == 3 && embeddings.size(2) == config.hidden_size, "LoryLM: embeddings must be [B, L, ",
             config.hidden_size, "], got ", embeddings.describe());
  Tensor x = embeddings;
  for (auto& layer : model.layers) {
    if (recompute_activations) {
      DecoderLayer* block = layer.get();
      profiler::LayerScope recomputed("decoder_layer");
      x = checkpoint([block, options](const Tensor& in) { return block->forward(in, options); }, x);
    } else {
      x = layer->forward(x, options);
    }
  }
  return in_layer("norm", [&] { return model.norm.forward(x); });
}

Tensor LoryLM::forward_cached(const Tensor& ids, InferenceState& state) {
  LORY_CHECK(ids.dim() == 2, "LoryLM: ids must be [B, L], got ", ids.describe());
  LORY_CHECK(state.length() + ids.size(1) <= config.max_position_embeddings, "LoryLM: ", state.length(), " + ",
             ids.size(1), " tokens exceed max_position_embeddings = ", config.max_position_embeddings);
  LORY_CHECK(state.kv.size() == model.layers.size(), "LoryLM: inference state has ", state.kv.size(),
             " layers, the model ", model.layers.size());
  Tensor x = in_layer("embedding", [&] { return model.embed_tokens.forward(ids); });
  for (size_t i = 0; i < model.layers.size(); ++i) x = model.layers[i]->forward_cached(x, state, i);
  const Tensor hidden = in_layer("norm", [&] { return model.norm.forward(x); });
  return logits_from_hidden(hidden);
}

Tensor LoryLM::loss(const Tensor& tokens) { return loss(tokens, ForwardOptions{config.routing}); }

Tensor LoryLM::loss(const Tensor& tokens, const ForwardOptions& options) {
  LORY_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2, "LoryLM::loss: tokens must be [B, L+1] with L >= 1, got ",
             tokens.describe());
  const int64_t B = tokens.size(0), L = tokens.size(1) - 1;
  const Tensor logits = forward(tokens.narrow(1, 0, L), options);
  const Tensor targets = tokens.narrow(1, 1, L).reshape({B * L});
  return in_layer("loss", [&] { return cross_entropy(logits.reshape({B * L, config.vocab_size}), targets); });
}

std::vector<Tensor> LoryLM::routing_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : model.layers)
    if (layer->lory_mlp)
      out.push_back(layer->lory_mlp->last_routing_weights());
    else if (layer->expert_choice_mlp)
      out.push_back(layer->expert_choice_mlp->last_routing_weights());
  return out;
}

void LoryLM::set_merge_kernel(MergeKernel kernel) {
  for (auto& layer : model.layers)
    if (layer->lory_mlp) layer->lory_mlp->merge_kernel = kernel;
}

}  // namespace lory::nn
