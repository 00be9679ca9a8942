// flat_parameters.cpp — see flat_parameters.h.
#include "train/flat_parameters.h"

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::train {

FlatParameters::FlatParameters(nn::Module& model, DType compute_dtype) {
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
  NoGradGuard no_grad;
  const TensorOptions f32{DType::f32, device, false};
  master = zeros({size_}, f32);
  master_grads = zeros({size_}, f32);
  for (size_t i = 0; i < slots_.size(); ++i) view(master, i).copy_(*slots_[i].slot);
  if (compute_dtype == DType::f32) {
    params = master;
    grads = master_grads;
  } else {
    params = master.to(compute_dtype);
    grads = zeros({size_}, {compute_dtype, device, false});
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
  if (has_separate_master()) master_grads.zero_();
}

void FlatParameters::accumulate_micro_batch() {
  if (!has_separate_master()) return;
  NoGradGuard no_grad;
  master_grads.add_(grads);
  grads.zero_();
}

void FlatParameters::publish_master() {
  if (!has_separate_master()) return;
  NoGradGuard no_grad;
  params.copy_(master);
}

}  // namespace lory::train
