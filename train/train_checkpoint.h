// train_checkpoint.h — everything needed to continue a run exactly, written
// so that a run killed at any moment loses nothing.
//
// <run>/checkpoints/step-00000100/
//   config.json, model.safetensors   the f32 master weights as a model directory
//                                    (lory_eval, lory_generate and load_pretrained read it)
//   optimizer.safetensors            "<param>.exp_avg", "<param>.exp_avg_sq" (f32)
//   trainer_state.json               step, tokens, phase, per-parameter Adam steps,
//                                    data loader position, RNG state, world size
//   train_config.toml                the resolved config of the run
// The directory is filled under a temporary name, every file fsynced, then
// renamed into place (atomic), so a step-* directory is always complete.
// Only the newest keep_last are kept.
//
// Written by N ranks, the two safetensors files are split the Hugging Face
// way (model-00001-of-0000N.safetensors ... + model.safetensors.index.json,
// the same for optimizer): rank w writes the parameters that start in its
// shard, whole, after the shards' values were exchanged (all-to-all) so
// that it holds them. Nothing in the files depends on N but their number:
// every tensor is a whole parameter under its own name, so every tool reads
// the directory, and a run resumes at any world size (each rank takes the
// parts of the moments that fall in its new shard). A checkpoint counts
// once trainer_state.json is in the renamed directory, which rank 0 does
// only after every rank has written and synced its files.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "nn/config.h"
#include "corpus/data_loader.h"
#include "train/zero_optimizer.h"

namespace lory::train {

struct TrainerState {
  int64_t step = 0;    // optimizer steps done
  int64_t tokens = 0;  // tokens trained on (all ranks)
  bool lory_phase = false;  // false: the dense warm-up
  corpus::LoaderState loader;
  uint64_t rng_seed = 0, rng_offset = 0;  // the global generator (tensor.h)
  double elapsed_s = 0;                   // training wall time so far
};

std::string checkpoint_name(int64_t step);  // "step-00000100"

// Writes <run_dir>/checkpoints/step-N atomically, then deletes all but the
// newest keep_last checkpoints. Returns the new directory. Collective: every
// rank of zero.comm() calls it.
std::string save_training_checkpoint(const std::string& run_dir, const nn::LoryConfig& model_config,
                                     ZeroOptimizer& zero, const TrainerState& state, const std::string& config_toml,
                                     int64_t keep_last);

// The newest complete checkpoint of the run ("" when there is none).
std::string latest_checkpoint(const std::string& run_dir);

// What a checkpoint says before the model is built.
struct CheckpointInfo {
  std::string path;
  nn::LoryConfig model_config;
  TrainerState state;
  std::map<std::string, int64_t> param_steps;  // Adam step count per parameter
  int64_t world = 1;                           // ranks that wrote it
};
CheckpointInfo read_checkpoint_info(const std::string& path);

// Loads the weights and this rank's part of the master weights and the
// optimizer state of the checkpoint (written at any world size) into `zero`
// (built for info.model_config); checks every name and shape.
void load_training_checkpoint(const CheckpointInfo& info, ZeroOptimizer& zero);

}  // namespace lory::train
