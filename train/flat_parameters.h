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
#pragma once

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

class FlatParameters {
 public:
  static constexpr int64_t kAlign = 16;

  // Copies the model's current parameter values into the new buffers and
  // points the model's parameters (and their grads) at them.
  FlatParameters(nn::Module& model, DType compute_dtype);

  const std::vector<FlatSlot>& slots() const { return slots_; }
  int64_t size() const { return size_; }  // elements, padding included
  DType compute_dtype() const { return params.dtype(); }
  bool has_separate_master() const { return params.impl() != master.impl(); }

  // The view of `buffer` (any of the flat buffers) that belongs to slot i.
  Tensor view(const Tensor& buffer, size_t i) const;
  const FlatSlot* find(const std::string& name) const;

  // Zeroes the gradients (start of a step).
  void zero_grads();
  // bf16: master_grads += grads, grads = 0. f32: nothing (they are one buffer).
  void accumulate_micro_batch();
  // bf16: params = master rounded to bf16. f32: nothing.
  void publish_master();

  Tensor params, grads;              // compute dtype, [size]
  Tensor master, master_grads;       // f32, [size] (== params/grads for f32 compute)
 private:
  std::vector<FlatSlot> slots_;
  int64_t size_ = 0;
};

}  // namespace lory::train
