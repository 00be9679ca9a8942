// lory_info — what a model costs: parameters (total and active), FLOPs per
// token (dense matmuls, attention, the Lory merge), and training memory.
//
//   lory_info --preset 0.3b-32e
//   lory_info --config run/config.json --context 4096
//
// FLOPs count a multiply-add as 2. Forward FLOPs per token:
//   matmuls    2 * (2 d^2 + 2 d d_kv + 3 d f) per layer (d_kv = d without GQA) + 2 d V for lm_head
//   attention  4 d * (L + 1) / 2 per layer: q k^T and p v over the L' <= L keys a causal
//              query sees, averaged over the positions of an L-token sequence
//   merge      6 E d f / T per layer: three [E] x [E, d f] merges per segment of T tokens (App. B)
// Training is 3x forward (backward is twice forward for every matmul).
//
// Training memory per rank (train/memory_plan.h): weights, gradients, f32
// master weights and Adam moments as the data-parallel engine lays them out
// for --ranks N and ZeRO stage --zero S, and the activations of one
// micro-batch of --micro-batch B sequences of --seq L tokens:
//
//   lory_info --preset 1.5b-32e --ranks 64 --zero 2 --micro-batch 4 --seq 4096 --recompute blocks
//
// "fits" compares the total, plus what the plan does not count, with
// --gpu-memory: 2 GiB for the CUDA context, cuBLAS workspaces and NCCL
// buffers, and 1/8 of the activations for the caching allocator (sizes
// rounded up to 2 MiB, a cached block reused for a request up to 1/8
// smaller: cuda/caching_allocator.h).
#include <cstdio>
#include <string>

#include "nn/config.h"
#include "tensor/dtype.h"
#include "tools/cli.h"
#include "train/memory_plan.h"

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
  train::MemoryPlanInput plan_in;
  std::string precision = "bf16", recompute = "none";
  std::string merge_kernel = "fused";
  double gpu_gib = 80, bucket_mib = 25;
  app.add_option("--ranks", plan_in.world, "data-parallel ranks")->type_name("N")->check(CLI::PositiveNumber);
  app.add_option("--zero", plan_in.zero,
                 "ZeRO stage: 0 (nothing sharded), 1 (master weights and Adam moments), "
                 "2 (also the f32 gradients)")
      ->type_name("S")
      ->check(CLI::Range(0, 2));
  app.add_option("--micro-batch", plan_in.micro_batch, "sequences per micro-batch (train.micro_batch)")
      ->type_name("B")
      ->check(CLI::PositiveNumber);
  auto* seq_opt = app.add_option("--seq", plan_in.seq_len, "tokens per sequence (default: --context)")
                      ->type_name("L")
                      ->check(CLI::PositiveNumber)
                      ->default_str("");
  app.add_option("--precision", precision, "compute dtype (train.precision)")
      ->type_name("P")
      ->check(CLI::IsMember({"bf16", "f32"}));
  app.add_option("--recompute", recompute, "activation recomputation per decoder layer (train.recompute)")
      ->type_name("R")
      ->check(CLI::IsMember({"none", "blocks"}));
  app.add_option("--merge-kernel", merge_kernel,
                 "how Lory layers apply merged experts (train.merge_kernel): fused stores no merged matrix, gemm "
                 "stores every segment's")
      ->type_name("K")
      ->check(CLI::IsMember({"fused", "gemm"}));
  app.add_option("--accumulation", plan_in.accumulation,
                 "micro-batches per step on each rank (global batch / (micro-batch x ranks x seq))")
      ->type_name("A")
      ->check(CLI::PositiveNumber);
  app.add_option("--bucket-mib", bucket_mib, "gradient bucket size (f32 staging without an accumulator)")
      ->type_name("MIB")
      ->check(CLI::PositiveNumber);
  app.add_option("--gpu-memory", gpu_gib, "memory of one GPU, to say whether a rank fits")
      ->type_name("GIB")
      ->check(CLI::PositiveNumber);
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
                !c.is_lory()                       ? "dense"
                : c.moe_type == nn::MoEType::lory ? "Lory"
                                                   : nn::moe_type_name(c.moe_type),
                static_cast<long long>(c.num_hidden_layers),
                static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_attention_heads),
                static_cast<long long>(c.head_dim()), static_cast<long long>(c.intermediate_size),
                static_cast<long long>(c.vocab_size));
    if (c.num_key_value_heads != c.num_attention_heads)
      std::printf(", %lld key/value heads (grouped-query)", static_cast<long long>(c.num_key_value_heads));
    if (c.tie_word_embeddings) std::printf(", tied embeddings");
    if (c.is_lory())
      std::printf(", %lld experts, segments of %lld", static_cast<long long>(c.num_experts),
                  static_cast<long long>(c.segment_length));
    std::printf("\n\nparameters                     count\n");
    auto row = [](const char* what, double v) { std::printf("  %-22s %14.0f  (%.2fB)\n", what, v, v / 1e9); };
    row(c.tie_word_embeddings ? "embeddings (tied)" : "embeddings + lm_head", static_cast<double>(n.embeddings));
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
    if (c.is_lory() && c.moe_type != nn::MoEType::lory) {
      frow("router", router_flops);
      std::printf("  capacity factor %.2f: each token runs %.2f FFNs on average; gates %s\n", c.capacity_factor,
                  c.capacity_factor, nn::expert_choice_gates_name(c.expert_choice_gates));
    } else if (c.is_lory()) {
      frow("expert merge", merge_flops);
      frow("router", router_flops);
      std::printf("  merge / FFN matmuls: %.1f%% (E/T, paper App. B)\n", 100.0 * merge_flops / (layers * 6 * d * f));
    }
    frow("total", forward);
    std::printf("  training (3x forward)  %14.3e\n", 3 * forward);

    plan_in.seq_len = seq_opt->count() > 0 ? plan_in.seq_len : static_cast<int64_t>(L);
    plan_in.compute = precision == "bf16" ? DType::bf16 : DType::f32;
    plan_in.recompute_blocks = recompute == "blocks";
    plan_in.merge_kernel = nn::parse_merge_kernel(merge_kernel, "--merge-kernel");
    plan_in.bucket_bytes = static_cast<int64_t>(bucket_mib * (1 << 20));
    const train::MemoryPlan plan = train::plan_memory(c, plan_in);
    const train::ActivationEstimate& act = plan.activations;
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    constexpr double kOverheadGiB = 2.0;  // CUDA context, cuBLAS workspaces, NCCL buffers
    auto gib = [](int64_t bytes) { return static_cast<double>(bytes) / kGiB; };
    const bool bf16 = plan_in.compute == DType::bf16, sharded = plan_in.zero >= 1, multi = plan_in.world > 1;
    const char* c_name = bf16 ? "bf16" : "f32";

    std::printf(
        "\ntraining memory per rank: %lld rank%s, ZeRO-%d, %s compute, micro-batch %lld x %lld tokens, "
        "accumulation %lld, recompute %s%s\n",
        static_cast<long long>(plan_in.world), multi ? "s" : "", plan_in.zero, c_name,
        static_cast<long long>(plan_in.micro_batch), static_cast<long long>(plan_in.seq_len),
        static_cast<long long>(plan_in.accumulation), recompute.c_str(),
        merge_kernel == "gemm" ? ", merged experts stored (gemm)" : "");
    std::printf("  flat parameters %lld elements (padded to 16 per parameter and 16 x ranks), shard %lld\n",
                static_cast<long long>(plan.flat_elements), static_cast<long long>(plan.shard_elements));
    std::printf("                            GiB\n");
    auto mrow = [&](const char* what, int64_t bytes, const std::string& how) {
      std::printf("  %-20s %9.2f%s%s\n", what, gib(bytes), how.empty() ? "" : "   ", how.c_str());
    };
    mrow("weights", plan.weights, std::string(c_name) + " x all, on every rank");
    std::string grads = std::string(c_name) + " x all";
    const bool accumulator =
        plan_in.world == 1 || plan_in.zero == 0 || (plan_in.zero == 1 && (plan_in.accumulation > 1 || !bf16));
    if (!accumulator && bf16) grads += " + f32 staging of 2 buckets";
    if (accumulator && bf16) grads += " + f32 accumulator x all";
    if (multi) grads += accumulator ? " + f32 reduced shard" : " + 2 x f32 shard (reduced, incoming)";
    mrow("gradients", plan.gradients, grads);
    mrow("master weights", plan.master, bf16 ? (sharded ? "f32 x shard" : "f32 x all") : "none (the f32 weights)");
    mrow("Adam moments", plan.moments, sharded ? "2 x f32 x shard" : "2 x f32 x all");
    char act_how[160];
    std::snprintf(act_how, sizeof act_how, "peak, at the %s (%.2f GiB saved by the forward)", act.peak_at.c_str(),
                  gib(act.saved));
    mrow("activations", act.peak, act_how);
    mrow("total", plan.total(), "");
    const double needed = gib(plan.total()) + kOverheadGiB + gib(act.peak) / 8;
    std::printf(
        "  fits in %g GiB: %s (needs %.1f GiB = total + %.0f GiB CUDA context, cuBLAS, NCCL + 1/8 of the "
        "activations for allocator rounding)\n",
        gpu_gib, needed <= gpu_gib ? "yes" : "NO", needed, kOverheadGiB);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_info: %s\n", e.what());
    return 1;
  }
  return 0;
}
