// lory_generate — continues a prompt with a checkpoint, streaming token ids.
//
//   lory_generate --ckpt DIR --prompt-ids 1,2,3 [--max-new-tokens 32]
//   lory_generate --ckpt DIR --prompt "def main():" [--tokenizer data/tokenizer.model]
//                 [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--seed 1]
//                 [--routing prompt|segment]
//
// Greedy with --temperature 0. Lory layers route once from the prompt
// (prompt routing, paper §3.1) or re-route every segment (segment routing).
// Generated ids are printed as they are chosen, space-separated; with a
// tokenizer, the prompt is text and the continuation is printed as text.
//
// --prompt text is encoded as Hugging Face's LLaMA tokenizer encodes it
// (corpus/tokenizer.h, Tokenizer::encode with hf_special_tokens()): BOS
// first unless the tokenizer_config.json beside the .model says
// add_bos_token false, EOS only if it says add_eos_token true. The tokenizer
// is --tokenizer (a .model file or a directory holding tokenizer.model), or
// else the checkpoint's own DIR/tokenizer.model, as in a Hugging Face model
// directory. The continuation is printed as decode(prompt + generated,
// skip_special_tokens=True) less the decoded prompt, so its first piece
// keeps its leading space.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>

#include "nn/checkpoint.h"
#include "nn/generate.h"
#include "tools/cli.h"
#include "corpus/tokenizer.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_generate", "Continues a prompt of token ids with a checkpoint (KV cache), streaming the ids.");
  std::string ckpt, prompt_ids, prompt_text, tokenizer, routing_arg = "prompt";
  GenerateOptions options;  // its defaults are the options' defaults
  int64_t stop_id = 0;
  app.add_option("--ckpt", ckpt, "a model directory (config.json + model.safetensors)")->type_name("DIR")->required();
  auto* ids_opt = app.add_option("--prompt-ids", prompt_ids, "the prompt as comma-separated token ids")
                      ->type_name("1,2,3")
                      ->check(tools::IntList);
  auto* text_opt =
      app.add_option("--prompt", prompt_text, "the prompt as text (with --tokenizer, or DIR/tokenizer.model)")
          ->type_name("TEXT");
  auto* tok_opt = app.add_option("--tokenizer", tokenizer,
                                 "a SentencePiece .model, or a directory holding tokenizer.model: text in and out "
                                 "(default with --prompt: the checkpoint's tokenizer.model)")
                      ->type_name("FILE");
  ids_opt->excludes(text_opt);
  app.add_option("--max-new-tokens", options.max_new_tokens, "tokens to generate")->type_name("N");
  app.add_option("--temperature", options.sampling.temperature, "sampling temperature; 0 is greedy")->type_name("T");
  app.add_option("--top-k", options.sampling.top_k, "sample from the K most likely tokens (0: all)")->type_name("K");
  app.add_option("--top-p", options.sampling.top_p, "sample from the smallest set of probability >= P")->type_name("P");
  app.add_option("--seed", options.seed, "seed of the sampling")->type_name("S");
  app.add_option("--routing", routing_arg, "how Lory layers route while generating")->type_name("prompt|segment");
  auto* stop_opt =
      app.add_option("--stop-id", stop_id, "stop after generating this id (default: the config's eos_token_id)")
          ->type_name("ID")
          ->default_str("");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  if (ids_opt->count() + text_opt->count() == 0) app.usage_error("give one of --prompt-ids and --prompt");
  try {
    std::unique_ptr<corpus::Tokenizer> tok;
    if (tok_opt->count() > 0) {
      tok = std::make_unique<corpus::Tokenizer>(tokenizer);
    } else if (text_opt->count() > 0) {
      const std::string own = ckpt + "/tokenizer.model";
      std::error_code ec;
      LORY_CHECK(std::filesystem::is_regular_file(own, ec), "--prompt needs a tokenizer, and ", own,
                 " does not exist: give --tokenizer FILE");
      tok = std::make_unique<corpus::Tokenizer>(own);
    }
    std::vector<int64_t> prompt;
    if (text_opt->count() > 0) {
      for (int32_t id : tok->encode(prompt_text, tok->hf_special_tokens())) prompt.push_back(id);
    } else {
      prompt = tools::int_list(prompt_ids);
    }
    auto model = load_pretrained(ckpt);
    model->eval();
    options.routing = parse_inference_routing(routing_arg, "--routing");
    options.stop_token = stop_opt->count() > 0 ? stop_id : model->config.eos_token_id;
    if (tok)
      LORY_CHECK(tok->vocab_size() <= model->config.vocab_size, "the tokenizer has ", tok->vocab_size(),
                 " pieces, more than the model's vocabulary of ", model->config.vocab_size);
    // The continuation is the decoded prompt + generated ids past the decoded
    // prompt: decoding them together keeps the space that begins the first
    // generated piece ("▁the"), which decoding it alone would drop as a
    // dummy prefix. A trailing U+FFFD may be a character whose bytes have not
    // all come yet: it is held back until they have, or until the end.
    std::vector<int32_t> ids(prompt.begin(), prompt.end());
    const std::string decoded_prompt = tok ? tok->decode_skipping_special(ids) : std::string();
    std::string shown;  // the continuation printed so far
    auto show = [&](bool last) {
      const std::string text = tok->decode_skipping_special(ids);
      if (text.compare(0, decoded_prompt.size(), decoded_prompt) != 0) return;
      const std::string continuation = text.substr(decoded_prompt.size());
      size_t stable = continuation.size();
      while (!last && stable >= 3 && continuation.compare(stable - 3, 3, "\xEF\xBF\xBD") == 0) stable -= 3;
      if (stable > shown.size() && continuation.compare(0, shown.size(), shown) == 0) {
        std::fwrite(continuation.data() + shown.size(), 1, stable - shown.size(), stdout);
        shown = continuation.substr(0, stable);
      }
    };
    if (tok) std::fwrite(prompt_text.data(), 1, prompt_text.size(), stdout);
    generate(*model, prompt, options, [&](int64_t token) {
      if (!tok) {
        std::printf("%lld ", static_cast<long long>(token));
      } else {
        ids.push_back(static_cast<int32_t>(token));
        show(false);
      }
      std::fflush(stdout);
    });
    if (tok) show(true);
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
