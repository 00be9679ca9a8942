// checkpoint.h — model directories, upcycling a dense model into a Lory one,
// and exporting a routed Lory model as a dense one.
//
// A model directory holds config.json (nn/config.h) and model.safetensors
// with Hugging Face LLaMA tensor names, so a dense directory is one that
// transformers' LlamaForCausalLM.from_pretrained loads. Each file is written
// atomically; loading checks every name and shape and names what is wrong.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "nn/lory_lm.h"
#include "io/safetensors.h"

namespace lory::nn {

// transformers' default max_shard_size ("5GB", decimal).
constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

// Writes dir/config.json and the parameters (cast to `dtype`: f32, bf16, f16
// or f64) as dir/model.safetensors, or, when they exceed max_shard_bytes
// (> 0), as shards model-0000k-of-0000N.safetensors plus
// model.safetensors.index.json, as transformers' save_pretrained(max_shard_size)
// does. Creates dir if needed; weights of an earlier save there are replaced.
void save_pretrained(LoryLM& model, const std::string& dir, DType dtype = DType::f32,
                     int64_t max_shard_bytes = kDefaultMaxShardBytes);
// Builds the model of dir/config.json and loads dir/model.safetensors (or the
// shards its model.safetensors.index.json names: a checkpoint written by
// several ranks, or by transformers) into it, on the CPU. Its parameters are
// `dtype` whatever the file holds (converted), or, with std::nullopt, the
// dtype the file holds (bf16 weights stay bf16).
std::unique_ptr<LoryLM> load_pretrained(const std::string& dir, std::optional<DType> dtype = DType::f32);
// Copies every tensor of a model directory's weights (one safetensors file
// or the shards of an index, read a tensor at a time: loading holds the
// model and one tensor, never a copy of the whole file) into the parameter
// of the same name. Every parameter must be there with its shape, and no
// tensor may be left over but those named in `ignored`; values are
// converted to the parameter's dtype and device. Errors name the file.
void load_parameters(Module& model, const io::SafetensorsDirReader& weights,
                     const std::set<std::string>& ignored = {});
// load_parameters for a whole model, as load_pretrained does it (a tied
// model ignores a stray lm_head.weight, as transformers does).
void load_weights(LoryLM& model, const io::SafetensorsDirReader& weights);

// Upcycling (paper §4.1): a Lory model with `num_experts` experts whose
// experts are all copies of `dense`'s FFN and whose routers are freshly
// initialised (from the global generator); everything else is copied.
std::unique_ptr<LoryLM> upcycle(LoryLM& dense, int64_t num_experts);
// The dense parameter a Lory parameter is upcycled from:
//   model.layers.i.mlp.experts.gate_proj.weight <- model.layers.i.mlp.gate_proj.weight (repeated E times)
//   model.layers.i.mlp.router.weight            <- "" (a fresh router)
//   anything else                               <- the same name
// `is_expert_stack` says whether the value is repeated into E experts.
std::string upcycle_source(const std::string& lory_name, bool* is_expert_stack = nullptr);
// Whether a parameter belongs to a Lory layer's router ("...mlp.router.weight").
bool is_router_parameter(const std::string& name);
// One dense FFN weight [out, in] repeated into an expert stack [E, out, in].
Tensor repeat_into_experts(const Tensor& ffn_weight, int64_t num_experts);

// Export (paper §3.1, prompt-only routing made permanent): routes `lory` once
// from the mean of `prompt_ids` ([1, P]) in every layer and returns the dense
// LLaMA model whose FFNs are the merged experts. On any continuation of the
// prompt it computes what `lory` computes with prompt routing.
std::unique_ptr<LoryLM> export_dense(LoryLM& lory, const Tensor& prompt_ids);

}  // namespace lory::nn
