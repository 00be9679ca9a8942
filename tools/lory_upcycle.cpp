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
  tools::Cli cli("lory_upcycle", "Copies each FFN of a dense checkpoint into E experts and adds fresh routers.");
  cli.option("ckpt", "DIR", "a dense model directory");
  cli.option("experts", "E", "experts per layer");
  cli.option("seed", "S", "seed of the router initialisation", "0");
  cli.option("out", "DIR", "the directory to write");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string ckpt = cli.require("ckpt"), out = cli.require("out");
  cli.require("experts");
  const int64_t experts = cli.get_int("experts");
  try {
    auto dense = load_pretrained(ckpt);
    manual_seed(static_cast<uint64_t>(cli.get_int("seed")));
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
