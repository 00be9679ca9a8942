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

// Best-of-5 time of an n x n x n GEMM in `dtype`: the FLOP/s an MFU estimate
// on this CPU is measured against (the machine's peak in practice, not on
// paper). Other work on the machine while it runs lowers it (and raises the
// MFU printed); set log.peak_tflops to pin it.
double measure_gemm_flops(DType dtype) {
  NoGradGuard no_grad;
  const int64_t n = 1024;
  const Tensor a = random_with_key({n, n}, RandomDist::normal, 7, 0, 0.0, 1.0, {dtype});
  const Tensor b = random_with_key({n, n}, RandomDist::normal, 7, 1 << 20, 0.0, 1.0, {dtype});
  matmul(a, b);  // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t = Clock::now();
    matmul(a, b);
    best = std::min(best, seconds_since(t));
  }
  return 2.0 * static_cast<double>(n * n * n) / best;
}

DType compute_dtype(const TrainConfig& c) { return c.train.precision == "bf16" ? DType::bf16 : DType::f32; }

AdamWOptions adamw_options(const TrainConfig& c) {
  return {c.optim.beta1, c.optim.beta2, c.optim.eps, c.optim.weight_decay, c.optim.decay_embeddings,
          c.optim.router_lr_scale};
}

}  // namespace

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

Trainer::Trainer(TrainConfig config, bool resume, bool quiet) : config_(std::move(config)), quiet_(quiet) {
  const TrainConfig& c = config_;
  LORY_CHECK(c.train.device == "cpu", "train.device = \"", c.train.device,
             "\": the trainer runs on the CPU so far; its GPU mode needs the CUDA kernels for rms_norm, rope, ",
             "attention and cross-entropy and the fused AdamW (the CUDA kernel library)");
  if (c.train.threads > 0) omp_set_num_threads(static_cast<int>(c.train.threads));

  // The data decides the sequence length and (unless given) the vocabulary.
  int64_t instance_tokens = 0, data_vocab = 0;
  {
    corpus::InstanceFile file(c.data.train);
    instance_tokens = file.instance_tokens();
    data_vocab = file.vocab_size();
  }
  nn::LoryConfig& m = config_.model.resolved;
  if (c.model.vocab_from_data) m.vocab_size = data_vocab;
  LORY_CHECK(m.vocab_size >= data_vocab, "model.vocab_size = ", m.vocab_size, " is smaller than the vocabulary of ",
             c.data.train, " (", data_vocab, ")");
  LORY_CHECK(instance_tokens - 1 <= m.max_position_embeddings, "model.max_position_embeddings = ",
             m.max_position_embeddings, " is shorter than the training sequences of ", c.data.train, " (",
             instance_tokens - 1, " tokens)");
  plan_ = plan_run(config_, instance_tokens);
  schedule_.peak = c.optim.lr;
  schedule_.floor = c.optim.lr * c.optim.min_lr_ratio;
  schedule_.total_steps = plan_.total_steps;
  schedule_.warmup_steps = static_cast<int64_t>(std::llround(c.schedule.warmup * static_cast<double>(plan_.total_steps)));
  schedule_.decay = parse_decay(c.schedule.decay, "schedule.decay");
  config_toml_ = train_config_to_toml(config_);

  const std::string& dir = c.checkpoint.dir;
  const std::string metrics_path = c.log.metrics.empty() ? dir + "/metrics.jsonl" : c.log.metrics;
  manual_seed(static_cast<uint64_t>(c.train.seed));
  if (resume) {
    const std::string path = latest_checkpoint(dir);
    LORY_CHECK(!path.empty(), "--resume: no checkpoint in ", dir, "/checkpoints");
    const CheckpointInfo info = read_checkpoint_info(path);
    // The model is the config's (in the checkpoint's phase), not its
    // config.json: a dense config.json is plain LLaMA and does not carry the
    // Lory keys (segment_length, routing, ...) the upcycling will need.
    nn::LoryConfig phase = m;
    if (!info.state.lory_phase) phase.num_experts = 0;
    const nn::LoryConfig& saved = info.model_config;
    LORY_CHECK(saved.hidden_size == phase.hidden_size && saved.intermediate_size == phase.intermediate_size &&
                   saved.num_hidden_layers == phase.num_hidden_layers &&
                   saved.num_attention_heads == phase.num_attention_heads && saved.vocab_size == phase.vocab_size &&
                   saved.num_experts == phase.num_experts,
               "--resume: ", path, "/config.json describes another model than the config (hidden_size ",
               saved.hidden_size, " vs ", phase.hidden_size, ", intermediate_size ", saved.intermediate_size, " vs ",
               phase.intermediate_size, ", layers ", saved.num_hidden_layers, " vs ", phase.num_hidden_layers,
               ", heads ", saved.num_attention_heads, " vs ", phase.num_attention_heads, ", vocab ", saved.vocab_size,
               " vs ", phase.vocab_size, ", experts ", saved.num_experts, " vs ", phase.num_experts, ")");
    build_model(phase);
    load_training_checkpoint(info, *flat_, *optimizer_);
    state_ = info.state;
    set_generator_state({state_.rng_seed, state_.rng_offset});
    // The metrics of steps after the checkpoint are about to be redone.
    std::vector<std::string> kept;
    {
      std::ifstream in(metrics_path);
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= state_.step) kept.push_back(line);
      }
    }
    metrics_ = std::fopen(metrics_path.c_str(), "w");
    LORY_CHECK(metrics_, metrics_path, ": cannot open for writing");
    for (const std::string& line : kept) std::fprintf(metrics_, "%s\n", line.c_str());
    if (!quiet_) std::printf("resumed from %s (step %lld)\n", path.c_str(), static_cast<long long>(state_.step));
  } else {
    const std::string existing = latest_checkpoint(dir);
    LORY_CHECK(existing.empty(), "checkpoint.dir = ", dir, " already holds checkpoints (", existing,
               "); pass --resume to continue that run, or choose another checkpoint.dir");
    nn::LoryConfig first = m;
    if (plan_.dense_steps > 0) first.num_experts = 0;  // the dense warm-up
    build_model(first);
    state_.lory_phase = first.is_lory();
    fs::create_directories(fs::path(metrics_path).parent_path().empty() ? fs::path(".")
                                                                        : fs::path(metrics_path).parent_path());
    metrics_ = std::fopen(metrics_path.c_str(), "w");
    LORY_CHECK(metrics_, metrics_path, ": cannot open for writing");
  }
  fs::create_directories(dir);
  loader_ = std::make_unique<corpus::DataLoader>(c.data.train, c.train.micro_batch, 0, 1,
                                               static_cast<uint64_t>(c.train.seed), state_.loader, data_vocab);
  if (!c.data.valid.empty())
    eval_set_ = std::make_unique<EvalSet>(build_eval_set(c.data.valid, plan_.seq_len, c.eval.tokens_per_domain,
                                                         static_cast<int32_t>(m.eos_token_id), data_vocab));
  peak_flops_ = c.log.peak_tflops > 0 ? c.log.peak_tflops * 1e12 : measure_gemm_flops(compute_dtype(c));

  if (!quiet_) {
    const nn::ParameterCount n = nn::count_parameters(m);
    std::printf("model: %s, %lld layers, d %lld, f %lld, vocab %lld: %.1fM parameters (%.1fM active)\n",
                m.is_lory() ? (std::to_string(m.num_experts) + " experts per Lory layer").c_str() : "dense",
                static_cast<long long>(m.num_hidden_layers), static_cast<long long>(m.hidden_size),
                static_cast<long long>(m.intermediate_size), static_cast<long long>(m.vocab_size), n.total() / 1e6,
                n.active / 1e6);
    std::printf("plan: %lld steps of %lld tokens (micro-batch %lld x %lld accumulation x %lld tokens)%s, %s\n",
                static_cast<long long>(plan_.total_steps), static_cast<long long>(plan_.tokens_per_step),
                static_cast<long long>(c.train.micro_batch), static_cast<long long>(plan_.accum),
                static_cast<long long>(plan_.seq_len),
                plan_.dense_steps > 0 ? (", dense for the first " + std::to_string(plan_.dense_steps)).c_str() : "",
                c.train.precision.c_str());
    std::printf("lr: peak %.3g, warm-up %lld steps, %s decay to %.3g; MFU against %.3g TFLOP/s%s\n", schedule_.peak,
                static_cast<long long>(schedule_.warmup_steps), decay_name(schedule_.decay), schedule_.floor,
                peak_flops_ / 1e12, c.log.peak_tflops > 0 ? "" : " (a measured GEMM)");
    std::fflush(stdout);
  }
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
}

void Trainer::build_model(const nn::LoryConfig& model_config) {
  model_ = std::make_unique<nn::LoryLM>(model_config);
  model_->set_recompute_merged(config_.train.recompute_merged);
  model_->recompute_activations = config_.train.recompute == "blocks";
  model_->train();
  flat_ = std::make_unique<FlatParameters>(*model_, compute_dtype(config_));
  optimizer_ = std::make_unique<AdamW>(*flat_, adamw_options(config_));
  routing_.reset();
  if (model_config.is_lory())
    routing_ = std::make_unique<RoutingStats>(model_config.num_hidden_layers, model_config.num_experts,
                                              config_.log.utilisation_window);
}

// Paper §4.1: after the dense warm-up, every FFN becomes E copies of itself
// and a router is added. With identical experts the merged FFN equals the
// dense one for any routing weights, so the loss does not jump.
void Trainer::upcycle() {
  NoGradGuard no_grad;
  const int64_t E = config_.model.resolved.num_experts;
  // The experts copy the f32 master weights, not their bf16 rounding.
  for (size_t i = 0; i < flat_->slots().size(); ++i) *flat_->slots()[i].slot = flat_->view(flat_->master, i).detach();
  std::unique_ptr<nn::LoryLM> lory = nn::upcycle(*model_, E);
  lory->set_recompute_merged(config_.train.recompute_merged);
  lory->recompute_activations = model_->recompute_activations;
  lory->train();
  auto flat = std::make_unique<FlatParameters>(*lory, compute_dtype(config_));
  auto optimizer = std::make_unique<AdamW>(*flat, adamw_options(config_));
  // What the Adam state becomes (train/upcycle_moments.h: why it matters).
  transfer_moments_at_upcycle(*flat_, *optimizer_, *flat, *optimizer, E,
                              parse_upcycle_moments(config_.schedule.upcycle_moments, "schedule.upcycle_moments"));
  model_ = std::move(lory);
  flat_ = std::move(flat);
  optimizer_ = std::move(optimizer);
  routing_ = std::make_unique<RoutingStats>(config_.model.resolved.num_hidden_layers, E, config_.log.utilisation_window);
  state_.lory_phase = true;
  nlohmann::ordered_json j{{"type", "event"}, {"step", state_.step}, {"event", "upcycle"}, {"num_experts", E},
                           {"moments", config_.schedule.upcycle_moments}};
  write_metrics(j.dump());
  if (!quiet_) {
    std::printf("step %lld: dense warm-up done; every FFN is now %lld experts with a router (Adam moments: %s)\n",
                static_cast<long long>(state_.step), static_cast<long long>(E),
                config_.schedule.upcycle_moments.c_str());
    std::fflush(stdout);
  }
}

double Trainer::train_step(RoutingStats* stats) {
  flat_->zero_grads();
  const int64_t B = config_.train.micro_batch, T1 = plan_.seq_len + 1;
  batch_ids_.resize(static_cast<size_t>(B * T1));
  double loss_sum = 0;
  for (int64_t a = 0; a < plan_.accum; ++a) {
    const int32_t* batch = loader_->next();
    std::copy(batch, batch + B * T1, batch_ids_.begin());
    const Tensor tokens = from_vector(batch_ids_, {B, T1}, {DType::i64});
    const Tensor loss = model_->loss(tokens);
    const double value = loss.item();
    if (!std::isfinite(value)) {
      last_tokens_ = tokens;
      return value;
    }
    // Mean over the global batch: every micro-batch holds the same number of tokens.
    mul(loss, 1.0 / static_cast<double>(plan_.accum)).backward();
    loss_sum += value;
    if (stats) stats->add(state_.step, model_->routing_weights());
    flat_->accumulate_micro_batch();
  }
  return loss_sum / static_cast<double>(plan_.accum);
}

void Trainer::write_metrics(const std::string& json_line) {
  if (!metrics_) return;
  std::fprintf(metrics_, "%s\n", json_line.c_str());
  std::fflush(metrics_);
}

void Trainer::log_step(double loss, const StepReport& report, double lr, double step_seconds) {
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
  if (quiet_ || (step % config_.log.every != 0 && step != plan_.total_steps && step != 1)) return;
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
  std::printf("\n");
  std::fflush(stdout);
  window_seconds_ = window_loss_ = 0;
  window_steps_ = 0;
}

void Trainer::run_eval() {
  if (!eval_set_) return;
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
  if (!quiet_) {
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
  const std::string path = save_training_checkpoint(config_.checkpoint.dir, model_->config, *flat_, *optimizer_, state_,
                                                    config_toml_, config_.checkpoint.keep_last);
  if (!quiet_) {
    std::printf("checkpoint: %s\n", path.c_str());
    std::fflush(stdout);
  }
}

// Where did the NaN/Inf come from? Re-run the forward of the failing batch
// one piece at a time and name the first piece whose output is not finite
// (or the first parameter that already holds one).
std::string Trainer::diagnose_non_finite_loss(const Tensor& tokens) {
  NoGradGuard no_grad;
  for (auto& [name, p] : model_->named_parameters())
    if (!all_finite(*p)) return "parameter " + name + " holds NaN/Inf values";
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
  const Tensor logits = model_->lm_head.forward(model_->model.norm.forward(x));
  if (!all_finite(logits)) return "the logits (model.norm / lm_head)";
  return "the loss itself (the logits are finite)";
}

RunResult Trainer::run() {
  RunResult result;
  const int64_t E = config_.model.resolved.num_experts;
  while (state_.step < plan_.total_steps) {
    if (!state_.lory_phase && E > 0 && state_.step >= plan_.dense_steps) upcycle();
    const auto t0 = Clock::now();
    const double loss = train_step(state_.lory_phase ? routing_.get() : nullptr);
    if (!std::isfinite(loss)) {
      result.end = RunEnd::non_finite;
      result.message = "step " + std::to_string(state_.step + 1) + ": the loss is " + std::to_string(loss) +
                       "; it first appears in " + diagnose_non_finite_loss(last_tokens_);
      break;
    }
    const double norm = AdamW::grad_norm(*flat_);
    if (!std::isfinite(norm)) {
      result.end = RunEnd::non_finite;
      result.message = "step " + std::to_string(state_.step + 1) + ": the gradient norm is " + std::to_string(norm) +
                       "; the first parameter with a NaN/Inf gradient is " + AdamW::first_non_finite_grad(*flat_);
      break;
    }
    const double lr = schedule_.at(state_.step);
    StepReport report;
    optimizer_->step_with_norm(*flat_, lr, config_.optim.grad_clip, norm, report);
    // Finite gradients can still overflow the weights (an absurd LR): check
    // before anything (a checkpoint) keeps them.
    const std::string overflowed = AdamW::first_non_finite_param(*flat_);
    if (!overflowed.empty()) {
      result.end = RunEnd::non_finite;
      result.message = "step " + std::to_string(state_.step + 1) + ": the update made parameter " + overflowed +
                       " NaN/Inf (learning rate " + std::to_string(lr) + ", gradient norm " + std::to_string(norm) + ")";
      break;
    }
    const double dt = seconds_since(t0);
    ++state_.step;
    state_.tokens += plan_.tokens_per_step;
    state_.elapsed_s += dt;
    result.losses.push_back(loss);
    log_step(loss, report, lr, dt);

    const int64_t s = state_.step;
    const bool last = s == plan_.total_steps;
    if (!last && config_.eval.every > 0 && s % config_.eval.every == 0) run_eval();
    if (!last && config_.checkpoint.every > 0 && s % config_.checkpoint.every == 0) save_checkpoint();
    if (!last && (stop_signal.load() != 0 || (stop_after_ >= 0 && s >= stop_after_))) {
      if (config_.checkpoint.every == 0 || s % config_.checkpoint.every != 0) save_checkpoint();
      result.end = RunEnd::stopped;
      break;
    }
  }
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
  result.step = state_.step;
  return result;
}

}  // namespace lory::train
