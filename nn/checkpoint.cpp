// checkpoint.cpp — see checkpoint.h.
#include "nn/checkpoint.h"

#include <filesystem>
#include <set>

#include "tensor/graph.h"
#include "nn/merge_experts.h"
#include "tensor/ops.h"

namespace lory::nn {

namespace {
const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "float32";
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
    case DType::f64:
      return "float64";
    default:
      fail("save_pretrained: parameters are saved as f32, bf16, f16 or f64, not ", dtype_name(t));
  }
}
}  // namespace

void save_pretrained(LoryLM& model, const std::string& dir, DType dtype) {
  const char* torch_dtype = torch_dtype_name(dtype);
  std::filesystem::create_directories(dir);
  io::NamedTensors tensors;
  {
    NoGradGuard no_grad;
    for (auto& [name, slot] : model.named_parameters()) tensors.emplace_back(name, slot->to(dtype));
  }
  io::save_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  save_config(model.config, dir + "/config.json", torch_dtype);
}

void load_parameters(Module& model, const io::SafetensorsFile& file) {
  std::set<std::string> used;
  for (auto& [name, slot] : model.named_parameters()) {
    const Tensor* found = nullptr;
    for (const auto& [n, t] : file.tensors)
      if (n == name) found = &t;
    LORY_CHECK(found, file.path, ": missing tensor '", name, "' (the model has it, the file does not)");
    LORY_CHECK(found->shape() == slot->shape(), file.path, ": tensor '", name, "' has shape ",
               shape_str(found->shape()), " in the file but ", shape_str(slot->shape()), " in the model");
    LORY_CHECK(is_floating(found->dtype()), file.path, ": tensor '", name, "' is ", dtype_name(found->dtype()),
               ", not a floating dtype");
    NoGradGuard no_grad;
    slot->copy_(*found);
    used.insert(name);
  }
  for (const auto& [n, t] : file.tensors)
    LORY_CHECK(used.count(n), file.path, ": unexpected tensor '", n, "' ", shape_str(t.shape()),
               " (the model has no parameter of that name: is the config right?)");
}

std::unique_ptr<LoryLM> load_pretrained(const std::string& dir, DType dtype) {
  const LoryConfig config = load_config(dir + "/config.json");
  auto model = std::make_unique<LoryLM>(config, InitOptions{0.02, dtype, cpu_device()});
  load_parameters(*model, io::load_safetensors_dir(dir));
  return model;
}

Tensor repeat_into_experts(const Tensor& w, int64_t num_experts) {
  LORY_CHECK(w.dim() == 2 && num_experts > 0, "repeat_into_experts: expected a [out, in] weight and E > 0, got ",
             w.describe(), " and E = ", num_experts);
  return w.unsqueeze(0).expand({num_experts, w.size(0), w.size(1)}).contiguous();
}

std::string upcycle_source(const std::string& name, bool* is_expert_stack) {
  const auto experts = name.find(".mlp.experts.");
  if (is_expert_stack) *is_expert_stack = experts != std::string::npos;
  if (experts != std::string::npos)
    return name.substr(0, experts) + ".mlp." + name.substr(experts + std::string(".mlp.experts.").size());
  return is_router_parameter(name) ? std::string() : name;
}

bool is_router_parameter(const std::string& name) { return name.find(".mlp.router.") != std::string::npos; }

std::unique_ptr<LoryLM> upcycle(LoryLM& dense, int64_t num_experts) {
  LORY_CHECK(!dense.config.is_lory(), "upcycle: the model already has ", dense.config.num_experts, " experts");
  LORY_CHECK(num_experts > 0, "upcycle: num_experts must be > 0, got ", num_experts);
  LoryConfig config = dense.config;
  config.num_experts = num_experts;
  const Tensor& any = dense.parameter("lm_head.weight");
  auto lory = std::make_unique<LoryLM>(config, InitOptions{config.initializer_range, any.dtype(), any.device()});
  NoGradGuard no_grad;
  for (auto& [name, slot] : lory->named_parameters()) {
    bool expert_stack = false;
    const std::string source = upcycle_source(name, &expert_stack);
    if (source.empty()) continue;  // routers keep their fresh init
    slot->copy_(expert_stack ? repeat_into_experts(dense.parameter(source), num_experts) : dense.parameter(source));
  }
  return lory;
}

std::unique_ptr<LoryLM> export_dense(LoryLM& lory, const Tensor& prompt_ids) {
  LORY_CHECK(lory.config.is_lory(), "export_dense: the model is already dense");
  LORY_CHECK(prompt_ids.dim() == 2 && prompt_ids.size(0) == 1 && prompt_ids.size(1) > 0,
             "export_dense: prompt_ids must be [1, P] with P > 0, got ", prompt_ids.describe());
  NoGradGuard no_grad;
  lory.forward(prompt_ids, {InferenceRouting::prompt});  // routes every layer from the prompt's mean
  LoryConfig config = lory.config;
  config.num_experts = 0;
  const Tensor& any = lory.parameter("lm_head.weight");
  auto dense = std::make_unique<LoryLM>(config, InitOptions{config.initializer_range, any.dtype(), any.device()});
  for (size_t i = 0; i < lory.model.layers.size(); ++i) {
    LoryFFN& ffn = *lory.model.layers[i]->lory_mlp;
    const Tensor weights = ffn.last_routing_weights().select(1, 0);  // [1, E]: one decision for all segments
    SwiGLU& out = *dense->model.layers[i]->dense_mlp;
    out.gate_proj.weight.copy_(merge_experts(weights, ffn.gate_experts).select(0, 0));
    out.up_proj.weight.copy_(merge_experts(weights, ffn.up_experts).select(0, 0));
    out.down_proj.weight.copy_(merge_experts(weights, ffn.down_experts).select(0, 0));
  }
  for (auto& [name, slot] : dense->named_parameters())
    if (name.find(".mlp.") == std::string::npos) slot->copy_(lory.parameter(name));
  return dense;
}

}  // namespace lory::nn
