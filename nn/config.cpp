// config.cpp — LoryConfig: names, validation, presets, config.json.
#include "nn/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "io/json_text.h"
#include "tensor/error.h"

namespace lory::nn {

namespace {
using Json = nlohmann::ordered_json;

const std::vector<std::pair<TrainingRouting, const char*>> kTrainingRoutings = {
    {TrainingRouting::causal_segment, "causal_segment"}, {TrainingRouting::prefix, "prefix"}};
const std::vector<std::pair<InferenceRouting, const char*>> kInferenceRoutings = {
    {InferenceRouting::prompt, "prompt"}, {InferenceRouting::segment, "segment"}};
const std::vector<std::pair<FirstSegment, const char*>> kFirstSegments = {{FirstSegment::self, "self"},
                                                                          {FirstSegment::uniform, "uniform"}};
const std::vector<std::pair<MoEType, const char*>> kMoETypes = {
    {MoEType::lory, "lory"},
    {MoEType::expert_choice_segment, "expert_choice_segment"},
    {MoEType::expert_choice_token, "expert_choice_token"}};
const std::vector<std::pair<ExpertChoiceGates, const char*>> kExpertChoiceGates = {
    {ExpertChoiceGates::softmax, "softmax"}, {ExpertChoiceGates::softmax_times_experts, "softmax_times_experts"}};
const std::vector<std::pair<MergeKernel, const char*>> kMergeKernels = {{MergeKernel::fused, "fused"},
                                                                        {MergeKernel::gemm, "gemm"}};

template <typename E>
const char* name_in(const std::vector<std::pair<E, const char*>>& table, E value) {
  for (const auto& [v, n] : table)
    if (v == value) return n;
  return "?";
}

template <typename E>
std::vector<std::string> names_in(const std::vector<std::pair<E, const char*>>& table) {
  std::vector<std::string> names;
  for (const auto& [v, n] : table) names.emplace_back(n);
  return names;
}

template <typename E>
E parse_in(const std::vector<std::pair<E, const char*>>& table, const std::string& name, const std::string& where) {
  std::string allowed;
  for (const auto& [v, n] : table) {
    if (name == n) return v;
    allowed += (allowed.empty() ? "" : ", ") + std::string(n);
  }
  fail(where, ": '", name, "' is not one of ", allowed);
}
}  // namespace

const char* routing_name(TrainingRouting r) { return name_in(kTrainingRoutings, r); }
const char* routing_name(InferenceRouting r) { return name_in(kInferenceRoutings, r); }
const char* routing_name(const ForwardRouting& r) {
  return std::visit([](auto routing) { return routing_name(routing); }, r);
}

namespace {
template <typename E>
bool is_name_in(const std::vector<std::pair<E, const char*>>& table, const std::string& name) {
  for (const auto& [v, n] : table)
    if (name == n) return true;
  return false;
}
}  // namespace

TrainingRouting parse_training_routing(const std::string& name, const std::string& where) {
  if (is_name_in(kInferenceRoutings, name))
    fail(where, ": '", name, "' is an inference routing (generation chooses it); a model trains with ",
         "causal_segment or prefix");
  return parse_in(kTrainingRoutings, name, where);
}
InferenceRouting parse_inference_routing(const std::string& name, const std::string& where) {
  if (is_name_in(kTrainingRoutings, name))
    fail(where, ": '", name, "' is a training routing; generation routes by prompt or segment");
  return parse_in(kInferenceRoutings, name, where);
}
ForwardRouting parse_forward_routing(const std::string& name, const std::string& where) {
  if (is_name_in(kTrainingRoutings, name)) return parse_in(kTrainingRoutings, name, where);
  if (is_name_in(kInferenceRoutings, name)) return parse_in(kInferenceRoutings, name, where);
  fail(where, ": '", name, "' is not one of causal_segment, prefix (training routings), prompt, segment ",
       "(inference routings)");
}
std::vector<std::string> training_routing_names() { return names_in(kTrainingRoutings); }
std::vector<std::string> first_segment_names() { return names_in(kFirstSegments); }
std::vector<std::string> moe_type_names() { return names_in(kMoETypes); }
std::vector<std::string> expert_choice_gates_names() { return names_in(kExpertChoiceGates); }

const char* first_segment_name(FirstSegment f) { return name_in(kFirstSegments, f); }
FirstSegment parse_first_segment(const std::string& name, const std::string& where) {
  return parse_in(kFirstSegments, name, where);
}

const char* moe_type_name(MoEType t) { return name_in(kMoETypes, t); }
MoEType parse_moe_type(const std::string& name, const std::string& where) { return parse_in(kMoETypes, name, where); }

const char* expert_choice_gates_name(ExpertChoiceGates g) { return name_in(kExpertChoiceGates, g); }
ExpertChoiceGates parse_expert_choice_gates(const std::string& name, const std::string& where) {
  return parse_in(kExpertChoiceGates, name, where);
}

const char* merge_kernel_name(MergeKernel k) { return name_in(kMergeKernels, k); }
MergeKernel parse_merge_kernel(const std::string& name, const std::string& where) {
  return parse_in(kMergeKernels, name, where);
}

int64_t llama_intermediate_size(int64_t d) { return 256 * ((8 * d / 3 + 255) / 256); }

void LoryConfig::validate(const std::string& where) const {
  auto positive = [&](const char* key, int64_t v) { LORY_CHECK(v > 0, where, ": ", key, " must be > 0, got ", v); };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("max_position_embeddings", max_position_embeddings);
  positive("segment_length", segment_length);
  LORY_CHECK(hidden_size % num_attention_heads == 0, where, ": hidden_size ", hidden_size,
             " is not divisible by num_attention_heads ", num_attention_heads);
  LORY_CHECK(head_dim() % 2 == 0, where, ": the head dim hidden_size / num_attention_heads = ", head_dim(),
             " must be even for rotary embeddings");
  // Grouped-query attention (Ainslie et al., 2023; LLaMA-2 70B, LLaMA-3):
  // heads share key/value heads in groups of num_attention_heads / num_key_value_heads.
  LORY_CHECK(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0, where,
             ": num_key_value_heads ", num_key_value_heads, " must divide num_attention_heads ", num_attention_heads,
             " (each key/value head serves a group of query heads)");
  LORY_CHECK(num_experts >= 0, where, ": num_experts must be >= 0 (0 = dense), got ", num_experts);
  LORY_CHECK(rms_norm_eps > 0, where, ": rms_norm_eps must be > 0, got ", rms_norm_eps);
  LORY_CHECK(rope_theta > 0, where, ": rope_theta must be > 0, got ", rope_theta);
  LORY_CHECK(initializer_range > 0, where, ": initializer_range must be > 0, got ", initializer_range);
  LORY_CHECK(capacity_factor > 0 && (num_experts == 0 || capacity_factor <= static_cast<double>(num_experts)), where,
             ": capacity_factor must be in (0, num_experts = ", num_experts, "] (each Expert Choice expert takes ",
             "capacity_factor / num_experts of the units), got ", capacity_factor);
  // The Expert Choice keys mean nothing to a Lory layer: set there, they are a mistake.
  LORY_CHECK(moe_type != MoEType::lory || (capacity_factor == 1.0 && expert_choice_gates == ExpertChoiceGates::softmax),
             where, ": capacity_factor and expert_choice_gates are for moe_type expert_choice_segment or ",
             "expert_choice_token; this is moe_type lory (capacity_factor ", capacity_factor, ", expert_choice_gates ",
             expert_choice_gates_name(expert_choice_gates), ")");
  LORY_CHECK(router_init_std > 0, where, ": router_init_std must be > 0 (a zero router never learns: with identical ",
             "experts its gradient is zero), got ", router_init_std);
}

FlopsPerToken flops_per_token(const LoryConfig& c, int64_t context) {
  const double d = static_cast<double>(c.hidden_size), f = static_cast<double>(c.intermediate_size);
  const double layers = static_cast<double>(c.num_hidden_layers), V = static_cast<double>(c.vocab_size);
  const double E = static_cast<double>(c.num_experts), T = static_cast<double>(c.segment_length);
  const double L = static_cast<double>(context);
  FlopsPerToken out;
  const double kv = static_cast<double>(c.kv_dim());
  out.matmul = layers * 2 * (2 * d * d + 2 * d * kv + 3 * d * f) + 2 * d * V;
  out.attention = layers * 4 * d * (L + 1) / 2;
  if (c.is_lory() && c.moe_type != MoEType::lory) {  // Expert Choice: no merge; capacity_factor FFNs per token
    out.matmul += layers * 2 * 3 * d * f * (c.capacity_factor - 1);
    out.router = layers * 2 * d * E / (c.moe_type == MoEType::expert_choice_token ? 1.0 : T);
    return out;
  }
  out.merge = c.is_lory() ? layers * 6 * E * d * f / T : 0.0;
  out.router = c.is_lory() ? layers * 2 * d * E / T : 0.0;
  return out;
}

ParameterCount count_parameters(const LoryConfig& c) {
  const int64_t d = c.hidden_size, f = c.intermediate_size, layers = c.num_hidden_layers;
  const int64_t experts = std::max<int64_t>(c.num_experts, 1);
  ParameterCount n;
  n.embeddings = (c.tie_word_embeddings ? 1 : 2) * c.vocab_size * d;
  n.attention = layers * (2 * d * d + 2 * d * c.kv_dim());  // q, o: d x d; k, v: d x (kv heads x Dh)
  n.ffn = layers * experts * 3 * d * f;
  n.router = layers * c.num_experts * d;
  n.norms = (2 * layers + 1) * d;
  n.active = n.embeddings + n.attention + layers * 3 * d * f + n.router + n.norms;
  return n;
}

// ---- presets ----

namespace {
LoryConfig sized(int64_t layers, int64_t d, int64_t heads, int64_t experts) {
  LoryConfig c;
  c.num_hidden_layers = layers;
  c.hidden_size = d;
  c.num_attention_heads = c.num_key_value_heads = heads;
  c.intermediate_size = llama_intermediate_size(d);
  c.num_experts = experts;
  return c;
}

const std::map<std::string, std::function<LoryConfig()>>& presets() {
  static const std::map<std::string, std::function<LoryConfig()>> table = [] {
    std::map<std::string, std::function<LoryConfig()>> t;
    // App. D: 0.3B is 24 x 1024 (16 heads of 64), 1.5B is 48 x 1536 (24 heads of 64).
    for (int64_t e : {0, 8, 16, 32}) {
      const std::string suffix = e ? std::string("-").append(std::to_string(e)).append("e") : std::string();
      t["0.3b" + suffix] = [e] { return sized(24, 1024, 16, e); };
      t["1.5b" + suffix] = [e] { return sized(48, 1536, 24, e); };
    }
    // App. E: LLaMA-2 7B shape, dense and with 4 experts.
    for (int64_t e : {0, 4}) t[e ? "7b-4e" : "7b"] = [e] { return sized(32, 4096, 32, e); };
    // Small shapes for tests and CPU runs.
    t["tiny"] = [] {
      LoryConfig c = sized(2, 32, 4, 4);
      c.vocab_size = 64;
      c.intermediate_size = 48;
      c.segment_length = 4;
      c.max_position_embeddings = 64;
      return c;
    };
    for (int64_t e : {0, 8}) {
      t[e ? "small-8e" : "small"] = [e] {
        LoryConfig c = sized(4, 256, 4, e);
        c.vocab_size = 8000;
        c.segment_length = 64;
        c.max_position_embeddings = 512;
        return c;
      };
    }
    return t;
  }();
  return table;
}
}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : presets()) names.push_back(name);
  return names;
}

LoryConfig preset(const std::string& name) {
  const auto it = presets().find(name);
  if (it == presets().end()) {
    std::string all;
    for (const auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
    fail("preset: unknown preset '", name, "'; presets are: ", all);
  }
  return it->second();
}

// ---- config.json ----

namespace {
// One entry per key: how to read it from JSON and how to write it.
struct Key {
  std::function<void(LoryConfig&, const Json&, const std::string&)> read;
  std::function<Json(const LoryConfig&)> write;
};

template <typename T>
Key int_key(T LoryConfig::*field) {
  return {[field](LoryConfig& c, const Json& v, const std::string& where) {
            LORY_CHECK(v.is_number_integer(), where, " must be an integer, got ", v.dump());
            // An unsigned value above INT64_MAX would read back negative.
            LORY_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), where, " is ",
                       v.dump(), ", more than 2^63 - 1");
            c.*field = v.get<T>();
          },
          [field](const LoryConfig& c) { return Json(c.*field); }};
}
Key double_key(double LoryConfig::*field) {
  return {[field](LoryConfig& c, const Json& v, const std::string& where) {
            LORY_CHECK(v.is_number(), where, " must be a number, got ", v.dump());
            c.*field = v.get<double>();
          },
          [field](const LoryConfig& c) { return Json(c.*field); }};
}
Key bool_key(bool LoryConfig::*field) {
  return {[field](LoryConfig& c, const Json& v, const std::string& where) {
            LORY_CHECK(v.is_boolean(), where, " must be true or false, got ", v.dump());
            c.*field = v.get<bool>();
          },
          [field](const LoryConfig& c) { return Json(c.*field); }};
}
std::string string_of(const Json& v, const std::string& where) {
  LORY_CHECK(v.is_string(), where, " must be a string, got ", v.dump());
  return v.get<std::string>();
}

// Keys transformers writes into a config.json (LlamaConfig's and every
// PretrainedConfig's) that do not change the model we build: accepted and
// ignored, so a directory saved by LlamaForCausalLM.save_pretrained loads.
const char* const kIgnoredHfKeys[] = {
    "architectures", "model_type", "torch_dtype", "dtype" /* transformers 5's torch_dtype */, "transformers_version",
    "_name_or_path", "use_cache",
    "pad_token_id", "pretraining_tp",  // pretraining_tp splits HF's linears into slices: the same maths
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
    "pruned_heads", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "cross_attention_hidden_size",
    "add_cross_attention", "tie_encoder_decoder", "max_length", "min_length", "do_sample", "early_stopping",
    "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
    "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "finetuning_task", "id2label", "label2id", "tokenizer_class", "prefix",
    "sep_token_id", "decoder_start_token_id", "task_specific_params", "problem_type"};

// LlamaConfig keys whose default we build and whose other values we do not
// implement: the default is accepted, anything else refused naming the key,
// the value and what is supported (rather than loading a model that
// computes something else than the checkpoint's).
struct DefaultOnlyKey {
  const char* name;
  bool (*is_default)(const Json&);
  const char* supported;
};
const DefaultOnlyKey kDefaultOnlyHfKeys[] = {
    {"attention_bias", [](const Json& v) { return v.is_boolean() && !v.get<bool>(); },
     "false (biases in the attention projections are not implemented)"},
    {"mlp_bias", [](const Json& v) { return v.is_boolean() && !v.get<bool>(); },
     "false (biases in the MLP are not implemented)"},
    {"rope_scaling", [](const Json& v) { return v.is_null(); }, "null (RoPE scaling is not implemented)"},
    {"attention_dropout", [](const Json& v) { return v.is_number() && v.get<double>() == 0.0; },
     "0.0 (attention dropout is not implemented)"},
    {"quantization_config", [](const Json& v) { return v.is_null(); },
     "null (quantized checkpoints are not supported)"},
};

// transformers 5 writes RoPE as "rope_parameters": {"rope_type": "default",
// "rope_theta": 10000.0} (4.x: a top-level rope_theta and rope_scaling null).
// The default type is read; scaled variants (linear, dynamic, yarn, llama3,
// ...) are refused: their frequencies are not the ones we compute.
void read_rope_parameters(LoryConfig& c, const Json& v, const std::string& at) {
  if (v.is_null()) return;
  LORY_CHECK(v.is_object(), at, " must be an object like {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, got ",
             v.dump());
  for (const auto& [key, value] : v.items()) {
    if (key == "rope_type") {
      LORY_CHECK(value == "default", at, ": rope_type is ", value.dump(),
                 "; supported: \"default\" (RoPE scaling is not implemented)");
    } else if (key == "rope_theta") {
      LORY_CHECK(value.is_number(), at, ": rope_theta must be a number, got ", value.dump());
      c.rope_theta = value.get<double>();
    } else {
      fail(at, ": '", key, "' is ", value.dump(), "; supported: rope_type \"default\" and rope_theta only");
    }
  }
}

// A token id: an integer, null (the default stays), or a list whose first
// element is taken (LLaMA 3 lists several end-of-sequence ids).
Key token_id_key(int64_t LoryConfig::*field) {
  return {[field](LoryConfig& c, const Json& v, const std::string& where) {
            if (v.is_null()) return;
            const Json& id = v.is_array() && !v.empty() ? v.front() : v;
            LORY_CHECK(id.is_number_integer(), where, " must be an integer token id (or a list of them), got ",
                       v.dump());
            c.*field = id.get<int64_t>();
          },
          [field](const LoryConfig& c) { return Json(c.*field); }};
}

// Levenshtein distance, for "did you mean" on a misspelt key.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

const std::vector<std::pair<std::string, Key>>& keys() {
  static const std::vector<std::pair<std::string, Key>> table = {
      {"vocab_size", int_key(&LoryConfig::vocab_size)},
      {"hidden_size", int_key(&LoryConfig::hidden_size)},
      {"intermediate_size", int_key(&LoryConfig::intermediate_size)},
      {"num_hidden_layers", int_key(&LoryConfig::num_hidden_layers)},
      {"num_attention_heads", int_key(&LoryConfig::num_attention_heads)},
      {"num_key_value_heads", int_key(&LoryConfig::num_key_value_heads)},
      {"max_position_embeddings", int_key(&LoryConfig::max_position_embeddings)},
      {"rms_norm_eps", double_key(&LoryConfig::rms_norm_eps)},
      {"rope_theta", double_key(&LoryConfig::rope_theta)},
      {"initializer_range", double_key(&LoryConfig::initializer_range)},
      {"tie_word_embeddings", bool_key(&LoryConfig::tie_word_embeddings)},
      {"bos_token_id", token_id_key(&LoryConfig::bos_token_id)},
      {"eos_token_id", token_id_key(&LoryConfig::eos_token_id)},
      {"hidden_act",
       {[](LoryConfig&, const Json& v, const std::string& where) {
          LORY_CHECK(string_of(v, where) == "silu", where, " must be \"silu\" (SwiGLU), got ", v.dump());
        },
        [](const LoryConfig&) { return Json("silu"); }}},
      {"num_experts", int_key(&LoryConfig::num_experts)},
      {"segment_length", int_key(&LoryConfig::segment_length)},
      {"routing",
       {[](LoryConfig& c, const Json& v, const std::string& where) {
          c.routing = parse_training_routing(string_of(v, where), where);
        },
        [](const LoryConfig& c) { return Json(routing_name(c.routing)); }}},
      {"first_segment",
       {[](LoryConfig& c, const Json& v, const std::string& where) {
          c.first_segment = parse_first_segment(string_of(v, where), where);
        },
        [](const LoryConfig& c) { return Json(first_segment_name(c.first_segment)); }}},
      {"router_init_std", double_key(&LoryConfig::router_init_std)},
      {"moe_type",
       {[](LoryConfig& c, const Json& v, const std::string& where) {
          c.moe_type = parse_moe_type(string_of(v, where), where);
        },
        [](const LoryConfig& c) { return Json(moe_type_name(c.moe_type)); }}},
      {"capacity_factor", double_key(&LoryConfig::capacity_factor)},
      {"expert_choice_gates",
       {[](LoryConfig& c, const Json& v, const std::string& where) {
          c.expert_choice_gates = parse_expert_choice_gates(string_of(v, where), where);
        },
        [](const LoryConfig& c) { return Json(expert_choice_gates_name(c.expert_choice_gates)); }}},
  };
  return table;
}
}  // namespace

LoryConfig parse_config(const std::string& text, const std::string& where) {
  const Json j = io::parse_json<Json>(text, where);  // nesting bounded: messages dump values
  LORY_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  LoryConfig c;
  bool kv_heads_given = false;
  Json head_dim;
  for (const auto& [key, value] : j.items()) {
    const std::string at = where + ": key '" + key + "'";
    bool known = false;
    for (const auto& [name, k] : keys()) {
      if (name != key) continue;
      k.read(c, value, at);
      known = true;
    }
    for (const char* ignored : kIgnoredHfKeys) known = known || key == ignored;
    for (const DefaultOnlyKey& d : kDefaultOnlyHfKeys) {
      if (key != d.name) continue;
      LORY_CHECK(d.is_default(value), at, " is ", value.dump(), "; supported: ", d.supported);
      known = true;
    }
    if (key == "head_dim") head_dim = value, known = true;
    if (key == "rope_parameters") read_rope_parameters(c, value, at), known = true;
    kv_heads_given = kv_heads_given || key == "num_key_value_heads";
    if (!known) {
      // The nearest key we know, when it is near: a typo of ours, not a key of another model.
      std::string nearest, all;
      size_t best = key.size() / 3 + 1;
      for (const auto& [name, k] : keys()) {
        all += (all.empty() ? "" : ", ") + name;
        if (const size_t d = edit_distance(key, name); d < best) best = d, nearest = name;
      }
      if (!nearest.empty()) fail(at, " is not a config key; did you mean '", nearest, "'?");
      fail(at, " is not a config key; known keys: ", all);
    }
  }
  // As in transformers: without num_key_value_heads, every head has its own keys and values.
  if (!kv_heads_given) c.num_key_value_heads = c.num_attention_heads;
  if (!head_dim.is_null()) {
    // Compared by division: head_dim * heads could overflow.
    LORY_CHECK(
        head_dim.is_number_integer() && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0 &&
            head_dim.get<int64_t>() == c.hidden_size / c.num_attention_heads,
        where, ": key 'head_dim' is ", head_dim.dump(),
        "; supported: hidden_size / num_attention_heads = ", c.hidden_size, " / ", c.num_attention_heads, " (or null)");
  }
  c.validate(where);
  return c;
}

LoryConfig load_config(const std::string& path) {
  std::ifstream in(path);
  LORY_CHECK(in.good(), path, ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

std::string config_to_json(const LoryConfig& c, const std::string& torch_dtype) {
  Json j;
  j["architectures"] = Json::array({c.is_lory() ? "LoryForCausalLM" : "LlamaForCausalLM"});
  j["model_type"] = c.is_lory() ? "lory" : "llama";
  for (const auto& [name, k] : keys()) {
    const bool lory_key = name == "num_experts" || name == "segment_length" || name == "routing" ||
                          name == "first_segment" || name == "router_init_std" || name == "moe_type";
    const bool expert_choice_key = name == "capacity_factor" || name == "expert_choice_gates";
    if ((lory_key || expert_choice_key) && !c.is_lory()) continue;  // a dense directory is a plain LLaMA one
    if (expert_choice_key && c.moe_type == MoEType::lory) continue;  // keys of the Expert Choice baselines only
    j[name] = k.write(c);
  }
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

void save_config(const LoryConfig& c, const std::string& path, const std::string& torch_dtype) {
  io::write_file_atomically(path, config_to_json(c, torch_dtype));
}

}  // namespace lory::nn
