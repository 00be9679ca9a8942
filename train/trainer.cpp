// trainer.cpp — the training loop (see trainer.h).
#include "train/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/graph.h"
#include "io/atomic_file.h"
#include "nn/checkpoint.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"
#include "train/memory_use.h"
#include "train/nccl_communicator.h"
#include "train/upcycle_moments.h"

namespace lory::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<int> Trainer::stop_signal{0};

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string duration_text(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  return buf;
}

bool all_finite(const Tensor& t) {
  for (float x : t.detach().to(DType::f32).contiguous().to_vector<float>())
    if (!std::isfinite(x)) return false;
  return true;
}

DType compute_dtype(const TrainConfig& c) { return c.train.precision == "bf16" ? DType::bf16 : DType::f32; }

AdamWOptions adamw_options(const TrainConfig& c) {
  return {c.optim.beta1, c.optim.beta2, c.optim.eps, c.optim.weight_decay, c.optim.decay_embeddings,
          c.optim.router_lr_scale};
}

// log.metrics, or <checkpoint.dir>/metrics.jsonl.
std::string metrics_path_of(const TrainConfig& c) {
  return c.log.metrics.empty() ? c.checkpoint.dir + "/metrics.jsonl" : c.log.metrics;
}

// The FLOP/s of one rank that MFU is reported against: log.peak_tflops, or a GEMM measured now.
double mfu_reference_flops(const TrainConfig& c, Device device) {
  return c.log.peak_tflops > 0 ? c.log.peak_tflops * 1e12 : measure_gemm_flops(compute_dtype(c), device);
}

// The instances file's instance length (L + 1 tokens) and vocabulary.
InstanceShape probe_instances(const std::string& path) {
  const corpus::InstanceFile file(path);
  return {file.instance_tokens(), file.vocab_size()};
}

// Paper §4.1: linear warm-up over schedule.warmup of the steps, then the
// decay to optim.min_lr_ratio of the peak.
LrSchedule lr_schedule_of(const TrainConfig& c, const RunPlan& plan) {
  LrSchedule s;
  s.peak = c.optim.lr;
  s.floor = c.optim.lr * c.optim.min_lr_ratio;
  s.total_steps = plan.total_steps;
  s.warmup_steps = static_cast<int64_t>(std::llround(c.schedule.warmup * static_cast<double>(plan.total_steps)));
  s.decay = parse_decay(c.schedule.decay, "schedule.decay");
  return s;
}

// A checkpoint resumes only into the model it was saved from.
void check_same_model(const nn::LoryConfig& saved, const nn::LoryConfig& phase, const std::string& path) {
  // Every key that changes what the weights compute: a resume under another
  // value (an init_from directory whose config.json changed, say) would
  // train a different model from the same tensors.
  std::string differ;
  auto compare = [&](const char* key, auto a, auto b) {
    if (a != b) differ += std::string(differ.empty() ? "" : ", ") + key + " " + std::to_string(a) + " vs " +
                          std::to_string(b);
  };
  compare("hidden_size", saved.hidden_size, phase.hidden_size);
  compare("intermediate_size", saved.intermediate_size, phase.intermediate_size);
  compare("num_hidden_layers", saved.num_hidden_layers, phase.num_hidden_layers);
  compare("num_attention_heads", saved.num_attention_heads, phase.num_attention_heads);
  compare("num_key_value_heads", saved.num_key_value_heads, phase.num_key_value_heads);
  compare("vocab_size", saved.vocab_size, phase.vocab_size);
  compare("num_experts", saved.num_experts, phase.num_experts);
  compare("tie_word_embeddings", static_cast<int>(saved.tie_word_embeddings),
          static_cast<int>(phase.tie_word_embeddings));
  compare("rope_theta", saved.rope_theta, phase.rope_theta);
  compare("rms_norm_eps", saved.rms_norm_eps, phase.rms_norm_eps);
  // The MoE's keys (a dense phase's config.json is plain LLaMA and has none).
  if (saved.is_lory() && phase.is_lory()) {
    auto compare_name = [&](const char* key, const char* a, const char* b) {
      if (std::string(a) != b) differ += std::string(differ.empty() ? "" : ", ") + key + " " + a + " vs " + b;
    };
    compare("segment_length", saved.segment_length, phase.segment_length);
    compare_name("routing", nn::routing_name(saved.routing), nn::routing_name(phase.routing));
    compare_name("first_segment", nn::first_segment_name(saved.first_segment),
                 nn::first_segment_name(phase.first_segment));
    compare_name("moe_type", nn::moe_type_name(saved.moe_type), nn::moe_type_name(phase.moe_type));
    compare("capacity_factor", saved.capacity_factor, phase.capacity_factor);  // defaults on a Lory model
    compare_name("expert_choice_gates", nn::expert_choice_gates_name(saved.expert_choice_gates),
                 nn::expert_choice_gates_name(phase.expert_choice_gates));
  }
  LORY_CHECK(differ.empty(), "--resume: ", path, "/config.json describes another model than the config (checkpoint vs ",
             "config: ", differ, ")");
}

// The lines of the metrics file at `path` whose step is at most `step`
// (events and evaluations included; unreadable lines dropped).
std::vector<std::string> metrics_lines_up_to(const std::string& path, int64_t step) {
  std::vector<std::string> kept;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept.push_back(line);
  }
  return kept;
}

}  // namespace

// Best-of-5 time of an n x n x n GEMM in `dtype`: the FLOP/s an MFU estimate
// on this CPU is measured against (the machine's peak in practice, not on
// paper). Other work on the machine while it runs lowers it (and raises the
// MFU printed); set log.peak_tflops to pin it.
double measure_gemm_flops(DType dtype, Device device) {
  NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 8192 : 1024;  // big enough to reach a GPU's peak
  const TensorOptions options{dtype, device, false};
  const Tensor a = random_with_key({n, n}, RandomDist::normal, 7, 0, 0.0, 1.0, options);
  const Tensor b = random_with_key({n, n}, RandomDist::normal, 7, 1 << 20, 0.0, 1.0, options);
  // Reading one element waits for the GEMM (a GPU runs it asynchronously).
  auto gemm = [&] { return matmul(a, b).select(0, 0).select(0, 0).item(); };
  gemm();  // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t = Clock::now();
    gemm();
    best = std::min(best, seconds_since(t));
  }
  return 2.0 * static_cast<double>(n * n * n) / best;
}

RunPlan plan_run(const TrainConfig& c, int64_t instance_tokens, int64_t world) {
  RunPlan p;
  p.world = world;
  p.seq_len = instance_tokens - 1;
  LORY_CHECK(p.seq_len >= 1, "data.train = ", c.data.train, ": instances of ", instance_tokens,
             " tokens are too short to train on");
  const int64_t per_micro = c.train.micro_batch * world * p.seq_len;
  LORY_CHECK(c.train.global_batch_tokens % per_micro == 0, "train.global_batch_tokens = ", c.train.global_batch_tokens,
             " is not a multiple of train.micro_batch (", c.train.micro_batch, ") x ranks (", world,
             ") x sequence length (", p.seq_len, ", from ", c.data.train, ") = ", per_micro,
             "; the nearest multiples are ", std::max<int64_t>(1, c.train.global_batch_tokens / per_micro) * per_micro,
             " and ", (c.train.global_batch_tokens / per_micro + 1) * per_micro);
  p.accum = c.train.global_batch_tokens / per_micro;
  p.tokens_per_step = c.train.global_batch_tokens;
  p.total_steps = c.schedule.steps > 0 ? c.schedule.steps
                                       : (c.schedule.tokens + p.tokens_per_step - 1) / p.tokens_per_step;
  LORY_CHECK(p.total_steps >= 1, "schedule: the run has no steps");
  // A Lory run keeps at least its last step as a Lory step, however the
  // fraction rounds (a run of 2 steps with dense_warmup 0.9 still upcycles).
  if (c.model.resolved.num_experts > 0)
    p.dense_steps = std::min(
        p.total_steps - 1,
        static_cast<int64_t>(std::llround(c.schedule.dense_warmup * static_cast<double>(p.total_steps))));
  return p;
}

// Preparing a run, in order: each step is a function below that says what
// it does and why.
Trainer::Trainer(TrainConfig config, bool resume, bool quiet, Communicator* comm)
    : config_(std::move(config)), quiet_(quiet) {
  if (!comm) own_comm_ = single_process_communicator(), comm = own_comm_.get();
  comm_ = comm;
  device_ = choose_device();
  // GPU buffers travel over NCCL, bootstrapped over the job's MPI ranks.
  if (device_.is_cuda() && comm_->world() > 1) nccl_ = nccl_communicator(*comm_, device_), comm_ = nccl_.get();
  if (config_.train.threads > 0) omp_set_num_threads(static_cast<int>(config_.train.threads));
  const InstanceShape data = probe_instances(config_.data.train);
  fit_model_to_data(data);
  plan_ = plan_run(config_, data.tokens, comm_->world());
  schedule_ = lr_schedule_of(config_, plan_);
  config_toml_ = train_config_to_toml(config_);            // saved with every checkpoint: the config as fitted
  manual_seed(static_cast<uint64_t>(config_.train.seed));  // the initialisation (a resumed run restores its own)
  if (resume)
    resume_from_checkpoint();
  else
    start_new_run();
  if (comm_->is_root()) fs::create_directories(config_.checkpoint.dir);
  open_data(data.vocab);
  // The job's peak: one rank's, measured or given, times the ranks.
  peak_flops_ = mfu_reference_flops(config_, device_) * static_cast<double>(comm_->world());
  if (prints()) print_run_summary();
}

// What each rank holds against memory_plan.h's plan for the model now
// trained, and the peaks so far; rank 0 prints it and writes it to
// metrics.jsonl ("type": "memory"). Called after the first step (the
// activations' peak is in) and at the end.
void Trainer::report_memory(const char* when) {
  MemoryPlanInput in;
  in.world = comm_->world();
  in.zero = static_cast<int>(config_.train.zero);
  in.micro_batch = config_.train.micro_batch;
  in.seq_len = plan_.seq_len;
  in.compute = compute_dtype(config_);
  in.recompute_blocks = config_.train.recompute == "blocks";
  in.merge_kernel = nn::parse_merge_kernel(config_.train.merge_kernel, "train.merge_kernel");
  in.bucket_bytes = static_cast<int64_t>(config_.train.bucket_mb * 1024 * 1024);
  in.accumulation = plan_.accum;
  const MemoryPlan plan = plan_memory(model_->config, in);
  const MemoryPlan held = held_memory(*zero_);
  // Every rank's numbers, in rank order (each is an all-gather of one value).
  auto gather = [&](int64_t x) { return comm_->all_gather_host(static_cast<double>(x)); };
  const std::vector<double> master = gather(held.master), moments = gather(held.moments),
                            peak = gather(peak_tensor_bytes(device_)), rss = gather(peak_rss_bytes());
  if (!comm_->is_root()) return;
  const double GiB = 1024.0 * 1024.0 * 1024.0;
  nlohmann::ordered_json j{{"type", "memory"}, {"step", state_.step}, {"when", when}};
  j["plan"] = {{"weights", plan.weights}, {"gradients", plan.gradients}, {"master", plan.master},
               {"moments", plan.moments}, {"activations", plan.activations.peak}};
  j["held"] = {{"weights", held.weights}, {"gradients", held.gradients}, {"master", master}, {"moments", moments}};
  j["peak_tensor_bytes"] = peak;
  j["peak_rss_bytes"] = rss;
  write_metrics(j.dump());
  if (!prints()) return;
  double worst = 0;  // the sharded parts against the plan
  for (size_t r = 0; r < master.size(); ++r) {
    const double want = static_cast<double>(plan.master + plan.moments), got = master[r] + moments[r];
    worst = std::max(worst, want > 0 ? std::abs(got - want) / want : 0.0);
  }
  double max_peak = 0, max_rss = 0;
  for (size_t r = 0; r < peak.size(); ++r) max_peak = std::max(max_peak, peak[r]), max_rss = std::max(max_rss, rss[r]);
  std::printf("memory per rank (%s): weights %.3f GiB, gradients %.3f (plan %.3f), master + moments %.3f (plan "
              "%.3f, off by %.1f%% at most); peak tensors %.3f GiB (plan %.3f with activations), RSS %.3f GiB\n",
              when, static_cast<double>(held.weights) / GiB, static_cast<double>(held.gradients) / GiB,
              static_cast<double>(plan.gradients) / GiB, (master[0] + moments[0]) / GiB,
              static_cast<double>(plan.master + plan.moments) / GiB, 100.0 * worst, max_peak / GiB,
              static_cast<double>(plan.total()) / GiB, max_rss / GiB);
  std::fflush(stdout);
}

// train.device: the CPU, or a GPU: with several ranks on a machine, the
// one of this rank's index among them (MPI's shared-memory split).
Device Trainer::choose_device() const {
  if (config_.train.device == "cpu") return cpu_device();
#ifndef LORY_HAVE_CUDA
  fail(config_.origin_of("train.device"), ": train.device = \"cuda\", but this build has no CUDA support (CMake found ",
       "no CUDA toolkit: see the 'lory: CUDA' line of its summary); set train.device = \"cpu\" or rebuild with CUDA");
#else
  const int count = cuda_device_count();
  LORY_CHECK(count > 0, config_.origin_of("train.device"), ": train.device = \"cuda\", but no GPU is visible to rank ",
             comm_->rank());
  // A launcher that shows each rank only its own GPU (Slurm's
  // --gpus-per-task=1, a CUDA_VISIBLE_DEVICES per rank) leaves one visible.
  if (count == 1) return cuda_device(0);
  LORY_CHECK(comm_->local_rank() < count, "rank ", comm_->rank(), " is rank ", comm_->local_rank(),
             " on its machine, which has only ", count, " GPUs: start at most one rank per GPU");
  return cuda_device(comm_->local_rank());
#endif
}

// The training instances decide the sequence length and, unless
// model.vocab_size is given, the vocabulary; the model must cover both.
void Trainer::fit_model_to_data(const InstanceShape& data) {
  nn::LoryConfig& m = config_.model.resolved;
  if (config_.model.vocab_from_data) m.vocab_size = data.vocab;
  LORY_CHECK(m.vocab_size >= data.vocab, "model.vocab_size = ", m.vocab_size, " is smaller than the vocabulary of ",
             config_.data.train, " (", data.vocab, ")");
  LORY_CHECK(data.tokens - 1 <= m.max_position_embeddings, "model.max_position_embeddings = ",
             m.max_position_embeddings, " is shorter than the training sequences of ", config_.data.train, " (",
             data.tokens - 1, " tokens)");
}

// --resume: continue the newest checkpoint of checkpoint.dir exactly: the
// model of its phase (dense warm-up or Lory) with its master weights, the
// Adam state, the step counters, the data position and the random
// generator. Metrics lines of steps after it are dropped: those steps are
// about to be run again.
void Trainer::resume_from_checkpoint() {
  const std::string& dir = config_.checkpoint.dir;
  const std::string path = latest_checkpoint(dir);
  LORY_CHECK(!path.empty(), "--resume: no checkpoint in ", dir, "/checkpoints");
  const CheckpointInfo info = read_checkpoint_info(path);
  // The model is the config's (in the checkpoint's phase), not its
  // config.json: a dense config.json is plain LLaMA and does not carry the
  // Lory keys (segment_length, routing, ...) the upcycling will need.
  nn::LoryConfig phase = config_.model.resolved;
  if (!info.state.lory_phase) phase.num_experts = 0;
  check_same_model(info.model_config, phase, path);
  build_model(phase);
  load_training_checkpoint(info, *zero_);
  state_ = info.state;
  set_generator_state({state_.rng_seed, state_.rng_offset});
  const std::string metrics = metrics_path_of(config_);
  if (comm_->is_root()) open_metrics(metrics, metrics_lines_up_to(metrics, state_.step));
  if (prints())
    std::printf("resumed from %s (step %lld%s)\n", path.c_str(), static_cast<long long>(state_.step),
                info.world == comm_->world()
                    ? ""
                    : (", written by " + std::to_string(info.world) + " ranks, resharded for " +
                       std::to_string(comm_->world()))
                          .c_str());
}

// A new run: checkpoint.dir must not hold another run's checkpoints (they
// would be mixed with this one's); the first model is dense when the run
// starts with a dense warm-up; metrics.jsonl starts empty.
void Trainer::start_new_run() {
  const std::string& dir = config_.checkpoint.dir;
  const std::string existing = latest_checkpoint(dir);
  LORY_CHECK(existing.empty(), "checkpoint.dir = ", dir, " already holds checkpoints (", existing,
             "); pass --resume to continue that run, or choose another checkpoint.dir");
  nn::LoryConfig first = config_.model.resolved;
  if (plan_.dense_steps > 0) first.num_experts = 0;  // the dense warm-up
  install_model(initial_model(first));
  state_.lory_phase = first.is_lory();
  if (!comm_->is_root()) return;
  const std::string metrics = metrics_path_of(config_);
  const fs::path parent = fs::path(metrics).parent_path();
  fs::create_directories(parent.empty() ? fs::path(".") : parent);
  open_metrics(metrics, {});
}

// metrics.jsonl, rewritten with `kept` (the lines a resumed run keeps), then
// appended to a record at a time (write_metrics flushes each). The rewrite
// is atomic (a temporary file, fsynced, renamed over the old one): a run
// killed at any moment after a resume leaves either the old file or the kept
// history whole, never a file truncated in place with its history still in a
// stdio buffer (which lost records to SIGKILL before).
void Trainer::open_metrics(const std::string& path, const std::vector<std::string>& kept) {
  std::string contents;
  for (const std::string& line : kept) contents += line + "\n";
  io::write_file_atomically(path, contents);
  metrics_ = std::fopen(path.c_str(), "a");
  LORY_CHECK(metrics_, path, ": cannot open for appending");
}

// The data loader (seeded order, from the position the run has reached) and,
// when data.valid is given, the held-out set every evaluation uses.
void Trainer::open_data(int64_t data_vocab) {
  const TrainConfig& c = config_;
  loader_ = std::make_unique<corpus::DataLoader>(c.data.train, c.train.micro_batch, comm_->rank(), comm_->world(),
                                                 static_cast<uint64_t>(c.train.seed), state_.loader, data_vocab);
  if (!c.data.valid.empty() && comm_->is_root())  // rank 0 evaluates
    eval_set_ = std::make_unique<EvalSet>(build_eval_set(c.data.valid, plan_.seq_len, c.eval.tokens_per_domain,
                                                         static_cast<int32_t>(c.model.resolved.eos_token_id),
                                                         data_vocab));
}

// Three lines before the first step: the model, the plan, the LR schedule.
void Trainer::print_run_summary() const {
  const TrainConfig& c = config_;
  const nn::LoryConfig& m = c.model.resolved;
  const nn::ParameterCount n = nn::count_parameters(m);
  std::printf("model: %s, %lld layers, d %lld, f %lld, vocab %lld: %.1fM parameters (%.1fM active)\n",
              m.is_lory() ? (std::to_string(m.num_experts) + " experts per Lory layer").c_str() : "dense",
              static_cast<long long>(m.num_hidden_layers), static_cast<long long>(m.hidden_size),
              static_cast<long long>(m.intermediate_size), static_cast<long long>(m.vocab_size), n.total() / 1e6,
              n.active / 1e6);
  std::printf("plan: %lld steps of %lld tokens (micro-batch %lld x %lld accumulation x %lld ranks x %lld tokens)%s, "
              "%s on %s\n",
              static_cast<long long>(plan_.total_steps), static_cast<long long>(plan_.tokens_per_step),
              static_cast<long long>(c.train.micro_batch), static_cast<long long>(plan_.accum),
              static_cast<long long>(plan_.world), static_cast<long long>(plan_.seq_len),
              plan_.dense_steps > 0 ? (", dense for the first " + std::to_string(plan_.dense_steps)).c_str() : "",
              c.train.precision.c_str(), device_.str().c_str());
  if (plan_.world > 1)
    std::printf("ranks: %lld over %s, ZeRO stage %lld, gradient buckets of %.0f MiB (%lld per step)%s\n",
                static_cast<long long>(plan_.world), comm_->name().c_str(), static_cast<long long>(c.train.zero),
                c.train.bucket_mb, static_cast<long long>(zero_->buckets()),
                c.train.overlap_comm ? ", reduced during backward" : ", reduced after backward");
  std::printf("lr: peak %.3g, warm-up %lld steps, %s decay to %.3g; MFU against %.3g TFLOP/s%s\n", schedule_.peak,
              static_cast<long long>(schedule_.warmup_steps), decay_name(schedule_.decay), schedule_.floor,
              peak_flops_ / 1e12,
              c.log.peak_tflops > 0 ? (plan_.world > 1 ? " (log.peak_tflops x ranks)" : "")
                                    : (plan_.world > 1 ? " (a measured GEMM x ranks)" : " (a measured GEMM)"));
  std::fflush(stdout);
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
}

// A fresh model of `model_config` (on the run's device), every parameter a
// view of new flat buffers, a fresh AdamW state over this rank's part of
// them, and for a Lory model its routing statistics.
std::unique_ptr<ZeroOptimizer> Trainer::make_optimizer(nn::LoryLM& model) {
  const ZeroOptions zero{device_, static_cast<int>(config_.train.zero),
                         static_cast<int64_t>(config_.train.bucket_mb * 1024 * 1024), config_.train.overlap_comm,
                         plan_.accum};
  return std::make_unique<ZeroOptimizer>(model, compute_dtype(config_), *comm_, zero, adamw_options(config_));
}

void Trainer::build_model(const nn::LoryConfig& model_config) {
  install_model(std::make_unique<nn::LoryLM>(model_config));  // initialised on the CPU: the same values on any device
}

// The first model of a new run: a fresh initialisation, or, with
// model.init_from, a model directory's weights (ours or a Hugging Face
// LLaMA's; any dtype, one file or shards). A dense one starts the dense
// warm-up, or, when the run has none, is upcycled at once (paper §4.1, from
// a pretrained dense model as the paper's 7B experiments do, App. E); a Lory
// one is the Lory model (resolve() then allows no warm-up).
std::unique_ptr<nn::LoryLM> Trainer::initial_model(const nn::LoryConfig& first) {
  const std::string& dir = config_.model.init_from;
  if (dir.empty()) return std::make_unique<nn::LoryLM>(first);
  const bool saved_dense = nn::load_config(dir + "/config.json").num_experts == 0;
  nn::LoryConfig saved = first;
  if (saved_dense) saved.num_experts = 0;
  auto model = std::make_unique<nn::LoryLM>(saved);
  nn::load_weights(*model, io::SafetensorsDirReader(dir));
  if (prints())
    std::printf("initialised from %s (%s%s)\n", dir.c_str(), saved_dense ? "dense" : "Lory",
                saved_dense && first.is_lory()  ? ", upcycled now"
                : saved_dense && config_.model.resolved.is_lory() ? ", upcycled after the dense warm-up"
                                                                  : "");
  if (saved_dense && first.is_lory()) return nn::upcycle(*model, first.num_experts);
  return model;
}

void Trainer::install_model(std::unique_ptr<nn::LoryLM> model) {
  model_ = std::move(model);
  model_->set_merge_kernel(nn::parse_merge_kernel(config_.train.merge_kernel, "train.merge_kernel"));
  model_->recompute_activations = config_.train.recompute == "blocks";
  model_->train();
  zero_ = make_optimizer(*model_);  // moves the model to the run's device, parameter by parameter
  routing_.reset();
  const nn::LoryConfig& shape = model_->config;
  if (shape.is_lory())
    routing_ = std::make_unique<RoutingStats>(shape.num_hidden_layers, shape.num_experts,
                                              config_.log.utilisation_window);
}

// Paper §4.1: after the dense warm-up, every FFN becomes E copies of itself
// and a router is added. With identical experts the merged FFN equals the
// dense one for any routing weights, so the loss does not jump.
void Trainer::upcycle() {
  NoGradGuard no_grad;
  const int64_t E = config_.model.resolved.num_experts;
  // The experts copy the f32 master weights, not their bf16 rounding
  // (gathered from every rank's shard under ZeRO: the dense model is small).
  // The Lory model is made on the host: only the flat buffers built from it
  // go to the device, so it never holds a whole f32 copy of the experts.
  const FlatParameters& dense = zero_->flat();
  const Tensor master = zero_->gather_master().to(cpu_device());
  for (size_t i = 0; i < dense.slots().size(); ++i) *dense.slots()[i].slot = dense.view(master, i).detach();
  std::unique_ptr<nn::LoryLM> lory = nn::upcycle(*model_, E);
  lory->set_merge_kernel(nn::parse_merge_kernel(config_.train.merge_kernel, "train.merge_kernel"));
  lory->recompute_activations = model_->recompute_activations;
  lory->train();
  // New flat buffers, cut into new shards; every moment goes to its new
  // owner (train/upcycle_moments.h: what the Adam state becomes, and why).
  auto optimizer = make_optimizer(*lory);
  const auto [exp_avg, exp_avg_sq] = zero_->gather_moments();
  transfer_moments_at_upcycle(dense, exp_avg, exp_avg_sq, zero_->adam().steps, optimizer->flat(), optimizer->adam(), E,
                              parse_upcycle_moments(config_.schedule.upcycle_moments, "schedule.upcycle_moments"));
  model_ = std::move(lory);
  zero_ = std::move(optimizer);
  routing_ = std::make_unique<RoutingStats>(config_.model.resolved.num_hidden_layers, E, config_.log.utilisation_window);
  state_.lory_phase = true;
  nlohmann::ordered_json j{{"type", "event"}, {"step", state_.step}, {"event", "upcycle"}, {"num_experts", E},
                           {"moments", config_.schedule.upcycle_moments}};
  write_metrics(j.dump());
  if (prints()) {
    std::printf("step %lld: dense warm-up done; every FFN is now %lld experts with a router (Adam moments: %s)\n",
                static_cast<long long>(state_.step), static_cast<long long>(E),
                config_.schedule.upcycle_moments.c_str());
    std::fflush(stdout);
  }
}

double Trainer::train_step(RoutingStats* stats) {
  zero_->begin_step();
  const int64_t B = config_.train.micro_batch, T1 = plan_.seq_len + 1;
  batch_ids_.resize(static_cast<size_t>(B * T1));
  step_tokens_.clear();
  // The loss stays on the device until the step ends: reading it after
  // every micro-batch would make the host wait for the GPU each time.
  Tensor loss_sum;
  for (int64_t a = 0; a < plan_.accum; ++a) {
    Tensor tokens;
    {
      profiler::Region timed("load_batch", profiler::Phase::other);
      const int32_t* batch = loader_->next();
      std::copy(batch, batch + B * T1, batch_ids_.begin());
      step_tokens_.push_back(from_vector(batch_ids_, {B, T1}, {DType::i64}));
      tokens = step_tokens_.back().to(device_);
    }
    const Tensor loss = model_->loss(tokens);
    // The gradient of the mean over the global batch (every micro-batch
    // holds the same number of tokens; the ranks' gradients are summed).
    // A NaN still runs backward: every rank must take part in the same
    // reductions; the step is refused after them.
    zero_->before_backward(a + 1 == plan_.accum);
    mul(loss, 1.0 / static_cast<double>(plan_.accum * plan_.world)).backward();
    zero_->after_backward();
    {
      NoGradGuard no_grad;
      loss_sum = loss_sum.defined() ? add(loss_sum, loss.detach()) : loss.detach();
    }
    if (stats) stats->add(state_.step, model_->routing_weights());
  }
  return loss_sum.item() / static_cast<double>(plan_.accum);
}

// Every rank learns whether any rank's loss was not finite; the lowest such
// rank finds where the NaN/Inf first appears, and all return its message.
std::string Trainer::agree_on_loss(double local_loss) {
  const int64_t none = comm_->world();
  const int64_t bad = comm_->min_over_ranks(std::isfinite(local_loss) ? none : comm_->rank());
  if (bad == none) return "";
  std::string message;
  if (comm_->rank() == bad)
    message = "the loss is " + std::to_string(local_loss) + (comm_->world() > 1 ? " on rank " + std::to_string(bad) : "") +
              "; it first appears in " + diagnose_non_finite_loss();
  comm_->broadcast_host(message, static_cast<int>(bad));
  return message;
}

void Trainer::write_metrics(const std::string& json_line) {
  if (!metrics_) return;
  std::fprintf(metrics_, "%s\n", json_line.c_str());
  std::fflush(metrics_);
}

void Trainer::log_step(const StepOutcome& outcome, double step_seconds) {
  const double loss = outcome.loss, lr = outcome.lr;
  const StepReport& report = outcome.report;
  const int64_t step = state_.step;
  const double tokens_per_s = static_cast<double>(plan_.tokens_per_step) / step_seconds;
  const double train_flops = 3.0 * nn::flops_per_token(model_->config, plan_.seq_len).forward();
  const double mfu = train_flops * tokens_per_s / peak_flops_;
  nlohmann::ordered_json j{{"type", "train"},
                           {"step", step},
                           {"tokens", state_.tokens},
                           {"loss", loss},
                           {"ppl", std::exp(loss)},
                           {"lr", lr},
                           {"grad_norm", report.grad_norm},
                           {"clip", report.clip_scale},
                           {"tokens_per_s", tokens_per_s},
                           {"mfu", mfu},
                           {"step_s", step_seconds},
                           {"phase", state_.lory_phase ? "lory" : "dense"}};
  if (plan_.world > 1) {
    // Rank 0's view: compute = the step less the time it waited on communication.
    j["ranks"] = plan_.world;
    j["compute_s"] = step_seconds - outcome.comm.exposed_s;
    j["comm_s"] = outcome.comm.exposed_s;
    if (outcome.comm.timed) {
      j["reduce_s"] = outcome.comm.reduce_s;
      j["reduce_hidden"] = outcome.comm.hidden_fraction();
    }
  }
  std::vector<int64_t> used;
  std::vector<double> entropy;
  if (routing_ && state_.lory_phase) {
    used = routing_->experts_used(step - 1);
    entropy = routing_->take_entropy();
    j["experts_used"] = used;
    j["routing_entropy"] = entropy;
  }
  write_metrics(j.dump());

  window_seconds_ += step_seconds;
  window_loss_ += loss;
  ++window_steps_;
  window_comm_.exposed_s += outcome.comm.exposed_s;
  window_comm_.reduce_s += outcome.comm.reduce_s;
  window_comm_.reduce_hidden_s += outcome.comm.reduce_hidden_s;
  if (!prints() || (step % config_.log.every != 0 && step != plan_.total_steps && step != 1)) return;
  const double avg_step = window_seconds_ / static_cast<double>(window_steps_);
  const double eta = avg_step * static_cast<double>(plan_.total_steps - step);
  const double avg_loss = window_loss_ / static_cast<double>(window_steps_);
  const double avg_tps = static_cast<double>(plan_.tokens_per_step) / avg_step;
  std::printf("step %*lld/%lld | loss %.4f | ppl %8.2f | lr %.2e | gnorm %6.3f | %7.0f tok/s | MFU %4.1f%% | ETA %s",
              static_cast<int>(std::to_string(plan_.total_steps).size()), static_cast<long long>(step),
              static_cast<long long>(plan_.total_steps), avg_loss, std::exp(avg_loss), lr, report.grad_norm, avg_tps,
              100.0 * train_flops * avg_tps / peak_flops_, duration_text(eta).c_str());
  if (!used.empty()) {
    double u = 0, h = 0;
    for (size_t i = 0; i < used.size(); ++i) u += static_cast<double>(used[i]), h += entropy[i];
    std::printf(" | experts %.1f/%lld | H %.2f", u / static_cast<double>(used.size()),
                static_cast<long long>(routing_->num_experts()), h / static_cast<double>(entropy.size()));
  } else if (!state_.lory_phase && config_.model.resolved.is_lory()) {
    std::printf(" | dense warm-up");
  }
  if (plan_.world > 1) {
    std::printf(" | comm %.0f%% of step", 100.0 * window_comm_.exposed_s / window_seconds_);
    if (outcome.comm.timed) std::printf(", %.0f%% of reduction hidden", 100.0 * window_comm_.hidden_fraction());
  }
  std::printf("\n");
  std::fflush(stdout);
  window_seconds_ = window_loss_ = 0;
  window_steps_ = 0;
  window_comm_ = CommStats{};
}

void Trainer::run_eval() {
  if (!eval_set_) return;  // no data.valid, or not rank 0
  const nn::ForwardRouting routing = nn::parse_forward_routing(config_.eval.routing, "eval.routing");
  const EvalResult r = evaluate(*model_, *eval_set_, routing, config_.eval.batch);
  nlohmann::ordered_json j{{"type", "eval"},   {"step", state_.step}, {"tokens", state_.tokens},
                           {"loss", r.loss},   {"ppl", r.ppl},        {"routing", r.routing}};
  nlohmann::ordered_json domains = nlohmann::ordered_json::object();
  for (const auto& [name, d] : r.domains)
    domains[name] = {{"loss", d.loss},
                     {"ppl", d.ppl},
                     {"ppl_ci", {d.ppl_interval.lo, d.ppl_interval.hi}},
                     {"tokens", d.tokens}};
  j["domains"] = domains;
  write_metrics(j.dump());
  const std::string dir = config_.checkpoint.dir + "/eval";
  fs::create_directories(dir);
  const std::string text = eval_result_json(
      r, model_->config,
      {{"run", config_.checkpoint.dir},
       {"step", std::to_string(state_.step)},
       {"routing_mode", config_.eval.routing},
       {"seed", std::to_string(config_.train.seed)}});
  io::write_file_atomically(dir + "/" + checkpoint_name(state_.step) + ".json", text);
  if (state_.step == plan_.total_steps) io::write_file_atomically(config_.checkpoint.dir + "/eval.json", text);
  if (prints()) {
    std::printf("eval at step %lld (%s routing): loss %.4f, ppl %.2f\n%s", static_cast<long long>(state_.step),
                r.routing.c_str(), r.loss, r.ppl, eval_result_table(r).c_str());
    std::fflush(stdout);
  }
}

void Trainer::save_checkpoint() {
  const GeneratorState g = generator_state();
  state_.rng_seed = g.seed;
  state_.rng_offset = g.offset;
  state_.loader = loader_->state();
  const std::string path = save_training_checkpoint(config_.checkpoint.dir, model_->config, *zero_, state_,
                                                    config_toml_, config_.checkpoint.keep_last);
  if (prints()) {
    std::printf("checkpoint: %s\n", path.c_str());
    std::fflush(stdout);
  }
}

// Where did the NaN/Inf come from? Find this step's first micro-batch whose
// loss is not finite, re-run its forward one piece at a time and name the
// first piece whose output is not finite (or the first parameter that
// already holds one).
std::string Trainer::diagnose_non_finite_loss() {
  NoGradGuard no_grad;
  for (auto& [name, p] : model_->named_parameters())
    if (!all_finite(*p)) return "parameter " + name + " holds NaN/Inf values";
  Tensor tokens;
  for (const Tensor& t : step_tokens_)
    if (!std::isfinite(model_->loss(t.to(device_)).item())) {
      tokens = t.to(device_);
      break;
    }
  if (!tokens.defined()) return "no micro-batch when run again (a non-deterministic NaN)";
  const int64_t L = tokens.size(1) - 1;
  const nn::ForwardOptions options{model_->config.routing};
  Tensor x = model_->model.embed_tokens.forward(tokens.narrow(1, 0, L));
  if (!all_finite(x)) return "the output of model.embed_tokens";
  for (size_t i = 0; i < model_->model.layers.size(); ++i) {
    nn::DecoderLayer& layer = *model_->model.layers[i];
    const std::string prefix = "model.layers." + std::to_string(i);
    const Tensor h = x + layer.self_attn.forward(layer.input_layernorm.forward(x));
    if (!all_finite(h)) return "the output of " + prefix + ".self_attn";
    x = h + layer.mlp_forward(layer.post_attention_layernorm.forward(h), options);
    if (!all_finite(x)) return "the output of " + prefix + ".mlp";
  }
  const Tensor logits = model_->logits_from_hidden(model_->model.norm.forward(x));
  if (!all_finite(logits)) return "the logits (model.norm / lm_head)";
  return "the loss itself (the logits are finite)";
}

// Steps until the schedule ends, a stop is requested or a NaN/Inf appears.
RunResult Trainer::run() {
  RunResult result;
  const int64_t E = config_.model.resolved.num_experts;
  while (state_.step < plan_.total_steps) {
    if (!state_.lory_phase && E > 0 && state_.step >= plan_.dense_steps) upcycle(), steps_in_phase_ = 0;
    // Profiled steps: after one warm-up step on this model (its first step
    // allocates what the rest reuse, and fills the GEMM caches).
    const bool profiled = profiled_steps_ < profile_steps_ && steps_in_phase_ >= 1;
    if (profiled) {
      if (profiled_steps_ == 0) profile_first_ = state_.step + 1;
      profiler::enable(device_);
    }
    const auto t0 = Clock::now();
    const StepOutcome step = optimizer_step();
    if (profiled) profiler::disable(), ++profiled_steps_;
    ++steps_in_phase_;
    if (!step.non_finite.empty()) {
      result.end = RunEnd::non_finite;
      result.message = step.non_finite;
      break;
    }
    const double dt = seconds_since(t0);
    ++state_.step;
    state_.tokens += plan_.tokens_per_step;
    state_.elapsed_s += dt;
    result.losses.push_back(step.loss);
    log_step(step, dt);
    if (profiled && profiled_steps_ == profile_steps_) report_profile();
    if (state_.step == 1 || (state_.lory_phase && !memory_reported_lory_)) {
      report_memory(state_.lory_phase ? "first Lory step" : "first step");
      memory_reported_lory_ = state_.lory_phase;
    }
    periodic_eval_and_checkpoint();
    if (stop_requested()) {
      result.end = RunEnd::stopped;
      break;
    }
  }
  if (profiled_steps_ > 0 && !profile_reported_) report_profile();  // the run ended first
  if (profile_steps_ > 0 && profiled_steps_ == 0 && prints())
    std::printf("profile: no step was profiled (the run ended before a warm-up step on its %s model)\n",
                state_.lory_phase ? "Lory" : "dense");
  finish_run(result);
  result.step = state_.step;
  return result;
}

// The profile of the steps just run: the table on rank 0's stdout, and
// profile.json next to metrics.jsonl. Every rank profiled its own steps;
// rank 0's are shown.
void Trainer::report_profile() {
  profile_reported_ = true;
  profiler::Summary summary = profiler::summary(profiled_steps_);
  profiler::reset();
  summary.title = "lory_train " + config_.checkpoint.dir + ": steps " + std::to_string(profile_first_) + "-" +
                  std::to_string(profile_first_ + profiled_steps_ - 1) + " (" +
                  (state_.lory_phase ? "Lory" : "dense") + " model), " + std::to_string(plan_.tokens_per_step) +
                  " tokens per step";
  if (!comm_->is_root()) return;
  const fs::path path = fs::path(metrics_path_of(config_)).parent_path() / "profile.json";
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
  io::write_file_atomically(path.string(), profiler::to_json(summary));
  if (!prints()) return;
  std::printf("\n");
  profiler::print_table(stdout, summary);
  std::printf("(written to %s)\n\n", path.string().c_str());
  std::fflush(stdout);
}

// One optimizer step over the global batch. No NaN/Inf may reach the weights
// or a checkpoint, so three things are checked in turn: the loss, the
// gradient norm (before the update) and the updated weights (finite
// gradients can still overflow them, with an absurd LR). The first that is
// not finite ends the run; `non_finite` says where it appeared.
Trainer::StepOutcome Trainer::optimizer_step() {
  StepOutcome out;
  const std::string step = "step " + std::to_string(state_.step + 1);
  out.loss = train_step(state_.lory_phase ? routing_.get() : nullptr);
  const double norm = zero_->reduce_and_norm();  // every rank takes part, whatever its loss
  out.comm = zero_->take_stats();
  const std::string bad_loss = agree_on_loss(out.loss);
  if (!bad_loss.empty()) {
    out.non_finite = step + ": " + bad_loss;
    return out;
  }
  if (comm_->world() > 1) {  // this rank's loss is its own; the mean over ranks is the step's
    double total = 0;
    for (double x : comm_->all_gather_host(out.loss)) total += x;
    out.loss = total / static_cast<double>(comm_->world());
  }
  if (!std::isfinite(norm)) {
    out.non_finite = step + ": the gradient norm is " + std::to_string(norm) +
                     "; the first parameter with a NaN/Inf gradient is " + zero_->first_non_finite_grad();
    return out;
  }
  out.lr = schedule_.at(state_.step);
  out.report = zero_->step(out.lr, config_.optim.grad_clip, norm);
  const CommStats gather = zero_->take_stats();
  out.comm.exposed_s += gather.exposed_s;
  const std::string overflowed = zero_->first_non_finite_param();
  if (!overflowed.empty())
    out.non_finite = step + ": the update made parameter " + overflowed + " NaN/Inf (learning rate " +
                     std::to_string(out.lr) + ", gradient norm " + std::to_string(norm) + ")";
  return out;
}

// eval.every and checkpoint.every; the last step's evaluation and checkpoint
// are finish_run's.
void Trainer::periodic_eval_and_checkpoint() {
  const int64_t s = state_.step;
  if (s == plan_.total_steps) return;
  if (config_.eval.every > 0 && s % config_.eval.every == 0) run_eval();
  if (config_.checkpoint.every > 0 && s % config_.checkpoint.every == 0) save_checkpoint();
}

// A stop before the schedule ends (SIGINT/SIGTERM, or the step given to
// stop_after) leaves a checkpoint of the step just done, for --resume.
bool Trainer::stop_requested() {
  const int64_t s = state_.step;
  // Signals reach the ranks at different moments: they stop at the same step.
  const int64_t signal = comm_->max_over_ranks(stop_signal.load());
  if (signal != 0) stop_signal.store(static_cast<int>(signal));
  const bool signalled = signal != 0;
  if (s == plan_.total_steps || (!signalled && (stop_after_ < 0 || s < stop_after_))) return false;
  if (config_.checkpoint.every == 0 || s % config_.checkpoint.every != 0) save_checkpoint();
  return true;
}

// A finished run evaluates and checkpoints its last step. A run stopped by a
// NaN/Inf names its last good checkpoint and records the event in
// metrics.jsonl.
void Trainer::finish_run(RunResult& result) {
  if (result.end == RunEnd::finished) {
    run_eval();
    save_checkpoint();
  } else if (result.end == RunEnd::non_finite) {
    const std::string last = latest_checkpoint(config_.checkpoint.dir);
    result.message += last.empty() ? "; no checkpoint was written" : "; the last good checkpoint is " + last;
    nlohmann::ordered_json j{{"type", "event"}, {"step", state_.step + 1}, {"event", "non_finite"},
                             {"message", result.message}};
    write_metrics(j.dump());
  }
}

}  // namespace lory::train
