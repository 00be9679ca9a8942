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
  tools::Cli cli("lory_init", "Writes a randomly initialised model (config.json + model.safetensors) to a directory.");
  cli.option("config", "FILE", "a config.json (or give --preset)");
  cli.option("preset", "NAME", "a preset name (lory_info --help lists them)");
  cli.option("seed", "S", "seed of the initialisation", "0");
  cli.option("out", "DIR", "the directory to write");
  cli.option("dtype", "f32|bf16", "dtype of the saved weights", "f32");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  if (cli.has("config") == cli.has("preset")) cli.fatal("give exactly one of --config and --preset");
  const std::string out = cli.require("out");
  try {
    const LoryConfig config = cli.has("config") ? load_config(cli.get("config")) : preset(cli.get("preset"));
    const DType dtype = dtype_from_name(cli.get("dtype"));
    manual_seed(static_cast<uint64_t>(cli.get_int("seed")));
    LoryLM model(config);
    save_pretrained(model, out, dtype);
    std::printf("wrote %s: %lld parameters (%s), seed %lld\n", out.c_str(),
                static_cast<long long>(model.num_parameters()), dtype_name(dtype), cli.get_int("seed"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_init: %s\n", e.what());
    return 1;
  }
  return 0;
}
