// lory_upcycle — turns a dense checkpoint into a Lory one (paper §4.1): each
// FFN is copied into all E experts and every layer gets a fresh router, so
// the new model computes exactly what the dense one did until it trains.
//
//   lory_upcycle --ckpt dense/ --experts 8 --seed 1 --out lory8e/
#include <cstdio>
#include <exception>

#include "nn/checkpoint.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_upcycle", "Copies each FFN of a dense checkpoint into E experts and adds fresh routers.");
  std::string ckpt, out;
  int64_t experts = 0, seed = 0;
  app.add_option("--ckpt", ckpt, "a dense model directory")->type_name("DIR")->required();
  app.add_option("--experts", experts, "experts per layer")->type_name("E")->required()->default_str("");
  app.add_option("--seed", seed, "seed of the router initialisation")->type_name("S");
  app.add_option("--out", out, "the directory to write")->type_name("DIR")->required();
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    auto dense = load_pretrained(ckpt);
    manual_seed(static_cast<uint64_t>(seed));
    auto lory = upcycle(*dense, experts);
    save_pretrained(*lory, out);
    std::printf("wrote %s: %lld experts per layer, %lld parameters\n", out.c_str(), static_cast<long long>(experts),
                static_cast<long long>(lory->num_parameters()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_upcycle: %s\n", e.what());
    return 1;
  }
  return 0;
}
