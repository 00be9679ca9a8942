// lory_generate — continues a prompt with a checkpoint, streaming token ids.
//
//   lory_generate --ckpt DIR --prompt-ids 1,2,3 [--max-new-tokens 32]
//   lory_generate --ckpt DIR --tokenizer data/tokenizer.model --prompt "def main():"
//                 [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--seed 1]
//                 [--routing prompt|segment]
//
// Greedy with --temperature 0. Lory layers route once from the prompt
// (prompt routing, paper §3.1) or re-route every segment (segment routing).
// Generated ids are printed as they are chosen, space-separated; with a
// tokenizer, the prompt is text and the continuation is printed as text.
#include <cstdio>
#include <exception>
#include <memory>

#include "nn/checkpoint.h"
#include "nn/generate.h"
#include "tools/cli.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::Cli cli("lory_generate", "Continues a prompt of token ids with a checkpoint (KV cache), streaming the ids.");
  cli.option("ckpt", "DIR", "a model directory (config.json + model.safetensors)");
  cli.option("prompt-ids", "1,2,3", "the prompt as comma-separated token ids");
  cli.option("prompt", "TEXT", "the prompt as text (needs --tokenizer)");
  cli.option("tokenizer", "FILE", "a SentencePiece .model: text in and out");
  cli.option("max-new-tokens", "N", "tokens to generate", "32");
  cli.option("temperature", "T", "sampling temperature; 0 is greedy", "1.0");
  cli.option("top-k", "K", "sample from the K most likely tokens (0: all)", "0");
  cli.option("top-p", "P", "sample from the smallest set of probability >= P", "1.0");
  cli.option("seed", "S", "seed of the sampling", "0");
  cli.option("routing", "prompt|segment", "how Lory layers route while generating", "prompt");
  cli.option("stop-id", "ID", "stop after generating this id (default: the config's eos_token_id)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string ckpt = cli.require("ckpt");
  if (cli.has("prompt-ids") == cli.has("prompt")) cli.fatal("give exactly one of --prompt-ids and --prompt");
  if (cli.has("prompt") && !cli.has("tokenizer")) cli.fatal("--prompt needs --tokenizer");
  try {
    std::unique_ptr<corpus::Tokenizer> tok;
    if (cli.has("tokenizer")) tok = std::make_unique<corpus::Tokenizer>(cli.get("tokenizer"));
    std::vector<int64_t> prompt;
    if (cli.has("prompt")) {
      prompt.push_back(tok->bos_id());
      for (int32_t id : tok->encode(cli.get("prompt"))) prompt.push_back(id);
    } else {
      for (long long id : cli.get_int_list("prompt-ids")) prompt.push_back(id);
    }
    auto model = load_pretrained(ckpt);
    model->eval();
    GenerateOptions options;
    options.max_new_tokens = cli.get_int("max-new-tokens");
    options.sampling = {cli.get_double("temperature"), cli.get_int("top-k"), cli.get_double("top-p")};
    options.seed = static_cast<uint64_t>(cli.get_int("seed"));
    options.routing = parse_inference_routing(cli.get("routing"), "--routing");
    options.stop_token = cli.has("stop-id") ? cli.get_int("stop-id") : model->config.eos_token_id;
    if (tok)
      LORY_CHECK(tok->vocab_size() <= model->config.vocab_size, "the tokenizer has ", tok->vocab_size(),
                 " pieces, more than the model's vocabulary of ", model->config.vocab_size);
    std::vector<int32_t> generated;
    std::string shown;  // text printed so far: decoding all ids each time keeps multi-byte characters whole
    if (tok) std::printf("%s", cli.get("prompt").c_str());
    generate(*model, prompt, options, [&](int64_t token) {
      if (!tok) {
        std::printf("%lld ", static_cast<long long>(token));
      } else {
        generated.push_back(static_cast<int32_t>(token));
        const std::string text = tok->decode(generated);
        if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0)
          std::printf("%s", text.c_str() + shown.size());
        shown = text;
      }
      std::fflush(stdout);
    });
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
