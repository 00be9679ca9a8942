// module.h — Module: a node of the model tree that owns named parameters.
//
// A model is a tree of Modules (LoryLM -> layers -> self_attn -> q_proj ...).
// Each module registers its parameters and children under the names Hugging
// Face LLaMA uses, so the path of every parameter from the root is its
// checkpoint name ("model.layers.3.self_attn.q_proj.weight") and a
// safetensors file maps onto the tree with no renaming table.
//
// Parameters are ordinary leaf tensors that require grad, held by value in
// the module that uses them; the module registers a pointer to that member.
// Whoever needs them all (an optimizer, a checkpoint, the trainer's flat
// buffers) iterates named_parameters() and may replace a parameter in place
// (with a view of a flat buffer, say), since the module reads it through the
// same slot. Modules are therefore neither copyable nor movable.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace lory::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its descendants, depth first in
  // registration order, named by its dotted path from this module.
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<Tensor> parameters();
  // The parameter at `name` (a dotted path); throws naming it when absent.
  Tensor& parameter(const std::string& name);
  int64_t num_parameters();

  // Train/eval mode of this module and all its descendants.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves/casts every parameter not already there: each becomes a new leaf
  // (requiring grad as the old one did; its .grad is dropped).
  void to(Device device);
  void to(DType dtype);
  // Drops the accumulated gradient of every parameter.
  void zero_grad();

 protected:
  // Registers `slot` (a member of the derived module) under `name` and
  // returns it. `name` may contain dots ("gate_proj.weight") for a
  // parameter that belongs to no module of its own.
  Tensor& register_parameter(const std::string& name, Tensor& slot);
  void register_module(const std::string& name, Module& child);

 private:
  template <typename F>
  void visit(const std::string& prefix, F&& f);

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

// How parameters are made: dtype and device of new parameters, and the
// standard deviation of the normal initialiser (HF's initializer_range).
struct InitOptions {
  double std = 0.02;
  DType dtype = DType::f32;
  Device device = cpu_device();
};

// A leaf parameter of `shape` drawn from N(0, std^2) with the global generator
// (in f32 on the CPU, then converted: the same values for every dtype and device).
Tensor normal_parameter(const Shape& shape, double std, const InitOptions& options);
// A leaf parameter filled with `value` (RMSNorm weights start at 1).
Tensor constant_parameter(const Shape& shape, double value, const InitOptions& options);

}  // namespace lory::nn
