// checkpoint.cpp — see checkpoint.h.
#include "nn/checkpoint.h"

#include <filesystem>
#include <map>
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

namespace {
// Removes what an earlier save into `dir` left that this one does not
// overwrite: a single-file save leaves no shards or index behind, a sharded
// one no model.safetensors (a reader would otherwise find two checkpoints).
// Only our file names are touched: model.safetensors, its index, and
// model-*-of-*.safetensors.
void remove_stale_weights(const std::string& dir, const std::set<std::string>& written) {
  namespace fs = std::filesystem;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == "model.safetensors" || name == "model.safetensors.index.json" ||
                      (name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos &&
                       name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0);
    if (ours && !written.count(name)) fs::remove(entry.path());
  }
}
}  // namespace

void save_pretrained(LoryLM& model, const std::string& dir, DType dtype, int64_t max_shard_bytes) {
  const char* torch_dtype = torch_dtype_name(dtype);
  std::filesystem::create_directories(dir);
  // An earlier save's index goes first: readers prefer an index, and one
  // left while shards are rewritten would pair old and new shards if this
  // save were killed halfway (without it, a killed save fails to load instead).
  std::filesystem::remove(dir + "/model.safetensors.index.json");
  // Shards as transformers cuts them: parameters in order, a new shard when
  // the next one would take the current shard past the limit (a parameter
  // larger than the limit gets a shard of its own).
  std::vector<io::NamedTensors> shards(1);
  int64_t shard_bytes = 0;
  uint64_t total_bytes = 0;
  {
    NoGradGuard no_grad;
    for (auto& [name, slot] : model.named_parameters()) {
      Tensor t = slot->to(dtype);
      const int64_t bytes = t.numel() * static_cast<int64_t>(dtype_size(dtype));
      if (max_shard_bytes > 0 && !shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().emplace_back(name, std::move(t));
      shard_bytes += bytes;
      total_bytes += static_cast<uint64_t>(bytes);
    }
  }
  std::set<std::string> written{"model.safetensors"};
  if (shards.size() == 1) {
    io::save_safetensors(dir + "/model.safetensors", shards[0], {{"format", "pt"}});
  } else {
    // Shards first, the index last: a reader finds an index only when every
    // file it names is complete.
    written = {"model.safetensors.index.json"};
    std::vector<std::pair<std::string, std::string>> weight_map;
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = io::shard_file_name("model", static_cast<int64_t>(i), static_cast<int64_t>(shards.size()));
      io::save_safetensors(dir + "/" + file, shards[i], {{"format", "pt"}});
      for (const auto& [name, t] : shards[i]) weight_map.emplace_back(name, file);
      written.insert(file);
    }
    io::write_safetensors_index(dir + "/model.safetensors.index.json", weight_map, total_bytes);
  }
  remove_stale_weights(dir, written);
  save_config(model.config, dir + "/config.json", torch_dtype);
}

void load_parameters(Module& model, const io::SafetensorsDirReader& weights, const std::set<std::string>& ignored) {
  std::set<std::string> used;
  for (auto& [name, slot] : model.named_parameters()) {
    LORY_CHECK(weights.contains(name), weights.path(), ": missing tensor '", name,
               "' (the model has it, the file does not)");
    const io::SafetensorsReader& file = weights.file_of(name);
    LORY_CHECK(file.shape(name) == slot->shape(), file.path(), ": tensor '", name, "' has shape ",
               shape_str(file.shape(name)), " in the file but ", shape_str(slot->shape()), " in the model");
    LORY_CHECK(is_floating(file.dtype(name)), file.path(), ": tensor '", name, "' is ", dtype_name(file.dtype(name)),
               ", not a floating dtype");
    NoGradGuard no_grad;
    slot->copy_(file.read(name));  // one tensor in memory at a time, converted to the parameter's dtype
    used.insert(name);
  }
  for (const io::SafetensorsReader& file : weights.files())
    for (const std::string& n : file.names())
      LORY_CHECK(used.count(n) || ignored.count(n), file.path(), ": unexpected tensor '", n, "' ",
                 shape_str(file.shape(n)), " (the model has no parameter of that name: is the config right?)");
}

std::unique_ptr<LoryLM> load_pretrained(const std::string& dir, std::optional<DType> dtype) {
  const LoryConfig config = load_config(dir + "/config.json");
  const io::SafetensorsDirReader weights(dir);
  DType param_dtype = dtype.value_or(DType::f32);
  if (!dtype) {  // as saved: the one floating dtype of the file's tensors
    std::set<DType> seen;
    for (const io::SafetensorsReader& file : weights.files())
      for (const std::string& n : file.names())
        if (is_floating(file.dtype(n))) seen.insert(file.dtype(n));
    LORY_CHECK(seen.size() <= 1, weights.path(), ": tensors of several floating dtypes; load them as one dtype");
    if (!seen.empty()) param_dtype = *seen.begin();
  }
  auto model = std::make_unique<LoryLM>(config, InitOptions{0.02, param_dtype, cpu_device()});
  load_weights(*model, weights);
  return model;
}

void load_weights(LoryLM& model, const io::SafetensorsDirReader& weights) {
  // A tied model has no lm_head.weight; a file that holds one anyway (older
  // transformers wrote both) loads as transformers loads it: the tie wins.
  const std::set<std::string> ignored =
      model.config.tie_word_embeddings ? std::set<std::string>{"lm_head.weight"} : std::set<std::string>{};
  load_parameters(model, weights, ignored);
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
  const Tensor& any = dense.output_weight();
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
  LORY_CHECK(lory.config.moe_type == MoEType::lory, "export_dense: only a Lory model merges into one dense FFN; ",
             "this one is ", moe_type_name(lory.config.moe_type));
  LORY_CHECK(prompt_ids.dim() == 2 && prompt_ids.size(0) == 1 && prompt_ids.size(1) > 0,
             "export_dense: prompt_ids must be [1, P] with P > 0, got ", prompt_ids.describe());
  NoGradGuard no_grad;
  lory.forward(prompt_ids, {InferenceRouting::prompt});  // routes every layer from the prompt's mean
  LoryConfig config = lory.config;
  config.num_experts = 0;
  const Tensor& any = lory.output_weight();
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
