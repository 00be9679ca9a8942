// config.h — LoryConfig: the model's shape, in Hugging Face LlamaConfig terms
// plus the Lory keys; and the routing types.
//
// Read from and written to config.json (nn/config.cpp) with LlamaConfig's key
// names, so a dense checkpoint directory is one that transformers'
// LlamaForCausalLM loads, and a Lory one adds:
//   num_experts      E, experts per FFN layer; 0 is a dense model (plain SwiGLU FFNs)
//   segment_length   T, tokens per routing segment (paper: 256)
//   routing          the TrainingRouting the model trains with: causal_segment
//                    (paper §3.1, the default) or prefix (§5.1 ablation: segment 1
//                    routes the whole sequence)
//   first_segment    self (paper: segment 1 routed by its own mean, with a
//                    stop-gradient on the router side) or uniform (strictly
//                    causal: segment 1 uses the plain average of the experts)
//   router_init_std  std of the router's normal init (not 0: with identical
//                    experts a zero router never gets a gradient)
//   moe_type         lory (the default), or one of the paper's §5.3 baselines,
//                    expert_choice_segment or expert_choice_token (MoEType below)
//   capacity_factor  Expert Choice only: units each expert takes, as a multiple
//                    of units / E (paper: 1, the compute of one FFN per token)
//   expert_choice_gates  Expert Choice only: how a chosen unit's output is
//                    weighted (ExpertChoiceGates below)
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace lory::nn {

// ---- routing: how a Lory layer picks the merge weights of each segment ----
//
// Training and generation route differently, and they are different types,
// so that a function that takes one cannot be handed the other:
//   TrainingRouting   how the model trains (the config's `routing` key);
//                     LoryLM::loss and the trainer use it.
//   InferenceRouting  how generation with a KV cache routes (nn/generate.h,
//                     LoryLM::forward_cached); chosen when generating, never
//                     stored in a config.
// A whole-sequence forward (LoryLM::forward, evaluation) can route either
// way, so it takes a ForwardRouting: either of the two.

enum class TrainingRouting {
  // Paper §3.1, eq. (3): segment k (k > 1) is merged with the weights of the
  // segment before it,  e = Softmax(R(h̄_{k-1})),  h̄_{k-1} = (1/T) Σ_{x ∈ S_{k-1}} h_x;
  // segment 1 with its own weights, behind a stop-gradient (first_segment).
  causal_segment,
  // Paper §5.1 ablation: every segment is merged with segment 1's weights.
  prefix,
};

enum class InferenceRouting {
  // Paper §3.1, "prompt-only routing during inference": one decision per
  // layer from the mean hidden state of the prompt, for the prompt and every
  // generated token (decoding then costs what a dense model's does).
  prompt,
  // Re-route every T tokens from the mean of the segment just completed:
  // causal_segment computed incrementally (paper §5.5: on downstream tasks,
  // no real difference from prompt routing).
  segment,
};

// What a whole-sequence forward accepts. InferenceRouting there means "route
// these tokens as generation would": prompt = one decision from the first
// prompt_length tokens (ForwardOptions); segment = what causal_segment computes.
using ForwardRouting = std::variant<TrainingRouting, InferenceRouting>;

const char* routing_name(TrainingRouting r);
const char* routing_name(InferenceRouting r);
const char* routing_name(const ForwardRouting& r);
// Each throws naming `where` and the allowed values (and, for a name of the
// other kind, what it is).
TrainingRouting parse_training_routing(const std::string& name, const std::string& where = "routing");
InferenceRouting parse_inference_routing(const std::string& name, const std::string& where = "routing");
ForwardRouting parse_forward_routing(const std::string& name, const std::string& where = "routing");

enum class FirstSegment { self, uniform };

// What an FFN layer with num_experts > 0 is (the config's `moe_type`):
//   lory                   the Lory layer (nn/lory_ffn.h): the experts merged in
//                          parameter space per segment; fully differentiable
//   expert_choice_segment  sparse Expert Choice MoE (Zhou et al., 2022) whose
//                          units are segments routed like Lory's (paper §5.3)
//   expert_choice_token    the original Expert Choice: experts pick tokens (§5.3)
// The two Expert Choice baselines are nn/expert_choice_ffn.h.
enum class MoEType { lory, expert_choice_segment, expert_choice_token };
const char* moe_type_name(MoEType t);
MoEType parse_moe_type(const std::string& name, const std::string& where = "moe_type");

// The weight G of a unit an Expert Choice expert chose, from its routing
// distribution S over the E experts:
//   softmax                G = S, Zhou et al.'s gate (the default).
//   softmax_times_experts  G = E * S. Upcycled from a dense model, the router is
//                          near uniform (S ~ 1/E), so softmax gates scale every
//                          FFN output by ~1/E: the layer starts far from the
//                          dense FFN it was copied from, and at a short horizon
//                          it does not recover (tools/experiments, expert-choice).
//                          With E * S ~ 1, a unit one expert took gets the dense
//                          FFN's output, and at capacity 1 units are taken once
//                          on average: the layer keeps the dense output's scale,
//                          as Lory's merge (weights summing to 1) does.
enum class ExpertChoiceGates { softmax, softmax_times_experts };
const char* expert_choice_gates_name(ExpertChoiceGates g);
ExpertChoiceGates parse_expert_choice_gates(const std::string& name, const std::string& where = "expert_choice_gates");

// How a Lory layer computes its merged linears (nn/merge_experts.h): fused
// (tensor/ops/merged_linear.cpp: W̄_s formed a tile at a time, never stored;
// the default) or gemm (the readable formulation that stores every W̄_s).
enum class MergeKernel { fused, gemm };
const char* merge_kernel_name(MergeKernel k);
MergeKernel parse_merge_kernel(const std::string& name, const std::string& where = "merge kernel");
const char* first_segment_name(FirstSegment f);
FirstSegment parse_first_segment(const std::string& name, const std::string& where = "first_segment");

// The names each of these enums' parse accepts, in order (for help texts and
// the TOML keys' "allowed values").
std::vector<std::string> training_routing_names();
std::vector<std::string> first_segment_names();
std::vector<std::string> moe_type_names();
std::vector<std::string> expert_choice_gates_names();

struct LoryConfig {
  // ---- LlamaConfig ----
  int64_t vocab_size = 32000;
  int64_t hidden_size = 1024;        // d
  int64_t intermediate_size = 2816;  // f, the FFN width (of each expert)
  int64_t num_hidden_layers = 24;
  int64_t num_attention_heads = 16;
  int64_t num_key_value_heads = 16;  // < num_attention_heads: grouped-query attention (the paper's models have ==)
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;  // true: lm_head is embed_tokens (the paper's models are untied)
  int64_t bos_token_id = 1, eos_token_id = 2;
  // ---- Lory ----
  int64_t num_experts = 0;
  int64_t segment_length = 256;
  TrainingRouting routing = TrainingRouting::causal_segment;
  FirstSegment first_segment = FirstSegment::self;
  double router_init_std = 0.02;
  MoEType moe_type = MoEType::lory;
  double capacity_factor = 1.0;  // Expert Choice: each expert takes capacity_factor * units / E units
  ExpertChoiceGates expert_choice_gates = ExpertChoiceGates::softmax;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim(); }  // width of k_proj and v_proj
  bool is_lory() const { return num_experts > 0; }
  // Throws naming the key, its value and the rule when a value is out of range.
  void validate(const std::string& where = "config") const;
};

// Parameter counts from the shapes alone (no allocation), as in the paper's
// App. D table: total counts every expert, active counts one FFN per layer
// (what a merged segment runs) plus the routers.
struct ParameterCount {
  int64_t embeddings = 0;  // embed_tokens + lm_head (one matrix when tied)
  int64_t attention = 0;   // q, k, v, o of every layer
  int64_t ffn = 0;         // every expert of every layer (or the dense FFNs)
  int64_t router = 0;
  int64_t norms = 0;
  int64_t total() const { return embeddings + attention + ffn + router + norms; }
  int64_t active = 0;
};
ParameterCount count_parameters(const LoryConfig& config);

// Forward FLOPs per token at context length L (multiply-adds count 2):
// matmuls 2(2d^2 + 2d d_kv + 3df) per layer (d_kv = kv_dim(), = d without
// GQA) + 2dV for lm_head; causal attention 4d(L+1)/2 per layer (QK^T and PV over the keys a token sees, on average);
// the expert merge 6Edf/T and the router 2dE/T per layer, once per segment
// of T tokens (paper App. B). Expert Choice has no merge: its FFN matmuls
// scale by capacity_factor (tokens processed per token), its router runs
// per token (token level) or per segment. A training step costs about 3x
// the forward.
struct FlopsPerToken {
  double matmul = 0, attention = 0, merge = 0, router = 0;
  double forward() const { return matmul + attention + merge + router; }
};
FlopsPerToken flops_per_token(const LoryConfig& config, int64_t context);

// LLaMA's FFN width rule: 256 * ceil(8/3 * d / 256). 1024 -> 2816, 1536 -> 4096, 4096 -> 11008.
int64_t llama_intermediate_size(int64_t hidden_size);

// ---- presets: the paper's sizes (App. D) and small ones for tests and CPU runs ----
// Names: 0.3b, 0.3b-8e, 0.3b-16e, 0.3b-32e, 1.5b, 1.5b-{8,16,32}e, 7b, 7b-4e,
// tiny (tests), small and small-8e (CPU runs). Throws listing them for an unknown name.
LoryConfig preset(const std::string& name);
std::vector<std::string> preset_names();

// ---- config.json ----
// Unknown keys, wrong types and bad values throw naming the key and `path`.
LoryConfig load_config(const std::string& path);
LoryConfig parse_config(const std::string& json_text, const std::string& where);
// torch_dtype: the dtype the weights are saved in, as transformers names it.
std::string config_to_json(const LoryConfig& config, const std::string& torch_dtype = "float32");
void save_config(const LoryConfig& config, const std::string& path,
                 const std::string& torch_dtype = "float32");  // atomic: temp + rename

}  // namespace lory::nn
