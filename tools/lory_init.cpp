// lory_init — writes a randomly initialised model directory
// (config.json + model.safetensors) from a config file or a preset.
//
//   lory_init --preset tiny --seed 1 --out runs/tiny-init
//   lory_init --config my/config.json --seed 7 --out DIR --dtype bf16
#include <cstdio>
#include <exception>

#include "nn/checkpoint.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_init", "Writes a randomly initialised model (config.json + model.safetensors) to a directory.");
  std::string config_path, preset_name, out, dtype_arg = "f32";
  int64_t seed = 0;
  auto* config_opt = app.add_option("--config", config_path, "a config.json (or give --preset)")->type_name("FILE");
  auto* preset_opt =
      app.add_option("--preset", preset_name, "a preset name (lory_info --help lists them)")->type_name("NAME");
  config_opt->excludes(preset_opt);
  app.add_option("--seed", seed, "seed of the initialisation")->type_name("S");
  app.add_option("--out", out, "the directory to write")->type_name("DIR")->required();
  app.add_option("--dtype", dtype_arg, "dtype of the saved weights")->type_name("f32|bf16");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  if (config_opt->count() + preset_opt->count() == 0) app.usage_error("give one of --config and --preset");
  try {
    const LoryConfig config = config_opt->count() > 0 ? load_config(config_path) : preset(preset_name);
    const DType dtype = dtype_from_name(dtype_arg);
    manual_seed(static_cast<uint64_t>(seed));
    LoryLM model(config);
    save_pretrained(model, out, dtype);
    std::printf("wrote %s: %lld parameters (%s), seed %lld\n", out.c_str(),
                static_cast<long long>(model.num_parameters()), dtype_name(dtype), static_cast<long long>(seed));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_init: %s\n", e.what());
    return 1;
  }
  return 0;
}
