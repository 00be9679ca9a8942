// lory_bench_train — whole training steps timed, dense against Lory: how many
// tokens a second the engine trains, and what Lory's merged experts cost.
//
// Why: a kernel benchmark (lory_bench_kernels) says how fast each op is; what
// a user pays is the step: forward, backward and the optimizer, with every
// copy, allocation and graph node between the kernels. This program builds a
// dense model and Lory models of the same shape (every FFN E experts, merged
// per segment of T tokens), and trains each for a few steps on random tokens
// exactly as lory_train does one optimizer step (train/trainer.cpp,
// Trainer::optimizer_step), with the same library:
//   ZeroOptimizer on a single-process communicator (train/zero_optimizer.h):
//     the flat parameter buffers (train/flat_parameters.h)
//   per micro-batch: loss = model.loss(tokens [B, L+1]); (loss / A).backward()
//   the global gradient norm, AdamW with global-norm clipping at 1.0 over the
//     flat buffers (train/adamw.h), the check that the weights stayed finite
// Not timed: the data loader (the tokens are random, fixed seed, made once),
// the LR schedule, logging, routing statistics, evaluation, checkpoints.
//
// Each row: --warmup steps, then --rounds rounds of --steps steps; the best
// round counts (tokens/s = tokens per step x steps / its time). Per row:
//   tokens/s, ms per step
//   MFU       model FLOPs per token x tokens/s / peak. Model FLOPs are the
//             standard count, 6 x active matmul parameters + attention
//             (nn::flops_per_token: 2(4d^2 + 3df) per layer + 2dV for
//             lm_head, causal attention 4d(L+1)/2 per layer; a training
//             step is 3x the forward). For Lory the active FFN is ONE
//             expert's (what a merged segment runs); the merge of the E
//             experts (6Edf/T per token per layer) and the router are
//             overhead Lory pays, not model FLOPs, so dense and Lory rows
//             share the FLOPs per token and the MFU ratio is the tokens/s
//             ratio. (lory_train's MFU counts the merge: it is higher.)
//             Peak: --peak-tflops, else a GEMM timed in this run (n^3 in the
//             row's dtype: the machine's practical peak; 989 TFLOP/s, an
//             H100 SXM's dense bf16, for CUDA bf16)
//   peak memory  the most tensor memory live at once during the steps
//             (tensor/memory_stats.h on the CPU, the caching allocator on
//             CUDA): weights, gradients, optimizer state and activations;
//             next to it memory_plan.h's prediction ("plan"), and the
//             process's peak RSS over the steps (reset per row where Linux
//             allows; it includes freed heap malloc kept)
//   CPU       the CPU time of the counted round over its wall time x
//             threads: near 100% when the steps had the cores to
//             themselves; well under it, other work on the machine took
//             some and the row is slower than the engine is
//   lory/dense   the row's tokens/s over the dense row's (same run, dtype)
//   goal      issue 16: Lory 8E >= 0.90 of dense at T=64, >= 0.95 at
//             T=256, 32E >= 0.85 at T=256 (ok / BELOW); other rows: none
//
//   lory_bench_train                                    # the shape: dense, Lory 8E T=64, f32, CPU
//   lory_bench_train --lory 8x64,8x256,32x256 --dtype f32,bf16 --json bench.json
//   lory_bench_train --preset main-job                  # the CPU main job's model (configs/cpu-lory-8e.toml)
//   lory_bench_train --preset paper-0.3b                # the paper's 0.3B, bf16, on a GPU
//   lory_bench_train --quick                            # a smoke run (ctest)
// tools/bench/perf-table.sh runs it next to the same model in PyTorch
// (tools/bench/pytorch_baseline.py) and prints one table.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "nn/lory_lm.h"
#include "tensor/backend.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"
#include "tools/cli.h"
#include "train/memory_plan.h"
#include "train/memory_use.h"
#include "train/trainer.h"
#include "train/zero_optimizer.h"

using namespace lory;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The model and batch every row shares; a row adds E and T.
struct Shape {
  int64_t layers = 4, hidden = 256, ffn = 688, heads = 4, vocab = 8000;
  int64_t batch = 4, seq = 512, accumulation = 1;
  int64_t tokens_per_step() const { return batch * seq * accumulation; }
};

struct Variant {
  int64_t experts = 0;  // 0: dense
  int64_t segment = 0;
  std::string name() const {
    return experts == 0 ? "dense" : "lory E=" + std::to_string(experts) + " T=" + std::to_string(segment);
  }
};

// What --preset sets (any option given on the command line wins).
struct Preset {
  Shape shape;
  std::string lory, dtype, device;
};

const std::vector<std::pair<std::string, Preset>>& presets() {
  static const std::vector<std::pair<std::string, Preset>> table = {
      // Issue 16's shape: 4 x 256, f 688, vocab 8000, 4 x 512 tokens.
      {"issue", {Shape{}, "8x64", "f32", "cpu"}},
      // configs/cpu-lory-8e.toml (tools/main-job.sh): 4 x 192, f 512, vocab
      // 4096, micro-batch 8 x 256 tokens, 4 micro-batches (8192 tokens a step).
      {"main-job", {Shape{4, 192, 512, 4, 4096, 8, 256, 4}, "8x64", "f32", "cpu"}},
      // The paper's 0.3B (App. D: 24 x 1024, 16 heads, f 2816, vocab 32000,
      // 4096 tokens, T 256) on one GPU: 2 sequences a step fit 80 GB with 8
      // experts (lory_info: 54 GiB); 32 experts need ZeRO over several GPUs.
      {"paper-0.3b", {Shape{24, 1024, 2816, 16, 32000, 2, 4096, 1}, "8x256", "bf16", "cuda"}},
  };
  return table;
}

std::string preset_names() {
  std::string s;
  for (const auto& [name, p] : presets()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

// The goals for Lory's tokens/s as a fraction of dense's (NaN: none).
double goal_for(const Variant& v) {
  if (v.experts == 8 && v.segment == 64) return 0.90;
  if (v.experts == 8 && v.segment == 256) return 0.95;
  if (v.experts == 32 && v.segment == 256) return 0.85;
  return NAN;
}

nn::LoryConfig model_config(const Shape& s, const Variant& v) {
  nn::LoryConfig c;
  c.num_hidden_layers = s.layers;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.num_attention_heads = c.num_key_value_heads = s.heads;
  c.vocab_size = s.vocab;
  c.max_position_embeddings = s.seq;
  c.num_experts = v.experts;
  if (v.experts > 0) c.segment_length = v.segment;
  c.validate("lory_bench_train");
  return c;
}

// Standard model FLOPs of one training token (see the top of the file): the
// merge and the router are not counted.
double model_flops_per_token(const nn::LoryConfig& c, int64_t seq) {
  const nn::FlopsPerToken f = nn::flops_per_token(c, seq);
  return 3.0 * (f.matmul + f.attention);
}

// One model being trained: the model, its flat buffers and AdamW state, and
// the random micro-batches of a step.
class TrainStep {
 public:
  TrainStep(const nn::LoryConfig& config, const Shape& s, DType dtype, Device device, bool recompute, uint64_t seed)
      : shape_(s), device_(device) {
    manual_seed(seed);
    model_ = std::make_unique<nn::LoryLM>(config);  // initialised on the host, as the trainer does
    model_->recompute_activations = recompute;
    model_->train();
    comm_ = train::single_process_communicator();
    train::ZeroOptions zero;
    zero.device = device;
    zero.accumulation = s.accumulation;
    // AdamW as paper §4.1 (and lory_train's defaults): betas 0.9/0.95, eps 1e-8, weight decay 0.1.
    zero_ = std::make_unique<train::ZeroOptimizer>(*model_, dtype, *comm_, zero, train::AdamWOptions{});
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> token(0, s.vocab - 1);
    for (int64_t a = 0; a < s.accumulation; ++a) {
      std::vector<int64_t> ids(static_cast<size_t>(s.batch * (s.seq + 1)));
      for (int64_t& id : ids) id = token(rng);
      batches_.push_back(from_vector(ids, {s.batch, s.seq + 1}, {DType::i64}));
    }
  }

  // One optimizer step (Trainer::optimizer_step without the data loader and
  // the logging); returns the step's mean loss, read on the host, which also
  // waits for a GPU to finish the step.
  double run() {
    zero_->begin_step();
    Tensor loss_sum;
    const int64_t A = shape_.accumulation;
    for (int64_t a = 0; a < A; ++a) {
      const Tensor loss = model_->loss(batches_[static_cast<size_t>(a)].to(device_));
      zero_->before_backward(a + 1 == A);
      mul(loss, 1.0 / static_cast<double>(A)).backward();
      zero_->after_backward();
      NoGradGuard no_grad;
      loss_sum = loss_sum.defined() ? add(loss_sum, loss.detach()) : loss.detach();
    }
    const double norm = zero_->reduce_and_norm();
    LORY_CHECK(std::isfinite(norm), "the gradient norm is ", norm, "; the first parameter with a NaN/Inf gradient is ",
               zero_->first_non_finite_grad());
    zero_->step(kLearningRate, kGradClip, norm);
    const std::string bad = zero_->first_non_finite_param();
    LORY_CHECK(bad.empty(), "the update made parameter ", bad, " NaN/Inf");
    return loss_sum.item() / static_cast<double>(A);
  }

  const train::ZeroOptimizer& optimizer() const { return *zero_; }

 private:
  static constexpr double kLearningRate = 3e-4, kGradClip = 1.0;
  Shape shape_;
  Device device_;
  std::unique_ptr<nn::LoryLM> model_;
  std::unique_ptr<train::Communicator> comm_;
  std::unique_ptr<train::ZeroOptimizer> zero_;
  std::vector<Tensor> batches_;  // host [B, L+1] i64, one per micro-batch
};

// CPU seconds this process has used (all threads, user + system).
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct Timing {
  double best_round_s = 0;
  // CPU time of the best round over its wall time x threads: about 1 when the
  // steps had the cores to themselves (OpenMP threads spin while they wait),
  // well under 1 when other work on the machine took some.
  double cpu_share = NAN;
  double last_loss = NAN;
};

// --rounds rounds of --steps steps; the fastest round counts.
Timing time_steps(TrainStep& step, int steps, int rounds, int threads) {
  Timing t;
  t.best_round_s = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_seconds();
    for (int i = 0; i < steps; ++i) t.last_loss = step.run();
    const double wall = seconds_since(t0);
    if (wall < t.best_round_s) {
      t.best_round_s = wall;
      t.cpu_share = (process_cpu_seconds() - cpu0) / (wall * threads);
    }
  }
  return t;
}

struct Row {
  Variant variant;
  std::string dtype;
  int64_t params_total = 0, params_active = 0;
  double step_ms = 0, tokens_per_s = 0, mfu = 0, flops_per_token = 0;
  int64_t peak_tensor_bytes = 0, plan_bytes = 0, peak_rss_bytes = 0;
  bool rss_per_row = false;
  double first_loss = NAN, loss = NAN;
  double ratio = NAN, goal = NAN;
  double cpu_share = NAN;
  std::string profile;  // profiler::to_json of the --profile steps, when asked for
};

struct Reference {
  std::string dtype;
  double gemm_tflops = 0, peak_tflops = 0;
  std::string peak_source;
};

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

void print_header() {
  std::printf("%-18s %-5s %9s %9s %10s %10s %6s %10s %8s %8s %5s %7s %-8s %s\n", "model", "dtype", "params M",
              "active M", "step ms", "tokens/s", "MFU", "peak GiB", "plan GiB", "RSS GiB", "CPU", "/dense", "goal", "");
}

void print_row(const Row& r) {
  char ratio[16] = "", goal[16] = "", verdict[8] = "";
  if (!std::isnan(r.ratio)) std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio);
  if (!std::isnan(r.goal)) {
    std::snprintf(goal, sizeof goal, ">= %.2f", r.goal);
    std::snprintf(verdict, sizeof verdict, "%s", r.ratio >= r.goal ? "ok" : "BELOW");
  }
  std::printf("%-18s %-5s %9.2f %9.2f %10.1f %10.0f %5.1f%% %10s %8s %8s %4.0f%% %7s %-8s %s\n",
              r.variant.name().c_str(), r.dtype.c_str(), static_cast<double>(r.params_total) / 1e6,
              static_cast<double>(r.params_active) / 1e6, r.step_ms, r.tokens_per_s, 100.0 * r.mfu,
              gib(r.peak_tensor_bytes).c_str(), gib(r.plan_bytes).c_str(), gib(r.peak_rss_bytes).c_str(),
              100.0 * r.cpu_share, ratio, goal, verdict);
  std::fflush(stdout);
}

// The run as JSON. The row fields are the ones tools/bench/pytorch_baseline.py writes.
std::string json_report(const std::vector<Row>& rows, const std::vector<Reference>& refs, const Shape& s,
                        const std::string& device, int threads, int steps, int warmup, int rounds, bool quick) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); };
  nlohmann::ordered_json j;
  j["program"] = "lory_bench_train";
  j["engine"] = "lory";
  j["device"] = device;
  j["threads"] = threads;
  j["quick"] = quick;
  j["shape"] = {{"layers", s.layers}, {"hidden", s.hidden}, {"ffn", s.ffn},     {"heads", s.heads},
                {"vocab", s.vocab},   {"batch", s.batch},   {"seq", s.seq},     {"accumulation", s.accumulation},
                {"tokens_per_step", s.tokens_per_step()}};
  j["timing"] = {{"warmup_steps", warmup}, {"steps_per_round", steps}, {"rounds", rounds}, {"statistic", "best round"}};
  j["references"] = nlohmann::json::array();
  for (const Reference& r : refs)
    j["references"].push_back(nlohmann::ordered_json{{"dtype", r.dtype},
                                                     {"gemm_tflops", r.gemm_tflops},
                                                     {"peak_tflops", r.peak_tflops},
                                                     {"peak_source", r.peak_source}});
  j["rows"] = nlohmann::json::array();
  for (const Row& r : rows) {
    const bool lory = r.variant.experts > 0;
    j["rows"].push_back(nlohmann::ordered_json{
        {"model", r.variant.name()},
        {"kind", lory ? "lory" : "dense"},
        {"experts", r.variant.experts},
        {"segment", lory ? nlohmann::json(r.variant.segment) : nlohmann::json()},
        {"dtype", r.dtype},
        {"params_total", r.params_total},
        {"params_active", r.params_active},
        {"tokens_per_step", s.tokens_per_step()},
        {"step_ms", r.step_ms},
        {"tokens_per_s", r.tokens_per_s},
        {"model_flops_per_token", r.flops_per_token},
        {"mfu", r.mfu},
        {"peak_tensor_bytes", r.peak_tensor_bytes},
        {"plan_bytes", r.plan_bytes},
        {"peak_rss_bytes", r.peak_rss_bytes},
        {"rss_scope", r.rss_per_row ? "row" : "process"},
        {"cpu_share", num(r.cpu_share)},
        {"first_loss", num(r.first_loss)},
        {"loss", num(r.loss)},
        {"lory_dense_ratio", num(r.ratio)},
        {"goal", num(r.goal)},
        {"goal_met", std::isnan(r.goal) ? nlohmann::json() : nlohmann::json(r.ratio >= r.goal)}});
    if (!r.profile.empty()) j["rows"].back()["profile"] = nlohmann::json::parse(r.profile);
  }
  return j.dump(1) + "\n";
}

// "8x64,32x256" -> {{8, 64}, {32, 256}}.
std::vector<Variant> parse_lory_list(const std::string& list, tools::App& app) {
  std::vector<Variant> out;
  for (const std::string& item : tools::split_commas(list)) {
    const size_t x = item.find('x');
    std::vector<int64_t> pair;
    try {
      if (x == std::string::npos) throw CLI::ValidationError("");
      pair = {tools::int_list(item.substr(0, x))[0], tools::int_list(item.substr(x + 1))[0]};
    } catch (const CLI::ValidationError&) {
      app.usage_error("--lory: '" + item + "' is not EXPERTSxSEGMENT (e.g. 8x64)");
    }
    if (pair[0] < 1 || pair[1] < 1) app.usage_error("--lory: '" + item + "' needs experts and segment >= 1");
    out.push_back({pair[0], pair[1]});
  }
  if (out.empty()) app.usage_error("--lory: no EXPERTSxSEGMENT pair in '" + list + "'");
  return out;
}

int bench_main(int argc, char** argv) {
  tools::App app("lory_bench_train",
                 "Times whole training steps (forward, backward, AdamW with clipping) of a dense model and of Lory "
                 "models, with tokens/s, MFU, peak memory and the Lory/dense ratio against the issue's goals.");
  std::string preset_name = "issue", experts_arg, segments_arg, lory_arg, dtype_arg, device_arg, json_path;
  Shape s;
  int steps = 3, warmup = 2, rounds = 3, threads = 0, profile_steps = 0;
  double peak_arg = 0;
  bool quick = false, recompute = false;
  app.add_option("--preset", preset_name, "the shape, rows, dtype and device to start from: " + preset_names())
      ->type_name("NAME");
  // Shape options: a preset sets them; one given here wins.
  auto* layers_opt = app.add_option("--layers", s.layers, "decoder layers")->type_name("N")->check(CLI::PositiveNumber);
  auto* hidden_opt = app.add_option("--hidden", s.hidden, "hidden size d")->type_name("d")->check(CLI::PositiveNumber);
  auto* ffn_opt = app.add_option("--ffn", s.ffn, "FFN width f (of each expert)")->type_name("f")->check(CLI::PositiveNumber);
  auto* heads_opt = app.add_option("--heads", s.heads, "attention heads")->type_name("H")->check(CLI::PositiveNumber);
  auto* vocab_opt = app.add_option("--vocab", s.vocab, "vocabulary size")->type_name("V")->check(CLI::PositiveNumber);
  auto* batch_opt = app.add_option("--batch", s.batch, "sequences per micro-batch")->type_name("B")->check(CLI::PositiveNumber);
  auto* seq_opt = app.add_option("--seq", s.seq, "tokens per sequence")->type_name("L")->check(CLI::PositiveNumber);
  auto* accum_opt = app.add_option("--accumulation", s.accumulation, "micro-batches per optimizer step")
                        ->type_name("A")
                        ->check(CLI::PositiveNumber);
  app.add_option("--experts", experts_arg, "expert counts of the Lory rows (each with every --segment)")
      ->type_name("E,...")
      ->check(tools::IntList);
  app.add_option("--segment", segments_arg, "segment lengths T of the Lory rows")->type_name("T,...")->check(tools::IntList);
  app.add_option("--lory", lory_arg, "Lory rows as EXPERTSxSEGMENT pairs, instead of --experts x --segment")
      ->type_name("ExT,...");
  app.add_option("--dtype", dtype_arg, "compute dtypes, one dense row and the Lory rows each (default: the preset's)")
      ->type_name("f32|bf16,...");
  app.add_option("--device", device_arg, "cpu or cuda (default: the preset's)")
      ->type_name("DEVICE")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_flag("--recompute", recompute, "recompute each decoder layer in backward (train.recompute = \"blocks\")");
  app.add_option("--steps", steps, "timed steps per round")->type_name("N")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps before the rounds (the first allocates everything)")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "timing rounds (the fastest counts)")->type_name("N")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU threads (default: OpenMP's, OMP_NUM_THREADS or every core)")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
  auto* peak_opt = app.add_option("--peak-tflops", peak_arg,
                                  "the peak MFU is measured against (default: a GEMM timed in this run; "
                                  "989 for CUDA bf16)")
                       ->type_name("X")
                       ->default_str("")
                       ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "also write the rows as JSON")->type_name("FILE");
  app.add_option("--profile", profile_steps,
                 "after each row's timed rounds, profile N more steps and print time per op, layer and phase")
      ->expected(0, 1)
      ->default_str("2")
      ->type_name("N")
      ->check(CLI::Range(1, 1000000));
  app.add_flag("--quick", quick, "tiny shapes and one step: a smoke run (ctest), not a measurement");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();

  // The preset first, then every option given on the command line over it.
  const auto found = std::find_if(presets().begin(), presets().end(), [&](const auto& p) { return p.first == preset_name; });
  if (found == presets().end()) app.usage_error("--preset: unknown preset '" + preset_name + "' (one of " + preset_names() + ")");
  const Preset& preset = found->second;
  const Shape given = s;
  s = preset.shape;
  for (auto [opt, field] : std::vector<std::pair<CLI::Option*, int64_t Shape::*>>{
           {layers_opt, &Shape::layers}, {hidden_opt, &Shape::hidden}, {ffn_opt, &Shape::ffn},
           {heads_opt, &Shape::heads}, {vocab_opt, &Shape::vocab}, {batch_opt, &Shape::batch},
           {seq_opt, &Shape::seq}, {accum_opt, &Shape::accumulation}})
    if (opt->count() > 0) s.*field = given.*field;
  std::string rows_arg = preset.lory;
  if (quick) {
    s = Shape{2, 64, 176, 2, 512, 2, 128, 1};
    rows_arg = "4x32,8x64";
    steps = rounds = 1;
    warmup = 1;
  }
  if (!lory_arg.empty() && (!experts_arg.empty() || !segments_arg.empty()))
    app.usage_error("give the Lory rows either as --lory ExT,... or as --experts and --segment, not both");
  std::vector<Variant> variants{{0, 0}};
  if (!experts_arg.empty() || !segments_arg.empty()) {
    // The product; a list left out takes the rows' values from the preset.
    std::vector<int64_t> es, ts;
    for (const Variant& v : parse_lory_list(rows_arg, app)) es.push_back(v.experts), ts.push_back(v.segment);
    if (!experts_arg.empty()) es = tools::int_list(experts_arg);
    if (!segments_arg.empty()) ts = tools::int_list(segments_arg);
    std::sort(es.begin(), es.end()), es.erase(std::unique(es.begin(), es.end()), es.end());
    std::sort(ts.begin(), ts.end()), ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
    for (int64_t e : es)
      for (int64_t t : ts) {
        if (e < 1 || t < 1) app.usage_error("--experts and --segment need values >= 1, got " + std::to_string(e) + " and " + std::to_string(t));
        variants.push_back({e, t});
      }
  } else {
    for (const Variant& v : parse_lory_list(lory_arg.empty() ? rows_arg : lory_arg, app)) variants.push_back(v);
  }
  std::vector<DType> dtypes;
  for (const std::string& name : tools::split_commas(dtype_arg.empty() ? preset.dtype : dtype_arg)) {
    if (name != "f32" && name != "bf16") app.usage_error("--dtype: '" + name + "' is not f32 or bf16");
    dtypes.push_back(name == "bf16" ? DType::bf16 : DType::f32);
  }
  if (dtypes.empty()) app.usage_error("--dtype: no dtype in '" + dtype_arg + "'");
  if (s.hidden % s.heads != 0)
    app.usage_error("--hidden " + std::to_string(s.hidden) + " is not a multiple of --heads " + std::to_string(s.heads));
  if ((s.hidden / s.heads) % 2 != 0)
    app.usage_error("the head dimension --hidden / --heads = " + std::to_string(s.hidden / s.heads) + " must be even (RoPE)");

  const std::string device_name = device_arg.empty() ? preset.device : device_arg;
  if (device_name == "cuda" && !cuda_is_available()) {
    std::fprintf(stderr,
                 "lory_bench_train: no CUDA GPU is available (or this build has no CUDA): nothing to benchmark.\n"
                 "  Run it on a GPU machine, or on the CPU: lory_bench_train --device cpu\n");
    return 3;
  }
  const Device device = device_name == "cuda" ? cuda_device(0) : cpu_device();
  if (threads > 0) omp_set_num_threads(threads);
  const int used_threads = omp_get_max_threads();

  std::printf("lory_bench_train on %s (%d threads): %lld layers, d %lld, f %lld, %lld heads, vocab %lld; "
              "%lld x %lld tokens x %lld micro-batches = %lld tokens a step%s\n",
              device.str().c_str(), used_threads, static_cast<long long>(s.layers), static_cast<long long>(s.hidden),
              static_cast<long long>(s.ffn), static_cast<long long>(s.heads), static_cast<long long>(s.vocab),
              static_cast<long long>(s.batch), static_cast<long long>(s.seq), static_cast<long long>(s.accumulation),
              static_cast<long long>(s.tokens_per_step()),
              quick ? " (--quick: tiny shapes, one step; not a measurement)" : "");
  std::printf("each row: %d warm-up steps, then the best of %d rounds of %d steps; AdamW + clipping over the flat "
              "buffers (ZeroOptimizer, one process)%s\n",
              warmup, rounds, steps, recompute ? "; layers recomputed in backward" : "");

  std::vector<Row> rows;
  std::vector<Reference> refs;
  for (DType dtype : dtypes) {
    Reference ref;
    ref.dtype = dtype_name(dtype);
    ref.gemm_tflops = train::measure_gemm_flops(dtype, device) / 1e12;
    if (peak_opt->count() > 0) {
      ref.peak_tflops = peak_arg, ref.peak_source = "--peak-tflops";
    } else if (device.is_cuda() && dtype == DType::bf16) {
      ref.peak_tflops = 989.0, ref.peak_source = "H100 SXM dense bf16";
    } else {
      ref.peak_tflops = ref.gemm_tflops, ref.peak_source = "measured GEMM";
    }
    refs.push_back(ref);
    std::printf("\n%s: reference GEMM %.4g TFLOP/s; MFU against %.4g TFLOP/s (%s)\n", ref.dtype.c_str(),
                ref.gemm_tflops, ref.peak_tflops, ref.peak_source.c_str());
    print_header();
    double dense_tps = NAN;
    for (const Variant& v : variants) {
      const nn::LoryConfig config = model_config(s, v);
      Row r;
      r.variant = v;
      r.dtype = ref.dtype;
      const nn::ParameterCount count = nn::count_parameters(config);
      r.params_total = count.total();
      r.params_active = count.active;
      r.flops_per_token = model_flops_per_token(config, s.seq);
      train::MemoryPlanInput plan_in;
      plan_in.micro_batch = s.batch;
      plan_in.seq_len = s.seq;
      plan_in.compute = dtype;
      plan_in.recompute_blocks = recompute;
      plan_in.accumulation = s.accumulation;
      r.plan_bytes = train::plan_memory(config, plan_in).total();
      {
        TrainStep step(config, s, dtype, device, recompute, /*seed=*/1);
        // The peaks of the steps: from the state the model holds now.
        train::reset_peak_tensor_bytes(device);
        r.rss_per_row = train::reset_peak_rss();
        r.first_loss = step.run();
        for (int i = 1; i < warmup; ++i) step.run();
        const Timing timing = time_steps(step, steps, rounds, used_threads);
        r.loss = timing.last_loss;
        r.cpu_share = timing.cpu_share;
        r.step_ms = 1e3 * timing.best_round_s / steps;
        r.tokens_per_s = static_cast<double>(s.tokens_per_step()) * steps / timing.best_round_s;
        r.peak_tensor_bytes = train::peak_tensor_bytes(device);
        r.peak_rss_bytes = train::peak_rss_bytes();
        // --profile: more steps, apart from the timed ones (each profiled op
        // reads the clock, and on a GPU synchronises), with the per-op table
        // of where they spent their time.
        if (profile_steps > 0) {
          profiler::enable(device);
          for (int i = 0; i < profile_steps; ++i) step.run();
          profiler::disable();
          profiler::Summary summary = profiler::summary(profile_steps);
          profiler::reset();
          summary.title = "lory_bench_train: " + v.name() + " " + r.dtype + ", " + std::to_string(profile_steps) +
                          " profiled step(s)";
          std::printf("\n");
          profiler::print_table(stdout, summary);
          std::printf("\n");
          print_header();
          r.profile = profiler::to_json(summary);
        }
      }
      r.mfu = r.flops_per_token * r.tokens_per_s / (ref.peak_tflops * 1e12);
      if (v.experts == 0) dense_tps = r.tokens_per_s;
      r.ratio = r.tokens_per_s / dense_tps;
      r.goal = goal_for(v);
      print_row(r);
      rows.push_back(r);
    }
  }
  std::printf("\nMFU: model FLOPs (6 x active matmul parameters + causal attention per token; Lory's expert merge "
              "not counted) x tokens/s / peak.\npeak GiB: tensor memory at the steps' peak (plan: "
              "train/memory_plan.h's prediction); CPU: CPU time of the timed round / (wall x threads), well under "
              "100%% when other work shared the cores;\n/dense: tokens/s over the dense row's.\n");
  if (!json_path.empty()) {
    io::write_file_atomically(json_path, json_report(rows, refs, s, device.str(), used_threads, steps, warmup, rounds, quick));
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return bench_main(argc, argv);
  } catch (const std::exception& e) {  // a model config, the engine or the file writer, named
    std::fprintf(stderr, "lory_bench_train: %s\n", e.what());
    return 1;
  }
}
