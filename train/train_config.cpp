// train_config.cpp — the key table of lory_train's TOML config, parsing,
// overrides and the resolved TOML (see train_config.h).
#include "train/train_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <toml++/toml.h>

#include "tensor/error.h"

namespace lory::train {

namespace {

// One value as written, before it is checked against its key.
struct Value {
  enum Kind { integer, number, boolean, string } kind = string;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::string s;
  std::string text() const {
    switch (kind) {
      case integer: return std::to_string(i);
      case number: {
        std::ostringstream os;
        os << d;
        return os.str();
      }
      case boolean: return b ? "true" : "false";
      case string: return "\"" + s + "\"";
    }
    return "?";
  }
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::integer: return "an integer";
    case Value::number: return "a number";
    case Value::boolean: return "true or false";
    case Value::string: return "a string";
  }
  return "?";
}

// A key of the table: its kind, meaning, and how it reads and writes the config.
struct Key {
  std::string name;  // "optim.lr"
  Value::Kind kind;
  std::string help;
  std::vector<std::string> choices;  // allowed strings (empty: any)
  std::function<void(TrainConfig&, const Value&, const std::string& where)> set;
  std::function<Value(const TrainConfig&)> get;
};

[[noreturn]] void bad_value(const std::string& where, const std::string& key, const Value& v, const std::string& rule) {
  fail(where, ": ", key, " = ", v.text(), ": ", rule);
}

Value of(int64_t x) { return Value{Value::integer, x, 0, false, {}}; }
Value of(double x) { return Value{Value::number, 0, x, false, {}}; }
Value of(bool x) { return Value{Value::boolean, 0, 0, x, {}}; }
Value of(const std::string& x) { return Value{Value::string, 0, 0, false, x}; }

// Range rules, checked when a value is set.
enum class Rule { any, positive, non_negative, fraction, fraction_open, at_least_one, zero_stage };

template <typename T>
void check_rule(Rule rule, T x, const std::string& where, const std::string& key, const Value& v) {
  switch (rule) {
    case Rule::any: return;
    case Rule::positive:
      if (!(x > 0)) bad_value(where, key, v, "must be > 0");
      return;
    case Rule::non_negative:
      if (!(x >= 0)) bad_value(where, key, v, "must be >= 0");
      return;
    case Rule::fraction:
      if (!(x >= 0 && x <= 1)) bad_value(where, key, v, "must lie in [0, 1]");
      return;
    case Rule::fraction_open:
      if (!(x >= 0 && x < 1)) bad_value(where, key, v, "must lie in [0, 1)");
      return;
    case Rule::at_least_one:
      if (!(x >= 1)) bad_value(where, key, v, "must be >= 1");
      return;
    case Rule::zero_stage:
      if (!(x >= 0 && x <= 2)) bad_value(where, key, v, "must be 0, 1 or 2");
      return;
  }
}

Key int_key(std::string name, std::function<int64_t&(TrainConfig&)> field, Rule rule, std::string help) {
  Key k{name, Value::integer, std::move(help), {}, nullptr, nullptr};
  k.set = [field, rule, name](TrainConfig& c, const Value& v, const std::string& where) {
    if (v.kind != Value::integer) bad_value(where, name, v, std::string("must be ") + kind_name(Value::integer));
    check_rule(rule, v.i, where, name, v);
    field(c) = v.i;
  };
  k.get = [field](const TrainConfig& c) { return of(field(const_cast<TrainConfig&>(c))); };
  return k;
}

Key num_key(std::string name, std::function<double&(TrainConfig&)> field, Rule rule, std::string help) {
  Key k{name, Value::number, std::move(help), {}, nullptr, nullptr};
  k.set = [field, rule, name](TrainConfig& c, const Value& v, const std::string& where) {
    double x = 0;
    if (v.kind == Value::number)
      x = v.d;
    else if (v.kind == Value::integer)
      x = static_cast<double>(v.i);
    else
      bad_value(where, name, v, std::string("must be ") + kind_name(Value::number));
    if (!std::isfinite(x)) bad_value(where, name, v, "must be finite");
    check_rule(rule, x, where, name, v);
    field(c) = x;
  };
  k.get = [field](const TrainConfig& c) { return of(field(const_cast<TrainConfig&>(c))); };
  return k;
}

Key bool_key(std::string name, std::function<bool&(TrainConfig&)> field, std::string help) {
  Key k{name, Value::boolean, std::move(help), {}, nullptr, nullptr};
  k.set = [field, name](TrainConfig& c, const Value& v, const std::string& where) {
    if (v.kind != Value::boolean) bad_value(where, name, v, "must be true or false");
    field(c) = v.b;
  };
  k.get = [field](const TrainConfig& c) { return of(field(const_cast<TrainConfig&>(c))); };
  return k;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

Key str_key(std::string name, std::function<std::string&(TrainConfig&)> field, std::vector<std::string> choices,
            std::string help) {
  Key k{name, Value::string, std::move(help), choices, nullptr, nullptr};
  k.set = [field, name, choices](TrainConfig& c, const Value& v, const std::string& where) {
    if (v.kind != Value::string) bad_value(where, name, v, "must be a string");
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v.s) == choices.end())
      bad_value(where, name, v, "allowed values: " + join(choices));
    field(c) = v.s;
  };
  k.get = [field](const TrainConfig& c) { return of(field(const_cast<TrainConfig&>(c))); };
  return k;
}

// A model key writes the resolved LoryConfig (after the preset); vocab_size
// also records that the data no longer decides it.
Key model_int(std::string key, int64_t nn::LoryConfig::*member, std::string help) {
  return int_key(
      "model." + key, [member](TrainConfig& c) -> int64_t& { return c.model.resolved.*member; },
      key == "num_experts" ? Rule::non_negative : Rule::positive, std::move(help));
}

Key model_num(std::string key, double nn::LoryConfig::*member, std::string help) {
  return num_key(
      "model." + key, [member](TrainConfig& c) -> double& { return c.model.resolved.*member; }, Rule::positive,
      std::move(help));
}

// A model key that names one of an enum's values (routing, moe_type, ...):
// choices are the names parse accepts, listed in --help and in the error.
template <typename E>
Key model_enum(std::string key, E nn::LoryConfig::*member, std::vector<std::string> choices,
               E (*parse)(const std::string&, const std::string&), const char* (*name_of)(E), std::string help) {
  const std::string name = "model." + key;
  Key k{name, Value::string, std::move(help), choices, nullptr, nullptr};
  k.set = [member, name, choices, parse](TrainConfig& c, const Value& v, const std::string& where) {
    if (v.kind != Value::string || std::find(choices.begin(), choices.end(), v.s) == choices.end())
      bad_value(where, name, v, "allowed values: " + join(choices));
    c.model.resolved.*member = parse(v.s, where);
  };
  k.get = [member, name_of](const TrainConfig& c) { return of(std::string(name_of(c.model.resolved.*member))); };
  return k;
}

const std::vector<Key>& config_keys() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> k;
    using C = TrainConfig;
    // ---- model ----
    k.push_back(str_key("model.preset", [](C& c) -> std::string& { return c.model.preset; }, nn::preset_names(),
                        "the model shape to start from (lory_info lists them)"));
    k.push_back(str_key("model.config", [](C& c) -> std::string& { return c.model.config; }, {},
                        "a config.json to start from instead of the preset (\"\" = the preset)"));
    k.push_back(str_key("model.init_from", [](C& c) -> std::string& { return c.model.init_from; }, {},
                        "a model directory (ours or a Hugging Face LLaMA one) whose config.json and weights the run "
                        "starts from: dense (trained dense, then upcycled) or Lory (\"\" = a fresh init)"));
    k.push_back(model_int("vocab_size", &nn::LoryConfig::vocab_size, "vocabulary size (default: the data's)"));
    k.push_back(model_int("hidden_size", &nn::LoryConfig::hidden_size, "d_model"));
    k.push_back(model_int("intermediate_size", &nn::LoryConfig::intermediate_size, "FFN width of each expert"));
    k.push_back(model_int("num_hidden_layers", &nn::LoryConfig::num_hidden_layers, "decoder layers"));
    k.push_back(model_int("num_attention_heads", &nn::LoryConfig::num_attention_heads, "attention heads"));
    k.push_back(model_int("num_key_value_heads", &nn::LoryConfig::num_key_value_heads,
                          "key/value heads (default: num_attention_heads; fewer: grouped-query attention)"));
    k.push_back(bool_key("model.tie_word_embeddings",
                         [](C& c) -> bool& { return c.model.resolved.tie_word_embeddings; },
                         "lm_head is embed_tokens (one matrix)"));
    k.push_back(model_int("max_position_embeddings", &nn::LoryConfig::max_position_embeddings,
                          "longest sequence the model accepts"));
    k.push_back(model_int("num_experts", &nn::LoryConfig::num_experts,
                          "experts per Lory layer after the dense warm-up (0 = a dense model)"));
    k.push_back(model_int("segment_length", &nn::LoryConfig::segment_length, "T, tokens per routing segment"));
    k.push_back(model_num("router_init_std", &nn::LoryConfig::router_init_std, "std of the fresh routers"));
    k.push_back(model_num("initializer_range", &nn::LoryConfig::initializer_range, "std of the initial weights"));
    k.push_back(model_num("rope_theta", &nn::LoryConfig::rope_theta, "rotary embedding base"));
    k.push_back(model_enum("routing", &nn::LoryConfig::routing, nn::training_routing_names(),
                           nn::parse_training_routing, nn::routing_name,
                           "causal_segment (the paper) or prefix (ablation, §5.1)"));
    k.push_back(model_enum("first_segment", &nn::LoryConfig::first_segment, nn::first_segment_names(),
                           nn::parse_first_segment, nn::first_segment_name,
                           "routing of segment 1: self (the paper, stop-gradient) or uniform (strictly causal)"));
    k.push_back(model_enum("moe_type", &nn::LoryConfig::moe_type,
                           nn::moe_type_names(), nn::parse_moe_type,
                           nn::moe_type_name,
                           "the MoE of the expert layers: lory (the paper's), or the §5.3 Expert Choice baselines "
                           "expert_choice_segment, expert_choice_token"));
    k.push_back(model_num("capacity_factor", &nn::LoryConfig::capacity_factor,
                          "Expert Choice: units per expert as a multiple of units / num_experts (paper: 1)"));
    k.push_back(model_enum("expert_choice_gates", &nn::LoryConfig::expert_choice_gates,
                           nn::expert_choice_gates_names(), nn::parse_expert_choice_gates,
                           nn::expert_choice_gates_name,
                           "Expert Choice: a chosen unit's weight, softmax (G = S, Zhou et al.) or "
                           "softmax_times_experts (G = E * S, so an upcycled layer keeps the dense FFN's output "
                           "scale)"));
    // ---- data ----
    k.push_back(str_key("data.train", [](C& c) -> std::string& { return c.data.train; }, {},
                        "training instances (lory_batch --out)"));
    k.push_back(str_key("data.valid", [](C& c) -> std::string& { return c.data.valid; }, {},
                        "held-out token shards for per-domain evaluation (glob or comma list; \"\" = none)"));
    // ---- optim ----
    k.push_back(num_key("optim.lr", [](C& c) -> double& { return c.optim.lr; }, Rule::positive, "peak learning rate"));
    k.push_back(num_key("optim.min_lr_ratio", [](C& c) -> double& { return c.optim.min_lr_ratio; }, Rule::fraction,
                        "final learning rate as a fraction of the peak"));
    k.push_back(num_key("optim.beta1", [](C& c) -> double& { return c.optim.beta1; }, Rule::fraction_open,
                        "AdamW beta1"));
    k.push_back(num_key("optim.beta2", [](C& c) -> double& { return c.optim.beta2; }, Rule::fraction_open,
                        "AdamW beta2"));
    k.push_back(num_key("optim.eps", [](C& c) -> double& { return c.optim.eps; }, Rule::positive, "AdamW epsilon"));
    k.push_back(num_key("optim.weight_decay", [](C& c) -> double& { return c.optim.weight_decay; },
                        Rule::non_negative, "decoupled weight decay of matrices (not norms)"));
    k.push_back(bool_key("optim.decay_embeddings", [](C& c) -> bool& { return c.optim.decay_embeddings; },
                         "apply weight decay to embed_tokens and lm_head too"));
    k.push_back(num_key("optim.grad_clip", [](C& c) -> double& { return c.optim.grad_clip; }, Rule::non_negative,
                        "clip the global gradient norm to this (0 = off)"));
    k.push_back(num_key("optim.router_lr_scale", [](C& c) -> double& { return c.optim.router_lr_scale; },
                        Rule::positive, "learning rate of the Lory routers as a multiple of the scheduled LR"));
    // ---- schedule ----
    k.push_back(int_key("schedule.steps", [](C& c) -> int64_t& { return c.schedule.steps; }, Rule::non_negative,
                        "optimizer steps (give steps or tokens)"));
    k.push_back(int_key("schedule.tokens", [](C& c) -> int64_t& { return c.schedule.tokens; }, Rule::non_negative,
                        "training tokens; steps = tokens / global batch"));
    k.push_back(num_key("schedule.warmup", [](C& c) -> double& { return c.schedule.warmup; }, Rule::fraction,
                        "fraction of steps of linear LR warm-up"));
    k.push_back(str_key("schedule.decay", [](C& c) -> std::string& { return c.schedule.decay; },
                        {"cosine", "linear", "constant"}, "LR decay after the warm-up"));
    k.push_back(num_key("schedule.dense_warmup", [](C& c) -> double& { return c.schedule.dense_warmup; },
                        Rule::fraction_open, "fraction of steps trained dense before the FFNs become experts"));
    k.push_back(str_key("schedule.upcycle_moments", [](C& c) -> std::string& { return c.schedule.upcycle_moments; },
                        {"reset", "reset_all", "inherit", "copy_unscaled"},
                        "the experts' Adam state at the switch: reset (fresh), reset_all (every parameter's), inherit "
                        "(the FFN's, scaled m/E, v/E^2) or copy_unscaled (wrong, kept for the ablation); "
                        "train/upcycle_moments.h"));
    // ---- train ----
    k.push_back(str_key("train.device", [](C& c) -> std::string& { return c.train.device; }, {"cpu", "cuda"},
                        "where the model runs"));
    k.push_back(str_key("train.precision", [](C& c) -> std::string& { return c.train.precision; }, {"f32", "bf16"},
                        "f32, or bf16 compute with f32 master weights and optimizer state"));
    k.push_back(int_key("train.global_batch_tokens", [](C& c) -> int64_t& { return c.train.global_batch_tokens; },
                        Rule::positive, "tokens per optimizer step over all ranks"));
    k.push_back(int_key("train.micro_batch", [](C& c) -> int64_t& { return c.train.micro_batch; }, Rule::positive,
                        "sequences per forward/backward on one rank"));
    k.push_back(int_key("train.seed", [](C& c) -> int64_t& { return c.train.seed; }, Rule::non_negative,
                        "initialisation and data order"));
    k.push_back(str_key("train.recompute", [](C& c) -> std::string& { return c.train.recompute; }, {"none", "blocks"},
                        "activation recomputation per decoder layer"));
    k.push_back(str_key("train.merge_kernel", [](C& c) -> std::string& { return c.train.merge_kernel; },
                        {"fused", "gemm"},
                        "how Lory layers apply merged experts: fused (never stores a merged matrix) or gemm (the "
                        "reference that stores every segment's, nn/merge_experts.h)"));
    k.push_back(int_key("train.threads", [](C& c) -> int64_t& { return c.train.threads; }, Rule::non_negative,
                        "CPU threads per rank (0 = OpenMP's default)"));
    k.push_back(int_key("train.zero", [](C& c) -> int64_t& { return c.train.zero; }, Rule::zero_stage,
                        "ZeRO stage with several ranks: 0 replicates the optimizer, 1 shards master weights and Adam "
                        "moments, 2 also the reduced gradients (train/zero_optimizer.h)"));
    k.push_back(num_key("train.bucket_mb", [](C& c) -> double& { return c.train.bucket_mb; }, Rule::positive,
                        "MiB of f32 gradients per reduce-scatter bucket"));
    k.push_back(bool_key("train.overlap_comm", [](C& c) -> bool& { return c.train.overlap_comm; },
                         "reduce each gradient bucket during backward, as soon as it is final"));
    // ---- eval ----
    k.push_back(int_key("eval.every", [](C& c) -> int64_t& { return c.eval.every; }, Rule::non_negative,
                        "steps between evaluations (0 = at the end only)"));
    k.push_back(int_key("eval.tokens_per_domain", [](C& c) -> int64_t& { return c.eval.tokens_per_domain; },
                        Rule::positive, "held-out tokens per domain"));
    k.push_back(int_key("eval.batch", [](C& c) -> int64_t& { return c.eval.batch; }, Rule::positive,
                        "sequences per evaluation forward"));
    k.push_back(str_key("eval.routing", [](C& c) -> std::string& { return c.eval.routing; },
                        {"causal_segment", "prefix", "prompt", "segment"},
                        "how Lory layers route during evaluation (prefix: as a model.routing = prefix model trains)"));
    // ---- checkpoint ----
    k.push_back(str_key("checkpoint.dir", [](C& c) -> std::string& { return c.checkpoint.dir; }, {},
                        "run directory: checkpoints, metrics.jsonl, eval JSON"));
    k.push_back(int_key("checkpoint.every", [](C& c) -> int64_t& { return c.checkpoint.every; }, Rule::non_negative,
                        "steps between checkpoints (0 = at the end and on SIGINT/SIGTERM only)"));
    k.push_back(int_key("checkpoint.keep_last", [](C& c) -> int64_t& { return c.checkpoint.keep_last; },
                        Rule::at_least_one, "checkpoints kept (older ones are deleted)"));
    // ---- log ----
    k.push_back(int_key("log.every", [](C& c) -> int64_t& { return c.log.every; }, Rule::at_least_one,
                        "steps between progress lines"));
    k.push_back(int_key("log.utilisation_window", [](C& c) -> int64_t& { return c.log.utilisation_window; },
                        Rule::at_least_one, "steps over which expert utilisation is counted (paper G.1)"));
    k.push_back(num_key("log.peak_tflops", [](C& c) -> double& { return c.log.peak_tflops; }, Rule::non_negative,
                        "peak TFLOP/s for the MFU estimate (0 = measure a GEMM at start-up)"));
    k.push_back(str_key("log.metrics", [](C& c) -> std::string& { return c.log.metrics; }, {},
                        "metrics JSONL (\"\" = <checkpoint.dir>/metrics.jsonl)"));
    return k;
  }();
  return keys;
}

const Key* find_key(const std::string& name) {
  for (const Key& k : config_keys())
    if (k.name == name) return &k;
  return nullptr;
}

std::vector<std::string> section_keys(const std::string& section) {
  std::vector<std::string> out;
  for (const Key& k : config_keys())
    if (k.name.compare(0, section.size() + 1, section + ".") == 0) out.push_back(k.name.substr(section.size() + 1));
  return out;
}

const std::vector<std::string>& sections() {
  static const std::vector<std::string> s = {"model", "data", "optim", "schedule", "train", "eval", "checkpoint", "log"};
  return s;
}

struct Assignment {
  std::string key;
  Value value;
  std::string where;
};

// Command-line text -> the value of the key's kind.
Value parse_override(const Key& key, const std::string& text) {
  const std::string where = "command line";
  auto bad = [&](const char* what) {
    fail(where, ": --", key.name, "=", text, ": must be ", what);
  };
  Value v;
  v.kind = key.kind;
  char* end = nullptr;
  switch (key.kind) {
    case Value::integer: {
      std::string digits;
      for (char ch : text)
        if (ch != '_') digits += ch;  // 1_048_576, as TOML allows
      v.i = std::strtoll(digits.c_str(), &end, 10);
      if (digits.empty() || *end) bad("an integer");
      break;
    }
    case Value::number:
      v.d = std::strtod(text.c_str(), &end);
      if (text.empty() || *end) bad("a number");
      break;
    case Value::boolean:
      if (text == "true" || text == "1")
        v.b = true;
      else if (text == "false" || text == "0")
        v.b = false;
      else
        bad("true or false");
      break;
    case Value::string:
      v.s = text;
      if (v.s.size() >= 2 && v.s.front() == '"' && v.s.back() == '"') v.s = v.s.substr(1, v.s.size() - 2);
      break;
  }
  return v;
}

Value from_toml(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto x = node.as_integer()) return of(static_cast<int64_t>(x->get()));
  if (auto x = node.as_floating_point()) return of(x->get());
  if (auto x = node.as_boolean()) return of(x->get());
  if (auto x = node.as_string()) return of(std::string(x->get()));
  std::ostringstream type;
  type << node.type();
  fail(where, ": ", key, ": must be a single value (an integer, number, boolean or string), not ", type.str());
}

TrainConfig resolve(std::vector<Assignment> assignments, const std::string& where) {
  TrainConfig c;
  // Pass 1: the model's starting point (preset or config.json), so that the
  // other model keys change it wherever they appear.
  c.model.resolved = nn::preset(c.model.preset);
  std::string model_where = "default";
  auto is_model_start = [](const std::string& key) {
    return key == "model.preset" || key == "model.config" || key == "model.init_from";
  };
  for (const Assignment& a : assignments) {
    if (is_model_start(a.key)) {
      find_key(a.key)->set(c, a.value, a.where);
      c.origin[a.key] = a.where;
      model_where = a.where;
    }
  }
  if (!c.model.init_from.empty()) {
    // The weights decide the shape: init_from's config.json is the model, as
    // model.config's is (the preset is not used); the keys below may still
    // set the Lory ones, or break the shape, which loading the weights names.
    LORY_CHECK(c.model.config.empty(), c.origin_of("model.config"), ": model.config and model.init_from (",
               c.origin_of("model.init_from"), ") both give the model's config.json; give one");
    try {
      c.model.resolved = nn::load_config(c.model.init_from + "/config.json");
    } catch (const Error& e) {
      fail(model_where, ": model.init_from: ", e.what());  // which setting named the model directory
    }
    c.model.vocab_from_data = false;  // the embedding matrix has its size
  } else {
    try {
      c.model.resolved = c.model.config.empty() ? nn::preset(c.model.preset) : nn::load_config(c.model.config);
    } catch (const Error& e) {
      fail(model_where, ": model.config: ", e.what());  // which setting named the bad config.json
    }
  }
  const int64_t init_experts = c.model.resolved.num_experts;
  // Pass 2: everything else, file first, then the command line.
  for (const Assignment& a : assignments) {
    if (is_model_start(a.key)) continue;
    find_key(a.key)->set(c, a.value, a.where);
    c.origin[a.key] = a.where;
    if (a.key == "model.vocab_size") c.model.vocab_from_data = false;
  }
  // Changing the head count keeps one key/value head per head, unless the
  // key/value heads were given too (in either order).
  if (c.origin.count("model.num_attention_heads") && !c.origin.count("model.num_key_value_heads"))
    c.model.resolved.num_key_value_heads = c.model.resolved.num_attention_heads;
  // Cross-key rules.
  if (!c.model.init_from.empty() && init_experts > 0) {
    // A Lory model to start from: its experts are trained, so there is no
    // dense warm-up, and the expert count is the model's.
    LORY_CHECK(c.model.resolved.num_experts == init_experts, c.origin_of("model.num_experts"),
               ": model.num_experts = ", c.model.resolved.num_experts, " but model.init_from = ",
               c.model.init_from, " has ", init_experts, " experts per layer");
    LORY_CHECK(!c.origin.count("schedule.dense_warmup") || c.schedule.dense_warmup == 0.0,
               c.origin_of("schedule.dense_warmup"), ": schedule.dense_warmup = ", c.schedule.dense_warmup,
               " but model.init_from = ", c.model.init_from, " is already a Lory model (no dense phase to warm up)");
    c.schedule.dense_warmup = 0.0;
  }
  c.model.resolved.validate("model (" + model_where + " and overrides)");
  LORY_CHECK((c.schedule.steps > 0) != (c.schedule.tokens > 0), where,
             ": give exactly one of schedule.steps and schedule.tokens (got steps = ", c.schedule.steps,
             ", tokens = ", c.schedule.tokens, ")");
  LORY_CHECK(!c.checkpoint.dir.empty(), where, ": checkpoint.dir must not be empty");
  return c;
}

std::vector<Assignment> read_toml(const std::string& text, const std::string& where) {
  toml::table table;
  try {
    table = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    fail(where, ":", at.line, ":", at.column, ": TOML syntax error: ", e.description());
  }
  std::vector<Assignment> out;
  for (const auto& [section_key, section_node] : table) {
    const std::string section(section_key.str());
    if (std::find(sections().begin(), sections().end(), section) == sections().end())
      fail(where, ": unknown section [", section, "] (sections: ", join(sections()), ")");
    const toml::table* entries = section_node.as_table();
    LORY_CHECK(entries != nullptr, where, ": '", section, "' must be a section ([", section, "]), not a value");
    for (const auto& [key_name, node] : *entries) {
      const std::string key = section + "." + std::string(key_name.str());
      if (!find_key(key))
        fail(where, ": unknown key '", std::string(key_name.str()), "' in [", section, "] (keys of [", section,
             "]: ", join(section_keys(section)), ")");
      out.push_back({key, from_toml(node, where, key), where});
    }
  }
  return out;
}

std::vector<Assignment> read_overrides(const std::vector<ConfigOverride>& overrides) {
  std::vector<Assignment> out;
  for (const ConfigOverride& o : overrides) {
    const Key* key = find_key(o.key);
    if (!key) {
      const auto dot = o.key.find('.');
      const std::string section = o.key.substr(0, dot);
      if (dot == std::string::npos || std::find(sections().begin(), sections().end(), section) == sections().end())
        fail("command line: unknown option --", o.key, " (config keys are --section.key=value with sections ",
             join(sections()), ")");
      fail("command line: unknown key --", o.key, " (keys of [", section, "]: ", join(section_keys(section)), ")");
    }
    out.push_back({o.key, parse_override(*key, o.value), "command line"});
  }
  return out;
}

}  // namespace

std::string TrainConfig::origin_of(const std::string& key) const {
  const auto it = origin.find(key);
  return it == origin.end() ? std::string("default") : it->second;
}

TrainConfig parse_train_config(const std::string& toml_text, const std::string& where,
                               const std::vector<ConfigOverride>& overrides) {
  std::vector<Assignment> all = read_toml(toml_text, where);
  for (Assignment& a : read_overrides(overrides)) all.push_back(std::move(a));
  return resolve(std::move(all), where);
}

TrainConfig load_train_config(const std::string& path, const std::vector<ConfigOverride>& overrides) {
  std::ifstream in(path);
  LORY_CHECK(in.good(), path, ": cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_train_config(text.str(), path, overrides);
}

std::string train_config_to_toml(const TrainConfig& config) {
  std::ostringstream os;
  os << "# lory_train config, resolved: every key with the value the run used.\n";
  std::string section;
  for (const Key& k : config_keys()) {
    const auto dot = k.name.find('.');
    const std::string s = k.name.substr(0, dot);
    if (s != section) {
      os << (section.empty() ? "" : "\n") << "[" << s << "]\n";
      section = s;
    }
    Value v = k.get(config);
    std::string text;
    if (v.kind == Value::number) {
      char buf[64];
      const auto end = std::to_chars(buf, buf + sizeof buf, v.d).ptr;  // shortest text that reads back exactly
      text.assign(buf, end);
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // TOML floats need a point
    } else if (v.kind == Value::string) {
      std::ostringstream quoted;
      quoted << toml::value<std::string>(v.s);
      text = quoted.str();
    } else {
      text = v.text();
    }
    os << k.name.substr(dot + 1) << " = " << text << "\n";
  }
  return os.str();
}

std::string describe_config_keys() {
  TrainConfig defaults;
  defaults.model.resolved = nn::preset(defaults.model.preset);
  std::ostringstream os;
  for (const Key& k : config_keys()) {
    Value v = k.get(defaults);
    std::string def = v.text();
    if (k.name.rfind("model.", 0) == 0 && k.name != "model.preset" && k.name != "model.config" &&
        k.name != "model.init_from")
      def = "(preset)";
    os << "  " << k.name;
    for (size_t pad = k.name.size(); pad < 28; ++pad) os << ' ';
    os << def;
    for (size_t pad = def.size(); pad < 40; ++pad) os << ' ';
    os << k.help;
    if (!k.choices.empty() && k.choices.size() <= 6) os << " [" << join(k.choices) << "]";
    os << "\n";
  }
  return os.str();
}

}  // namespace lory::train
