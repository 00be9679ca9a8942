// nn/ building blocks: parameter names and module mechanics, configs
// (config.json parsing, validation, presets, parameter counts), attention.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/graph.h"
#include "nn/lory_lm.h"
#include "tensor/ops.h"
#include "tests/errors.h"

using namespace lory;
using namespace lory::nn;

namespace {

std::vector<std::string> names_of(Module& m) {
  std::vector<std::string> names;
  for (auto& [name, slot] : m.named_parameters()) names.push_back(name);
  return names;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x == s) return true;
  return false;
}

// What parse_config says of `json` read from `where` ("no error" if it accepts it).
std::string config_error(const std::string& json, const std::string& where) {
  return lory::test::error_of([&] { parse_config(json, where); });
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lory_test_" + name)).string();
}

}  // namespace

TEST_CASE("nn: a Lory model's parameters have Hugging Face LLaMA names and the stacked expert shapes") {
  manual_seed(1);
  LoryConfig c = preset("tiny");
  LoryLM model(c);
  const std::vector<std::string> names = names_of(model);
  for (const char* n : {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                        "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                        "model.layers.0.post_attention_layernorm.weight", "model.layers.1.mlp.experts.gate_proj.weight",
                        "model.layers.1.mlp.experts.up_proj.weight", "model.layers.1.mlp.experts.down_proj.weight",
                        "model.layers.1.mlp.router.weight", "model.norm.weight", "lm_head.weight"})
    CHECK_MESSAGE(has(names, n), n);
  CHECK(names.size() == 2 + 1 + 2 * (2 + 4 + 4));
  CHECK(model.parameter("model.layers.0.mlp.experts.gate_proj.weight").shape() == Shape{4, 48, 32});
  CHECK(model.parameter("model.layers.0.mlp.experts.down_proj.weight").shape() == Shape{4, 32, 48});
  CHECK(model.parameter("model.layers.0.mlp.router.weight").shape() == Shape{4, 32});
  CHECK(model.parameter("model.layers.0.self_attn.q_proj.weight").shape() == Shape{32, 32});
  CHECK(model.parameter("lm_head.weight").shape() == Shape{64, 32});
  CHECK_THROWS_WITH_AS(model.parameter("model.layers.9.mlp.router.weight"),
                       doctest::Contains("no parameter named 'model.layers.9.mlp.router.weight'"), Error);
  // The shape-only count agrees with the model.
  CHECK(count_parameters(c).total() == model.num_parameters());
}

TEST_CASE("nn: a dense model has the plain LLaMA FFN names") {
  LoryConfig c = preset("tiny");
  c.num_experts = 0;
  LoryLM model(c);
  const std::vector<std::string> names = names_of(model);
  for (const char* n : {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                        "model.layers.0.mlp.down_proj.weight"})
    CHECK_MESSAGE(has(names, n), n);
  CHECK(model.parameter("model.layers.0.mlp.down_proj.weight").shape() == Shape{32, 48});
  CHECK(count_parameters(c).total() == model.num_parameters());
  CHECK(count_parameters(c).active == model.num_parameters());
}

TEST_CASE("nn: to(dtype) keeps names, values and requires_grad; train/eval reaches every module") {
  manual_seed(2);
  LoryLM model(preset("tiny"));
  const Tensor before = model.parameter("model.layers.1.mlp.router.weight").clone();
  model.to(DType::f64);
  const Tensor& after = model.parameter("model.layers.1.mlp.router.weight");
  CHECK(after.dtype() == DType::f64);
  CHECK(after.requires_grad());
  CHECK(after.is_leaf());
  CHECK(before.to_vector<double>() == after.to_vector<double>());
  model.eval();
  CHECK(!model.training());
  CHECK(!model.model.layers[1]->lory_mlp->training());
  model.train();
  CHECK(model.model.layers[0]->self_attn.q_proj.training());
}

TEST_CASE("nn: the same seed gives the same initial model; the router starts small but not zero") {
  manual_seed(3);
  LoryLM a(preset("tiny"));
  manual_seed(3);
  LoryLM b(preset("tiny"));
  for (auto& [name, slot] : a.named_parameters())
    CHECK(slot->to_vector<float>() == b.parameter(name).to_vector<float>());
  const Tensor router = a.parameter("model.layers.0.mlp.router.weight");
  const double rms = std::sqrt(mean(router * router).item());
  CHECK(rms > 0.01);
  CHECK(rms < 0.04);  // router_init_std 0.02
  CHECK(a.parameter("model.norm.weight").to_vector<float>() == std::vector<float>(32, 1.0f));
}

TEST_CASE("config: presets reproduce the paper's parameter counts (App. D)") {
  auto billions = [](const std::string& name) { return count_parameters(preset(name)).total() / 1e9; };
  // 0.3B: 0.37 / 1.83 / 3.49 / 6.81B; 1.5B: 1.46 / 7.80 / 15.05 / 29.55B.
  CHECK(billions("0.3b") == doctest::Approx(0.37).epsilon(0.01));
  CHECK(billions("0.3b-8e") == doctest::Approx(1.83).epsilon(0.005));
  CHECK(billions("0.3b-16e") == doctest::Approx(3.49).epsilon(0.005));
  CHECK(billions("0.3b-32e") == doctest::Approx(6.81).epsilon(0.005));
  CHECK(billions("1.5b") == doctest::Approx(1.46).epsilon(0.005));
  CHECK(billions("1.5b-8e") == doctest::Approx(7.80).epsilon(0.005));
  CHECK(billions("1.5b-16e") == doctest::Approx(15.05).epsilon(0.005));
  CHECK(billions("1.5b-32e") == doctest::Approx(29.55).epsilon(0.005));
  CHECK(billions("7b") == doctest::Approx(6.74).epsilon(0.005));
  CHECK(billions("7b-4e") == doctest::Approx(19.7).epsilon(0.01));
  // Active parameters of a Lory model are those of its dense twin, plus routers.
  const ParameterCount lory = count_parameters(preset("0.3b-32e")), dense = count_parameters(preset("0.3b"));
  CHECK(lory.active == dense.total() + 24 * 32 * 1024);
  CHECK(llama_intermediate_size(1024) == 2816);
  CHECK(llama_intermediate_size(1536) == 4096);
  CHECK(llama_intermediate_size(4096) == 11008);
  CHECK_THROWS_WITH_AS(preset("0.4b"), doctest::Contains("unknown preset '0.4b'; presets are: 0.3b"), Error);
}

TEST_CASE("config: config.json round-trips, and a dense one is a plain LlamaConfig") {
  LoryConfig c = preset("small-8e");
  c.routing = TrainingRouting::prefix;
  c.first_segment = FirstSegment::uniform;
  c.rope_theta = 500000.0;
  const std::string path = temp_path("config.json");
  save_config(c, path);
  const LoryConfig back = load_config(path);
  CHECK(config_to_json(back) == config_to_json(c));
  CHECK(back.routing == TrainingRouting::prefix);
  CHECK(back.first_segment == FirstSegment::uniform);
  CHECK(back.num_experts == 8);
  const std::string dense = config_to_json(preset("small"));
  CHECK(dense.find("\"LlamaForCausalLM\"") != std::string::npos);
  CHECK(dense.find("\"model_type\": \"llama\"") != std::string::npos);
  CHECK(dense.find("num_experts") == std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("config: training and inference routings are different types; each parser names the other kind") {
  // A function that takes one kind cannot be handed the other (compile-time checks).
  static_assert(!std::is_convertible_v<TrainingRouting, InferenceRouting>);
  static_assert(!std::is_constructible_v<InferenceState, int64_t, int64_t, TrainingRouting>);
  static_assert(!std::is_invocable_v<decltype(&LoryFFN::forward_cached), LoryFFN&, const Tensor&, TrainingRouting,
                                     LoryCache&>);
  // A whole-sequence forward takes either.
  static_assert(std::is_convertible_v<TrainingRouting, ForwardRouting>);
  static_assert(std::is_convertible_v<InferenceRouting, ForwardRouting>);
  CHECK(parse_training_routing("prefix") == TrainingRouting::prefix);
  CHECK(parse_inference_routing("segment") == InferenceRouting::segment);
  CHECK(std::get<InferenceRouting>(parse_forward_routing("prompt")) == InferenceRouting::prompt);
  CHECK(std::string(routing_name(ForwardRouting{TrainingRouting::causal_segment})) == "causal_segment");
  CHECK_THROWS_WITH_AS(parse_inference_routing("causal_segment", "--routing"),
                       "--routing: 'causal_segment' is a training routing; generation routes by prompt or segment",
                       Error);
  CHECK_THROWS_WITH_AS(parse_forward_routing("current_segment", "--routing"),
                       "--routing: 'current_segment' is not one of causal_segment, prefix (training routings), "
                       "prompt, segment (inference routings)",
                       Error);
}

TEST_CASE("config: an unknown key, a wrong type or a bad value names the key and the file") {
  auto error_of = [](const std::string& json) { return config_error(json, "run/config.json"); };
  CHECK(error_of(R"({"hidden_sise": 64})").find("run/config.json: key 'hidden_sise' is not a config key") == 0);
  CHECK(error_of(R"({"hidden_size": "64"})") == "run/config.json: key 'hidden_size' must be an integer, got \"64\"");
  CHECK(error_of(R"({"routing": "random"})") ==
        "run/config.json: key 'routing': 'random' is not one of causal_segment, prefix");
  CHECK(error_of(R"({"routing": "prompt"})") ==
        "run/config.json: key 'routing': 'prompt' is an inference routing (generation chooses it); a model trains "
        "with causal_segment or prefix");
  CHECK(error_of(R"({"hidden_size": 100, "num_attention_heads": 16})") ==
        "run/config.json: hidden_size 100 is not divisible by num_attention_heads 16");
  CHECK(error_of(R"({"num_experts": -1})") == "run/config.json: num_experts must be >= 0 (0 = dense), got -1");
  CHECK(error_of(R"({"router_init_std": 0})").find("router_init_std must be > 0") != std::string::npos);
  CHECK(error_of(R"({"num_attention_heads": 4, "num_key_value_heads": 3})") ==
        "run/config.json: num_key_value_heads 3 must divide num_attention_heads 4 (each key/value head serves a "
        "group of query heads)");
  CHECK(error_of(R"({"hidden_act": "gelu"})") ==
        "run/config.json: key 'hidden_act' must be \"silu\" (SwiGLU), got \"gelu\"");
  CHECK(error_of("{\"vocab_size\": 10,").find("run/config.json: not valid JSON") == 0);
  // Keys transformers writes are accepted.
  CHECK(error_of(R"({"model_type": "llama", "torch_dtype": "bfloat16", "use_cache": true})") == "no error");
  // A misspelt key of ours gets the nearest one; a key of some other model the list.
  CHECK(error_of(R"({"hidden_sise": 64})") ==
        "run/config.json: key 'hidden_sise' is not a config key; did you mean 'hidden_size'?");
  CHECK(error_of(R"({"n_embd": 64})").find("run/config.json: key 'n_embd' is not a config key; known keys: vocab_size") ==
        0);
  // LlamaConfig keys we read at their defaults only: anything else is refused, naming it.
  CHECK(error_of(R"({"attention_bias": true})") ==
        "run/config.json: key 'attention_bias' is true; supported: false (biases in the attention projections are "
        "not implemented)");
  CHECK(error_of(R"({"mlp_bias": true})").find("key 'mlp_bias' is true; supported: false") != std::string::npos);
  CHECK(error_of(R"({"rope_scaling": {"type": "linear", "factor": 2.0}})") ==
        "run/config.json: key 'rope_scaling' is {\"type\":\"linear\",\"factor\":2.0}; supported: null (RoPE scaling "
        "is not implemented)");
  CHECK(error_of(R"({"attention_dropout": 0.1})").find("key 'attention_dropout' is 0.1; supported: 0.0") !=
        std::string::npos);
  CHECK(error_of(R"({"hidden_size": 64, "num_attention_heads": 4, "head_dim": 32})") ==
        "run/config.json: key 'head_dim' is 32; supported: hidden_size / num_attention_heads = 64 / 4 (or null)");
  CHECK(error_of(R"({"eos_token_id": "</s>"})").find("key 'eos_token_id' must be an integer token id") !=
        std::string::npos);
}

TEST_CASE("config: a config.json as transformers' LlamaConfig.save_pretrained writes it loads with HF's defaults") {
  // transformers 4.4x, LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=2,
  // num_attention_heads=4, vocab_size=256).save_pretrained(...), key for key; LLaMA 3 style list of eos ids.
  const LoryConfig c = parse_config(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 1, "eos_token_id": [2, 7], "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 176, "max_position_embeddings": 2048, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "pad_token_id": null,
    "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 10000.0,
    "tie_word_embeddings": false, "torch_dtype": "float32", "transformers_version": "4.46.0",
    "use_cache": true, "vocab_size": 256})",
                                    "hf/config.json");
  CHECK(c.hidden_size == 64);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 4);  // absent: one key/value head per head, as in transformers
  CHECK(c.eos_token_id == 2);         // the first of the list
  CHECK(c.bos_token_id == 1);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(!c.is_lory());
  // bos/eos null keep their defaults.
  CHECK(parse_config(R"({"bos_token_id": null, "num_attention_heads": 4, "hidden_size": 64})", "x").bos_token_id ==
        LoryConfig{}.bos_token_id);
  CHECK_THROWS_WITH_AS(load_config("/nonexistent/config.json"),
                       doctest::Contains("/nonexistent/config.json: cannot open config file"), Error);
}

TEST_CASE("config: transformers 5's config.json (rope_parameters, dtype) loads; scaled RoPE is refused") {
  // transformers 5.25, LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
  // num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0), key for key.
  const LoryConfig c = parse_config(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
    "dtype": "float32", "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu", "hidden_size": 32,
    "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 2048, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
    "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "tie_word_embeddings": true,
    "transformers_version": "5.25.0", "use_cache": true, "vocab_size": 96})",
                                    "hf5/config.json");
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.tie_word_embeddings);
  auto error_of = [](const std::string& json) { return config_error(json, "hf5/config.json"); };
  CHECK(error_of(R"({"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0}})") ==
        "hf5/config.json: key 'rope_parameters': rope_type is \"llama3\"; supported: \"default\" (RoPE scaling is "
        "not implemented)");
  CHECK(error_of(R"({"rope_parameters": {"rope_type": "default", "factor": 2.0}})") ==
        "hf5/config.json: key 'rope_parameters': 'factor' is 2.0; supported: rope_type \"default\" and rope_theta only");
  CHECK(error_of(R"({"rope_parameters": 3})").find("key 'rope_parameters' must be an object") != std::string::npos);
}

TEST_CASE("attention: cached decoding one token at a time equals attention over the whole sequence") {
  manual_seed(4);
  LoryConfig c = preset("tiny");
  Attention attn(c, {});
  attn.to(DType::f64);
  NoGradGuard no_grad;
  const Tensor x = randn({2, 9, 32}).to(DType::f64);
  const Tensor full = attn.forward(x);
  KVCache cache;
  const Tensor head = attn.forward(x.narrow(1, 0, 4), &cache, 9);
  CHECK(amax(abs(head - full.narrow(1, 0, 4))).item() < 1e-12);
  for (int64_t t = 4; t < 9; ++t) {
    const Tensor step = attn.forward(x.narrow(1, t, 1), &cache, 9);
    CHECK(amax(abs(step - full.narrow(1, t, 1))).item() < 1e-12);
  }
  CHECK(cache.length == 9);
  CHECK_THROWS_WITH_AS(attn.forward(x.narrow(1, 0, 1), &cache, 9), doctest::Contains("KV cache is full"), Error);
}

TEST_CASE("nn: hidden_states are what lm_head turns into the logits") {
  manual_seed(5);
  LoryLM model(preset("tiny"));
  NoGradGuard no_grad;
  const Tensor ids = from_vector(std::vector<int64_t>{3, 1, 4, 1, 5, 9, 2}, {1, 7}, {DType::i64});
  const Tensor h = model.hidden_states(ids, {TrainingRouting::causal_segment});
  CHECK(h.shape() == Shape{1, 7, 32});
  CHECK(amax(abs(model.logits_from_hidden(h) - model.forward(ids))).item() == 0.0);
}

TEST_CASE("attention: grouped-query attention equals multi-head attention with each key/value head repeated") {
  // transformers' repeat_kv convention: query head h reads key/value head
  // h / (H / Hkv). A GQA layer must compute what an MHA layer computes whose
  // k_proj/v_proj rows are the GQA ones, each head's block repeated H / Hkv times.
  manual_seed(6);
  LoryConfig gqa = preset("tiny");  // d 32, 4 heads of 8
  gqa.num_key_value_heads = 2;
  LoryConfig mha = gqa;
  mha.num_key_value_heads = 4;
  Attention a(gqa, {}), b(mha, {});
  a.to(DType::f64);
  b.to(DType::f64);
  CHECK(a.k_proj.weight.shape() == Shape{16, 32});  // Hkv * Dh = 2 * 8
  NoGradGuard no_grad;
  b.q_proj.weight.copy_(a.q_proj.weight);
  b.o_proj.weight.copy_(a.o_proj.weight);
  for (auto [from, to] : {std::pair{&a.k_proj, &b.k_proj}, std::pair{&a.v_proj, &b.v_proj}})
    for (int64_t h = 0; h < 4; ++h) to->weight.narrow(0, h * 8, 8).copy_(from->weight.narrow(0, (h / 2) * 8, 8));
  const Tensor x = randn({2, 7, 32}).to(DType::f64);
  CHECK(amax(abs(a.forward(x) - b.forward(x))).item() < 1e-12);
  // And the KV cache holds Hkv heads; decoding token by token gives the same.
  KVCache cache;
  const Tensor full = a.forward(x);
  a.forward(x.narrow(1, 0, 3), &cache, 7);
  CHECK(cache.k.shape() == Shape{2, 2, 7, 8});
  for (int64_t t = 3; t < 7; ++t)
    CHECK(amax(abs(a.forward(x.narrow(1, t, 1), &cache, 7) - full.narrow(1, t, 1))).item() < 1e-12);
  // Counts follow the smaller k/v projections.
  CHECK(count_parameters(gqa).attention == count_parameters(mha).attention - 2 * 2 * 32 * 16);
  gqa.num_key_value_heads = 3;
  CHECK_THROWS_WITH_AS(gqa.validate("cfg"), doctest::Contains("cfg: num_key_value_heads 3 must divide num_attention_heads 4"),
                       Error);
}

TEST_CASE("nn: a tied model has no lm_head.weight, computes logits with embed_tokens, and both uses train it") {
  manual_seed(7);
  LoryConfig tied = preset("tiny");
  tied.tie_word_embeddings = true;
  LoryConfig untied = tied;
  untied.tie_word_embeddings = false;
  LoryLM a(tied), b(untied);
  a.to(DType::f64);
  b.to(DType::f64);
  const std::vector<std::string> names = names_of(a);
  CHECK(!has(names, "lm_head.weight"));
  CHECK(names.size() + 1 == names_of(b).size());
  CHECK(count_parameters(tied).total() + tied.vocab_size * tied.hidden_size == count_parameters(untied).total());
  CHECK(a.num_parameters() == count_parameters(tied).total());
  {
    NoGradGuard no_grad;
    for (auto& [name, slot] : a.named_parameters()) b.parameter(name).copy_(*slot);
    b.lm_head->weight.copy_(a.model.embed_tokens.weight);
  }
  const Tensor tokens = from_vector(std::vector<int64_t>{3, 1, 4, 1, 5, 9, 2, 6, 5}, {1, 9}, {DType::i64});
  const Tensor la = a.loss(tokens), lb = b.loss(tokens);
  CHECK(std::abs(la.item() - lb.item()) < 1e-12);
  la.backward();
  lb.backward();
  // The tied matrix's gradient is the sum of its two uses' gradients.
  const Tensor want = b.model.embed_tokens.weight.grad() + b.lm_head->weight.grad();
  CHECK(amax(abs(a.model.embed_tokens.weight.grad() - want)).item() < 1e-12);
  CHECK(amax(abs(b.lm_head->weight.grad())).item() > 0.0);  // the lm_head use matters
}
