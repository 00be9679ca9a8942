// checkpoint.h — model directories, upcycling a dense model into a Lory one,
// and exporting a routed Lory model as a dense one.
//
// A model directory holds config.json (nn/config.h) and model.safetensors
// with Hugging Face LLaMA tensor names, so a dense directory is one that
// transformers' LlamaForCausalLM.from_pretrained loads. Each file is written
// atomically; loading checks every name and shape and names what is wrong.
#pragma once

#include <memory>
#include <string>

#include "nn/lory_lm.h"
#include "io/safetensors.h"

namespace lory::nn {

// Writes dir/config.json and dir/model.safetensors (parameters cast to
// `dtype`: f32 or bf16), creating dir if needed.
void save_pretrained(LoryLM& model, const std::string& dir, DType dtype = DType::f32);
// Builds the model of dir/config.json and loads dir/model.safetensors (or the
// shards its model.safetensors.index.json names: a checkpoint written by
// several ranks) into it, on the CPU; its parameters are `dtype` whatever the file holds (converted).
std::unique_ptr<LoryLM> load_pretrained(const std::string& dir, DType dtype = DType::f32);
// Copies every tensor of `file` into the parameter of the same name. Every
// parameter must be in the file with its shape and no tensor may be left
// over; values are converted to the parameter's dtype and device.
void load_parameters(Module& model, const io::SafetensorsFile& file);

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
