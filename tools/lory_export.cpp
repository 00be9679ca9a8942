// lory_export — makes prompt-only routing permanent (paper §3.1): routes a
// Lory checkpoint once from a prompt (every layer merges its experts with the
// weights the prompt's mean hidden state gives) and writes the result as a
// dense LLaMA checkpoint that Hugging Face's LlamaForCausalLM can load.
//
//   lory_export --ckpt lory/ --prompt-ids 1,2,3,... --out dense/
//   lory_export --ckpt lory/ --prompt-npy prompt.npy --out dense/ [--dtype bf16]
#include <cstdio>
#include <exception>

#include "nn/checkpoint.h"
#include "io/npy.h"
#include "tensor/ops.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::Cli cli("lory_export", "Routes a Lory checkpoint once from a prompt and writes the merged dense model.");
  cli.option("ckpt", "DIR", "a Lory model directory");
  cli.option("prompt-ids", "1,2,3", "the prompt as comma-separated token ids (or --prompt-npy)");
  cli.option("prompt-npy", "FILE", "the prompt as a 1-d integer .npy array");
  cli.option("out", "DIR", "the directory to write");
  cli.option("dtype", "f32|bf16", "dtype of the saved weights", "f32");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string ckpt = cli.require("ckpt"), out = cli.require("out");
  if (cli.has("prompt-ids") == cli.has("prompt-npy")) cli.fatal("give exactly one of --prompt-ids and --prompt-npy");
  try {
    Tensor prompt;
    if (cli.has("prompt-npy")) {
      prompt = io::read_npy(cli.get("prompt-npy")).to(DType::i64).reshape({1, -1});
    } else {
      const std::vector<long long> list = cli.get_int_list("prompt-ids");
      const std::vector<int64_t> ids(list.begin(), list.end());
      prompt = from_vector(ids, {1, static_cast<int64_t>(ids.size())}, {DType::i64});
    }
    auto lory = load_pretrained(ckpt);
    LORY_CHECK(amin(prompt).item() >= 0 && amax(prompt).item() < static_cast<double>(lory->config.vocab_size),
               "the prompt has token ids outside [0, ", lory->config.vocab_size, ")");
    auto dense = export_dense(*lory, prompt);
    save_pretrained(*dense, out, dtype_from_name(cli.get("dtype")));
    std::printf("wrote %s: dense LLaMA model routed by a %lld-token prompt\n", out.c_str(),
                static_cast<long long>(prompt.size(1)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_export: %s\n", e.what());
    return 1;
  }
  return 0;
}
