// lory_upcycle — turns a dense checkpoint into a Lory one (paper §4.1): each
// FFN is copied into all E experts and every layer gets a fresh router, so
// the new model computes exactly what the dense one did until it trains.
//
//   lory_upcycle --ckpt dense/ --experts 8 --seed 1 --out lory8e/
//   lory_upcycle --ckpt Llama-2-7b-hf/ --experts 4 --segment-length 256 --out llama-4e/
//   lory_upcycle --ckpt dense/ --experts 8 --moe-type expert_choice_token --out ec8e/
//
// The dense model may be ours or any Hugging Face LLaMA directory
// (config.json as transformers writes it, grouped-query attention, tied
// embeddings, one safetensors file or shards, f32/bf16/f16). The Lory model
// is written in the dtype the dense one was saved in, sharded the way
// transformers shards (--max-shard-gb), with the dense directory's tokenizer
// files copied next to it so that lory_generate finds them.
#include <cstdio>
#include <exception>
#include <filesystem>

#include "nn/checkpoint.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_upcycle", "Copies each FFN of a dense checkpoint into E experts and adds fresh routers.");
  std::string ckpt, out;
  int64_t experts = 0, seed = 0, segment_length = 0;
  std::string moe_type = "lory";
  double capacity_factor = 1.0;
  std::string expert_choice_gates = "softmax";
  double max_shard_gb = kDefaultMaxShardBytes / 1e9;
  app.add_option("--ckpt", ckpt, "a dense model directory (ours or a Hugging Face LLaMA one)")
      ->type_name("DIR")
      ->required();
  app.add_option("--experts", experts, "experts per layer")->type_name("E")->required()->default_str("");
  app.add_option("--segment-length", segment_length, "T, tokens per routing segment (default: the config's, or 256)")
      ->type_name("T");
  app.add_option("--moe-type", moe_type,
                 "lory, or an Expert Choice baseline (paper §5.3): expert_choice_segment, expert_choice_token")
      ->type_name("TYPE")
      ->capture_default_str();
  app.add_option("--capacity-factor", capacity_factor, "Expert Choice: units per expert, times units / E")
      ->type_name("C")
      ->capture_default_str();
  app.add_option("--expert-choice-gates", expert_choice_gates,
                 "Expert Choice: softmax (G = S, Zhou et al.; starts each layer at ~1/E of the dense FFN's output) or "
                 "softmax_times_experts (G = E S: keeps the dense output's scale)")
      ->type_name("GATES")
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the router initialisation")->type_name("S");
  app.add_option("--max-shard-gb", max_shard_gb, "largest safetensors file (GB, decimal, as transformers)")
      ->type_name("GB");
  app.add_option("--out", out, "the directory to write")->type_name("DIR")->required();
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    LORY_CHECK(max_shard_gb > 0, "--max-shard-gb must be > 0, got ", max_shard_gb);
    auto dense = load_pretrained(ckpt, std::nullopt);  // in the dtype it was saved in
    const DType dtype = dense->output_weight().dtype();
    if (segment_length > 0) dense->config.segment_length = segment_length;
    dense->config.moe_type = parse_moe_type(moe_type, "--moe-type");
    dense->config.capacity_factor = capacity_factor;
    dense->config.expert_choice_gates = parse_expert_choice_gates(expert_choice_gates, "--expert-choice-gates");
    manual_seed(static_cast<uint64_t>(seed));
    auto lory = upcycle(*dense, experts);
    save_pretrained(*lory, out, dtype, static_cast<int64_t>(max_shard_gb * 1e9));
    // The tokenizer travels with the model (what transformers' directories hold).
    namespace fs = std::filesystem;
    for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json"})
      if (fs::exists(fs::path(ckpt) / name) && !fs::equivalent(ckpt, out))
        fs::copy_file(fs::path(ckpt) / name, fs::path(out) / name, fs::copy_options::overwrite_existing);
    std::printf("wrote %s: %s, %lld experts per layer, segments of %lld tokens, %lld parameters (%s)\n", out.c_str(),
                moe_type_name(lory->config.moe_type), static_cast<long long>(experts), static_cast<long long>(lory->config.segment_length),
                static_cast<long long>(lory->num_parameters()), dtype_name(dtype));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_upcycle: %s\n", e.what());
    return 1;
  }
  return 0;
}
