// lory_generate — continues a prompt with a checkpoint, streaming token ids.
//
//   lory_generate --ckpt DIR --prompt-ids 1,2,3 [--max-new-tokens 32]
//                 [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--seed 1]
//                 [--routing prompt|segment]
//
// Greedy with --temperature 0. Lory layers route once from the prompt
// (prompt routing, paper §3.1) or re-route every segment (segment routing).
// Generated ids are printed as they are chosen, space-separated.
#include <cstdio>
#include <exception>

#include "nn/checkpoint.h"
#include "nn/generate.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::Cli cli("lory_generate", "Continues a prompt of token ids with a checkpoint (KV cache), streaming the ids.");
  cli.option("ckpt", "DIR", "a model directory (config.json + model.safetensors)");
  cli.option("prompt-ids", "1,2,3", "the prompt as comma-separated token ids");
  cli.option("max-new-tokens", "N", "tokens to generate", "32");
  cli.option("temperature", "T", "sampling temperature; 0 is greedy", "1.0");
  cli.option("top-k", "K", "sample from the K most likely tokens (0: all)", "0");
  cli.option("top-p", "P", "sample from the smallest set of probability >= P", "1.0");
  cli.option("seed", "S", "seed of the sampling", "0");
  cli.option("routing", "prompt|segment", "how Lory layers route while generating", "prompt");
  cli.option("stop-id", "ID", "stop after generating this id (default: the config's eos_token_id)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string ckpt = cli.require("ckpt");
  cli.require("prompt-ids");
  try {
    const std::vector<long long> ids = cli.get_int_list("prompt-ids");
    const std::vector<int64_t> prompt(ids.begin(), ids.end());
    auto model = load_pretrained(ckpt);
    model->eval();
    GenerateOptions options;
    options.max_new_tokens = cli.get_int("max-new-tokens");
    options.sampling = {cli.get_double("temperature"), cli.get_int("top-k"), cli.get_double("top-p")};
    options.seed = static_cast<uint64_t>(cli.get_int("seed"));
    options.routing = parse_routing(cli.get("routing"), "--routing");
    LORY_CHECK(options.routing == Routing::prompt || options.routing == Routing::segment,
               "--routing: generation routes by prompt or segment, not ", routing_name(options.routing));
    options.stop_token = cli.has("stop-id") ? cli.get_int("stop-id") : model->config.eos_token_id;
    generate(*model, prompt, options, [](int64_t token) {
      std::printf("%lld ", static_cast<long long>(token));
      std::fflush(stdout);
    });
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
