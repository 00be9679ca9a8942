// flat_parameters.h — a model's parameters, gradients and master weights as
// flat buffers, one per dtype, that an optimizer (and later a ZeRO shard)
// walks as a single array.
//
// After FlatParameters(model, compute_dtype), every parameter of the model
// is a view into one buffer `params` of the compute dtype, and its .grad is a
// view into `grads` of the same dtype, where autograd accumulates in place
// (autograd/engine.cpp). The optimizer works on f32:
//
//   compute f32:  master == params, master_grads == grads (no copies at all)
//   compute bf16: master (f32) is the optimizer's copy of the weights; after
//                 each micro-batch, master_grads (f32) += grads and grads = 0;
//                 after each update, params = bf16(master). bf16 is a storage
//                 type: the update itself never rounds to bf16.
//
//   offset of parameter p: sum of the sizes of the parameters before it,
//   each rounded up to kAlign elements (so every parameter starts on a
//   64-byte boundary in the f32 buffers, 32 bytes in bf16 ones; the padding
//   stays zero).
//
// Data parallelism over N ranks (train/zero_optimizer.h) cuts the flat
// space into N equal, contiguous shards: the size is padded up to a
// multiple of kAlign * N, and rank r owns [r S, (r + 1) S), S = size / N, so
// any parameter count works with any world size. A parameter may straddle
// two shards. Under ZeRO the f32 buffers a rank does not need in full are
// not allocated here (FlatOptions); zero_optimizer.h keeps its shard of them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace lory::train {

struct FlatSlot {
  std::string name;  // "model.layers.0.mlp.experts.gate_proj.weight"
  Tensor* slot;      // the module's parameter (now a view of `params`)
  int64_t offset;    // in elements, into every flat buffer
  int64_t numel;
  Shape shape;
};

// How the buffers are cut for data parallelism (zero_optimizer.h).
struct FlatOptions {
  std::optional<Device> device;  // where the buffers live (default: where the model's parameters are)
  int64_t world = 1, rank = 0;   // the size is padded to a multiple of kAlign * world
  bool shard_master = false;     // ZeRO 1/2: `master` is this rank's shard only
  bool full_accumulator = true;  // bf16, ZeRO 2: no whole-buffer f32 gradient accumulator
};

class FlatParameters {
 public:
  static constexpr int64_t kAlign = 16;

  // Copies the model's current parameter values into the new buffers and
  // points the model's parameters (and their grads) at them: the model then
  // lives on the buffers' device.
  FlatParameters(nn::Module& model, DType compute_dtype, FlatOptions options = {});

  const std::vector<FlatSlot>& slots() const { return slots_; }
  int64_t size() const { return size_; }  // elements, padding included (a multiple of kAlign * world)
  int64_t world() const { return world_; }
  int64_t shard_size() const { return size_ / world_; }
  // Rank r's shard: [r S, (r + 1) S).
  int64_t shard_begin(int64_t r) const { return r * shard_size(); }
  // The part of the flat space `master` holds: all of it, or this rank's shard.
  int64_t master_begin() const { return master_begin_; }
  int64_t master_end() const { return master_begin_ + master.numel(); }
  DType compute_dtype() const { return params.dtype(); }
  // bf16 compute: an f32 master / accumulator of its own (f32: they are params / grads).
  bool has_separate_master() const { return separate_master_; }
  bool has_separate_accumulator() const { return master_grads.defined() && grads.impl() != master_grads.impl(); }

  // The view of `buffer` (any of the flat buffers) that belongs to slot i.
  Tensor view(const Tensor& buffer, size_t i) const;
  const FlatSlot* find(const std::string& name) const;

  // Zeroes the gradients (start of a step).
  void zero_grads();
  // bf16: master_grads += grads, grads = 0. f32: nothing (they are one buffer).
  void accumulate_micro_batch();
  // bf16: params (the part master holds) = master rounded to bf16. f32: nothing.
  void publish_master();

  Tensor params, grads;  // compute dtype, [size]
  // f32. master: [size], or with shard_master this rank's shard [S]; for f32
  // compute a view of params. master_grads: [size], the micro-batches'
  // gradient sum (grads itself for f32 compute; undefined for bf16 without
  // full_accumulator).
  Tensor master, master_grads;

 private:
  std::vector<FlatSlot> slots_;
  int64_t size_ = 0, world_ = 1, master_begin_ = 0;
  bool separate_master_ = false;
};

}  // namespace lory::train
