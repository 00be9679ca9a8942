// trainer.h — the pre-training loop of paper §4.1, on one process or as one
// rank of a data-parallel job (`mpirun -np N lory_train`).
//
// One optimizer step, on every rank:
//   for each of `accum` micro-batches:  loss = model.loss(this rank's batch); (loss / accum).backward()
//                                       gradients summed over micro-batches and reduced
//                                       over ranks, overlapping backward (gradient_reducer.h)
//   check the loss and the gradient norm are finite on every rank (else all stop, naming where)
//   AdamW with the scheduled LR and global-norm clipping, on this rank's shard
//   (zero_optimizer.h); the updated weights all-gathered
//   check the updated weights are finite (else all stop, naming the parameter)
// Every decision that ends or changes the run (a NaN, a signal, the step to
// stop at) is agreed by all ranks at the same step, so no rank is left
// waiting in a collective. Rank 0 alone prints, writes metrics.jsonl and
// evaluates; checkpoints are written by all ranks together.
// With num_experts > 0 the run starts dense and, after the dense warm-up
// steps, every FFN becomes E identical experts plus a fresh router
// (nn::upcycle), in the same run and LR schedule.
//
// The global batch: global_batch_tokens = micro_batch x accum x ranks x L.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nn/lory_lm.h"
#include "corpus/data_loader.h"
#include "train/adamw.h"
#include "train/evaluate.h"
#include "train/flat_parameters.h"
#include "train/lr_schedule.h"
#include "train/communicator.h"
#include "train/routing_stats.h"
#include "train/train_checkpoint.h"
#include "train/train_config.h"
#include "train/zero_optimizer.h"

namespace lory::train {

// The shape of a run, derived from the config and the data.
struct RunPlan {
  int64_t seq_len = 0;       // L: tokens predicted per sequence
  int64_t accum = 1;         // micro-batches per step on each rank
  int64_t world = 1;         // data-parallel ranks
  int64_t total_steps = 0;
  int64_t dense_steps = 0;   // steps before upcycling (0: the model is Lory, or dense, from step 0)
  int64_t tokens_per_step = 0;
};
// Throws naming the keys when the global batch does not divide.
RunPlan plan_run(const TrainConfig& config, int64_t instance_tokens, int64_t world = 1);

// What the training instances file (data.train) says about the data.
struct InstanceShape {
  int64_t tokens = 0;  // tokens per instance: L + 1 (L predicted)
  int64_t vocab = 0;   // the vocabulary the instances were tokenized with
};

// What ended the run.
enum class RunEnd { finished, stopped, non_finite };

struct RunResult {
  RunEnd end = RunEnd::finished;
  int64_t step = 0;
  std::vector<double> losses;  // the loss of every step this process ran
  std::string message;         // for non_finite: where the NaN/Inf appeared
};

class Trainer {
 public:
  // `resume`: continue from the newest checkpoint of config.checkpoint.dir
  // (an error when there is none). `quiet`: no progress lines (tests).
  // `comm`: the ranks of a data-parallel job (none: this process alone).
  Trainer(TrainConfig config, bool resume, bool quiet = false, Communicator* comm = nullptr);
  ~Trainer();

  // Trains until the schedule ends, a stop is requested (signal, or the
  // step given to stop_after), or a NaN/Inf appears.
  RunResult run();

  // Stop (checkpoint and return) once `step` steps are done.
  void stop_after(int64_t step) { stop_after_ = step; }
  // Profile `steps` steps (tensor/profiler.h): the first ones after one
  // warm-up step of the model being trained (of the Lory model, in a run
  // that upcycles before them). Rank 0 prints the table when they are done
  // and writes it as profile.json next to metrics.jsonl.
  void profile(int64_t steps) { profile_steps_ = steps; }
  // Set by lory_train's SIGINT/SIGTERM handler; checked after every step.
  static std::atomic<int> stop_signal;

  nn::LoryLM& model() { return *model_; }
  const FlatParameters& flat() const { return zero_->flat(); }
  ZeroOptimizer& optimizer() { return *zero_; }
  Device device() const { return device_; }
  const RunPlan& plan() const { return plan_; }
  int64_t step() const { return state_.step; }

 private:
  // ---- setting up a run: the constructor's steps, in order (trainer.cpp says what and why) ----
  Device choose_device() const;
  void fit_model_to_data(const InstanceShape& data);
  void resume_from_checkpoint();  // --resume
  void start_new_run();           // otherwise
  void open_metrics(const std::string& path, const std::vector<std::string>& kept_lines);
  void open_data(int64_t data_vocab);
  void print_run_summary() const;
  void build_model(const nn::LoryConfig& model_config);  // a fresh model, flat buffers, optimizer
  std::unique_ptr<nn::LoryLM> initial_model(const nn::LoryConfig& first);  // fresh, or model.init_from's
  void install_model(std::unique_ptr<nn::LoryLM> model);                  // flat buffers, optimizer
  std::unique_ptr<ZeroOptimizer> make_optimizer(nn::LoryLM& model);

  // ---- the loop: run()'s steps ----
  struct StepOutcome {
    double loss = 0, lr = 0;
    StepReport report;
    CommStats comm;
    std::string non_finite;  // not empty: the step was refused, and where the NaN/Inf appeared
  };
  void upcycle();
  StepOutcome optimizer_step();
  double train_step(RoutingStats* stats);  // forward and backward of this rank's share: its mean loss
  std::string agree_on_loss(double local_loss);  // "" when every rank's loss is finite
  void log_step(const StepOutcome& step, double step_seconds);
  void periodic_eval_and_checkpoint();
  bool stop_requested();
  void finish_run(RunResult& result);
  void run_eval();
  void save_checkpoint();
  std::string diagnose_non_finite_loss();
  void write_metrics(const std::string& json_line);
  bool prints() const { return !quiet_ && comm_->is_root(); }
  void report_memory(const char* when);
  void report_profile();

  TrainConfig config_;
  std::string config_toml_;
  RunPlan plan_;
  LrSchedule schedule_;
  TrainerState state_;
  bool quiet_;
  int64_t stop_after_ = -1;

  std::unique_ptr<Communicator> own_comm_;  // when the caller gave none
  std::unique_ptr<Communicator> nccl_;      // GPU ranks: NCCL over the caller's MPI ranks
  Communicator* comm_ = nullptr;
  Device device_;
  std::unique_ptr<nn::LoryLM> model_;
  std::unique_ptr<ZeroOptimizer> zero_;  // the flat buffers and this rank's optimizer state
  std::unique_ptr<corpus::DataLoader> loader_;
  std::unique_ptr<RoutingStats> routing_;
  std::unique_ptr<EvalSet> eval_set_;
  std::vector<int64_t> batch_ids_;   // the current micro-batch as i64
  std::vector<Tensor> step_tokens_;  // this step's micro-batches (host), for the NaN diagnosis

  std::FILE* metrics_ = nullptr;
  double peak_flops_ = 0;            // FLOP/s for the MFU estimate
  double window_seconds_ = 0;        // time of the steps since the last progress line
  int64_t window_steps_ = 0;
  double window_loss_ = 0;
  CommStats window_comm_;
  bool memory_reported_lory_ = false;
  int64_t profile_steps_ = 0;    // steps to profile (0: none)
  int64_t profiled_steps_ = 0;   // profiled so far
  int64_t profile_first_ = 0;    // the first profiled step (1-based)
  bool profile_reported_ = false;
  int64_t steps_in_phase_ = 0;   // steps this process ran on the current model (dense, or Lory after upcycling)
};

// Best-of-5 FLOP/s of an n x n x n GEMM in `dtype` on `device` (n = 1024 on
// the CPU, 8192 on a GPU): the reference MFU is measured against, here and in
// lory_bench_train.
double measure_gemm_flops(DType dtype, Device device);

}  // namespace lory::train
