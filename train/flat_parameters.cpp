// flat_parameters.cpp — see flat_parameters.h.
#include "train/flat_parameters.h"

#include <algorithm>

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::train {

FlatParameters::FlatParameters(nn::Module& model, DType compute_dtype, FlatOptions options) {
  LORY_CHECK(compute_dtype == DType::f32 || compute_dtype == DType::bf16,
             "FlatParameters: compute dtype must be f32 or bf16, got ", dtype_name(compute_dtype));
  auto named = model.named_parameters();
  LORY_CHECK(!named.empty(), "FlatParameters: the model has no parameters");
  const Device device = named.front().second->device();
  for (auto& [name, slot] : named) {
    LORY_CHECK(slot->device() == device, "FlatParameters: parameter ", name, " is on ", slot->describe(),
               ", the first on ", named.front().second->describe(), ": all must share one device");
    slots_.push_back({name, slot, size_, slot->numel(), slot->shape()});
    size_ += (slot->numel() + kAlign - 1) / kAlign * kAlign;
  }
  LORY_CHECK(options.world >= 1 && options.rank >= 0 && options.rank < options.world, "FlatParameters: rank ",
             options.rank, " of a world of ", options.world);
  world_ = options.world;
  const int64_t unit = kAlign * world_;
  size_ = (size_ + unit - 1) / unit * unit;
  NoGradGuard no_grad;
  // The buffers live on options.device (default: the model's). They are
  // filled one parameter at a time, each value rounded once to the buffer's
  // dtype, so no whole-model f32 copy exists on the device: a model built
  // on the CPU moves to a GPU holding only what the run keeps.
  const Device target = options.device.value_or(device);
  const TensorOptions f32{DType::f32, target, false};
  if (options.shard_master) master_begin_ = shard_begin(options.rank);
  const int64_t master_size = options.shard_master ? shard_size() : size_;
  params = zeros({size_}, {compute_dtype, target, false});
  for (size_t i = 0; i < slots_.size(); ++i) view(params, i).copy_(*slots_[i].slot);
  if (compute_dtype == DType::f32) {
    master = params.narrow(0, master_begin_, master_size);
    grads = master_grads = zeros({size_}, f32);
  } else {
    grads = zeros({size_}, {compute_dtype, target, false});
    master = zeros({master_size}, f32);
    for (const FlatSlot& s : slots_) {  // the part of each parameter in [master_begin, + master_size)
      const int64_t lo = std::max(s.offset, master_begin_), hi = std::min(s.offset + s.numel, master_begin_ + master_size);
      if (lo < hi) master.narrow(0, lo - master_begin_, hi - lo).copy_(s.slot->reshape({s.numel}).narrow(0, lo - s.offset, hi - lo));
    }
    separate_master_ = true;
    if (options.full_accumulator) master_grads = zeros({size_}, f32);
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    Tensor p = view(params, i).detach();
    p.set_requires_grad(true);
    p.set_grad(view(grads, i));
    *slots_[i].slot = p;
  }
}

Tensor FlatParameters::view(const Tensor& buffer, size_t i) const {
  const FlatSlot& s = slots_.at(i);
  return buffer.narrow(0, s.offset, s.numel).view(s.shape);
}

const FlatSlot* FlatParameters::find(const std::string& name) const {
  for (const FlatSlot& s : slots_)
    if (s.name == name) return &s;
  return nullptr;
}

void FlatParameters::zero_grads() {
  NoGradGuard no_grad;
  grads.zero_();
  if (has_separate_accumulator()) master_grads.zero_();
}

void FlatParameters::accumulate_micro_batch() {
  if (!has_separate_accumulator()) return;
  NoGradGuard no_grad;
  master_grads.add_(grads);
  grads.zero_();
}

void FlatParameters::publish_master() {
  if (!has_separate_master()) return;
  NoGradGuard no_grad;
  params.narrow(0, master_begin_, master.numel()).copy_(master);
}

}  // namespace lory::train
