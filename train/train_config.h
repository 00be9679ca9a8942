// train_config.h — everything a training run is told, from a TOML file and
// command-line overrides, checked before any work starts.
//
//   lory_train --config configs/cpu-lory-8e.toml --optim.lr=3e-4 --train.precision=bf16
//
// The file has eight sections (model, data, optim, schedule, train, eval,
// checkpoint, log); every key has a default, so a file names only what it
// changes. `--section.key=value` overrides any key. An unknown section or
// key, a value of the wrong type or out of range stops the run with the
// file (or "command line"), the key and what is allowed. The resolved config
// (every key, after overrides) is saved next to each checkpoint as
// train_config.toml, and `lory_train --print-config` prints it.
//
// The keys, their defaults and meaning are listed once, in train_config.cpp
// (config_keys()); `lory_train --help-config` prints that table.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/config.h"

namespace lory::train {

struct TrainConfig {
  struct Model {
    std::string preset = "small-8e";  // nn/config.h presets; the shape every other model key starts from
    std::string config;               // a config.json instead of a preset ("" = use the preset)
    std::string init_from;            // a model directory to start from: its config.json and weights ("" = fresh)
    nn::LoryConfig resolved;          // the model after preset/config and the keys below
    bool vocab_from_data = true;      // vocab_size not given: taken from the instances file
  } model;
  struct Data {
    std::string train = "data/instances/train-similarity.bin";  // lory_batch output
    std::string valid = "data/shards/valid-*.bin";              // shards for per-domain eval (glob or comma list)
  } data;
  struct Optim {
    double lr = 2e-4;  // peak learning rate (paper §4.1)
    double min_lr_ratio = 0.1;
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
    double weight_decay = 0.1;
    bool decay_embeddings = false;  // embed_tokens and lm_head get weight decay
    double grad_clip = 1.0;         // max global gradient norm (0 = no clipping)
    double router_lr_scale = 1.0;   // the Lory routers' LR as a multiple of the schedule's
  } optim;
  struct Schedule {
    int64_t steps = 0;          // optimizer steps (or give tokens)
    int64_t tokens = 0;         // total training tokens; steps = tokens / global batch
    double warmup = 0.05;       // fraction of steps with linear LR warm-up
    std::string decay = "cosine";
    double dense_warmup = 0.05;            // fraction of steps trained dense before upcycling (Lory models)
    std::string upcycle_moments = "reset";  // reset | reset_all | inherit | copy_unscaled (train/upcycle_moments.h)
  } schedule;
  struct Train {
    std::string device = "cpu";          // cpu | cuda (with several ranks: the GPU of the local rank)
    std::string precision = "f32";       // f32 | bf16 (bf16 compute, f32 master weights and optimizer state)
    int64_t global_batch_tokens = 1048576;  // paper: 256 x 4096
    int64_t micro_batch = 1;                // sequences per forward/backward on one rank
    int64_t seed = 1;
    std::string recompute = "none";         // none | blocks (activation recomputation per decoder layer)
    std::string merge_kernel = "fused";     // fused | gemm: how Lory layers apply merged experts (nn/merge_experts.h)
    int64_t threads = 0;                    // CPU threads (0 = OpenMP's default)
    int64_t zero = 1;         // ZeRO stage with several ranks: 0 (replicated), 1 (optimizer state sharded), 2 (+ gradients)
    double bucket_mb = 25;    // MiB of f32 gradients per reduce-scatter bucket (train/gradient_reducer.h)
    bool overlap_comm = true; // start each bucket's reduction during backward
  } train;
  struct Eval {
    int64_t every = 0;                  // steps between evaluations (0 = only at the end)
    int64_t tokens_per_domain = 65536;  // held-out tokens per domain
    int64_t batch = 4;
    std::string routing = "causal_segment";  // causal_segment | prompt | segment
  } eval;
  struct Checkpoint {
    std::string dir = "runs/lory";  // the run directory: checkpoints, metrics.jsonl, eval JSON
    int64_t every = 0;              // steps between checkpoints (0 = only at the end and on a signal)
    int64_t keep_last = 2;
  } checkpoint;
  struct Log {
    int64_t every = 1;                    // steps between progress lines
    int64_t utilisation_window = 50;      // steps over which expert utilisation is counted (paper G.1)
    double peak_tflops = 0;               // one rank's peak, for MFU; 0 = measured from a GEMM at start-up
    std::string metrics = "";             // metrics JSONL ("" = <checkpoint.dir>/metrics.jsonl)
  } log;

  // Where each key that was set came from: the TOML file's path or "command
  // line" (a key left at its default has no entry), so that a check made
  // after parsing (the trainer's) can cite it as the parser's own errors do.
  std::map<std::string, std::string> origin;
  // origin[key], or "default" for a key that was never set.
  std::string origin_of(const std::string& key) const;
};

// A key that was set, with where it came from ("configs/cpu-lory-8e.toml", "command line").
struct ConfigOverride {
  std::string key;    // "optim.lr"
  std::string value;  // as written on the command line
};

// Reads `path` (TOML), applies the overrides in order, resolves and checks
// the model. Throws lory::Error naming the file or "command line", the key
// and the allowed values.
TrainConfig load_train_config(const std::string& path, const std::vector<ConfigOverride>& overrides = {});
// The same from TOML text (tests); `where` names it in errors.
TrainConfig parse_train_config(const std::string& toml_text, const std::string& where,
                               const std::vector<ConfigOverride>& overrides = {});
// Every key with its resolved value, as TOML that parse_train_config reads back.
std::string train_config_to_toml(const TrainConfig& config);
// The key table: "section.key  default  meaning" lines.
std::string describe_config_keys();

}  // namespace lory::train
