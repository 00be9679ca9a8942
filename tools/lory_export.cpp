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
  tools::App app("lory_export", "Routes a Lory checkpoint once from a prompt and writes the merged dense model.");
  std::string ckpt, prompt_ids, prompt_npy, out, dtype = "f32";
  app.add_option("--ckpt", ckpt, "a Lory model directory")->type_name("DIR")->required();
  auto* ids_opt =
      app.add_option("--prompt-ids", prompt_ids, "the prompt as comma-separated token ids (or --prompt-npy)")
          ->type_name("1,2,3")
          ->check(tools::IntList);
  auto* npy_opt =
      app.add_option("--prompt-npy", prompt_npy, "the prompt as a 1-d integer .npy array")->type_name("FILE");
  ids_opt->excludes(npy_opt);
  app.add_option("--out", out, "the directory to write")->type_name("DIR")->required();
  app.add_option("--dtype", dtype, "dtype of the saved weights")->type_name("f32|bf16");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  if (ids_opt->count() + npy_opt->count() == 0) app.usage_error("give one of --prompt-ids and --prompt-npy");
  try {
    Tensor prompt;
    if (npy_opt->count() > 0) {
      prompt = io::read_npy(prompt_npy).to(DType::i64).reshape({1, -1});
    } else {
      const std::vector<int64_t> ids = tools::int_list(prompt_ids);
      prompt = from_vector(ids, {1, static_cast<int64_t>(ids.size())}, {DType::i64});
    }
    auto lory = load_pretrained(ckpt);
    LORY_CHECK(amin(prompt).item() >= 0 && amax(prompt).item() < static_cast<double>(lory->config.vocab_size),
               "the prompt has token ids outside [0, ", lory->config.vocab_size, ")");
    auto dense = export_dense(*lory, prompt);
    save_pretrained(*dense, out, dtype_from_name(dtype));
    std::printf("wrote %s: dense LLaMA model routed by a %lld-token prompt\n", out.c_str(),
                static_cast<long long>(prompt.size(1)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_export: %s\n", e.what());
    return 1;
  }
  return 0;
}
