// lory_info — what a model costs: parameters (total and active), FLOPs per
// token (dense matmuls, attention, the Lory merge), and training memory.
//
//   lory_info --preset 0.3b-32e
//   lory_info --config run/config.json --context 4096
//
// FLOPs count a multiply-add as 2. Forward FLOPs per token:
//   matmuls    2 * (4 d^2 + 3 d f) per layer + 2 d V for lm_head (one merged FFN per token)
//   attention  4 d * (L + 1) / 2 per layer: q k^T and p v over the L' <= L keys a causal
//              query sees, averaged over the positions of an L-token sequence
//   merge      6 E d f / T per layer: three [E] x [E, d f] merges per segment of T tokens (App. B)
// Training is 3x forward (backward is twice forward for every matmul).
#include <cstdio>
#include <string>

#include "nn/config.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_info", "Prints parameter counts, FLOPs per token and training memory of a model.");
  std::string config_path, preset_name;
  int64_t context = 0;
  auto* config_opt = app.add_option("--config", config_path, "a config.json (or give --preset)")->type_name("FILE");
  auto* preset_opt =
      app.add_option("--preset", preset_name,
                     "a preset: 0.3b, 0.3b-8e/16e/32e, 1.5b, 1.5b-8e/16e/32e, 7b, 7b-4e, tiny, small, small-8e")
          ->type_name("NAME");
  config_opt->excludes(preset_opt);
  auto* context_opt =
      app.add_option("--context", context, "sequence length for the attention FLOPs (default: max_position_embeddings)")
          ->type_name("L")
          ->default_str("");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  if (config_opt->count() + preset_opt->count() == 0) app.usage_error("give one of --config and --preset");
  try {
    const LoryConfig c = config_opt->count() > 0 ? load_config(config_path) : preset(preset_name);
    const double L = static_cast<double>(context_opt->count() > 0 ? context : c.max_position_embeddings);
    const ParameterCount n = count_parameters(c);
    const double d = static_cast<double>(c.hidden_size), f = static_cast<double>(c.intermediate_size);
    const double layers = static_cast<double>(c.num_hidden_layers);

    const FlopsPerToken flops = flops_per_token(c, static_cast<int64_t>(L));
    const double matmul_flops = flops.matmul, attention_flops = flops.attention;
    const double merge_flops = flops.merge, router_flops = flops.router;
    const double forward = flops.forward();

    std::printf("model: %s, %lld layers, d %lld, %lld heads of %lld, f %lld, vocab %lld",
                c.is_lory() ? "Lory" : "dense", static_cast<long long>(c.num_hidden_layers),
                static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_attention_heads),
                static_cast<long long>(c.head_dim()), static_cast<long long>(c.intermediate_size),
                static_cast<long long>(c.vocab_size));
    if (c.is_lory())
      std::printf(", %lld experts, segments of %lld", static_cast<long long>(c.num_experts),
                  static_cast<long long>(c.segment_length));
    std::printf("\n\nparameters                     count\n");
    auto row = [](const char* what, double v) { std::printf("  %-22s %14.0f  (%.2fB)\n", what, v, v / 1e9); };
    row("embeddings + lm_head", static_cast<double>(n.embeddings));
    row("attention", static_cast<double>(n.attention));
    row(c.is_lory() ? "experts (all)" : "ffn", static_cast<double>(n.ffn));
    if (c.is_lory()) row("routers", static_cast<double>(n.router));
    row("norms", static_cast<double>(n.norms));
    row("total", static_cast<double>(n.total()));
    row("active per token", static_cast<double>(n.active));

    std::printf("\nforward FLOPs per token (context %.0f)\n", L);
    auto frow = [&](const char* what, double v) {
      std::printf("  %-22s %14.3e  (%5.1f%%)\n", what, v, 100.0 * v / forward);
    };
    frow("matmuls", matmul_flops);
    frow("attention", attention_flops);
    if (c.is_lory()) {
      frow("expert merge", merge_flops);
      frow("router", router_flops);
      std::printf("  merge / FFN matmuls: %.1f%% (E/T, paper App. B)\n", 100.0 * merge_flops / (layers * 6 * d * f));
    }
    frow("total", forward);
    std::printf("  training (3x forward)  %14.3e\n", 3 * forward);

    const double P = static_cast<double>(n.total());
    auto bytes = [](double b) {
      const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
      int u = 0;
      for (; b >= 1024 && u < 4; ++u) b /= 1024;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
      return std::string(buf);
    };
    std::printf("\ntraining memory for parameters, gradients and AdamW state (no activations)\n");
    std::printf("  f32 everywhere:           %11s  (weights 4 + grads 4 + Adam m, v 8 bytes)\n", bytes(P * 16).c_str());
    std::printf("  bf16 compute, f32 master: %11s  (bf16 weights 2 + grads 2 + f32 master 4 + m, v 8)\n",
                bytes(P * 16).c_str());
    std::printf("  same, ZeRO-1 on 64 ranks: %11s  per rank (weights, grads whole: 4; master, m, v sharded: 12/64)\n",
                bytes(P * (4 + 12.0 / 64)).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_info: %s\n", e.what());
    return 1;
  }
  return 0;
}
