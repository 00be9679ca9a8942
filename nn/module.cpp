// module.cpp — parameter registration, traversal and conversion.
#include "nn/module.h"

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory::nn {

template <typename F>
void Module::visit(const std::string& prefix, F&& f) {
  for (auto& [name, slot] : params_) f(prefix + name, slot);
  for (auto& [name, child] : children_) child->visit(prefix + name + ".", f);
}

std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  visit("", [&](const std::string& name, Tensor* slot) { out.emplace_back(name, slot); });
  return out;
}

std::vector<Tensor> Module::parameters() {
  std::vector<Tensor> out;
  visit("", [&](const std::string&, Tensor* slot) { out.push_back(*slot); });
  return out;
}

Tensor& Module::parameter(const std::string& name) {
  for (auto& [n, slot] : named_parameters())
    if (n == name) return *slot;
  fail("module: no parameter named '", name, "'");
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  visit("", [&](const std::string&, Tensor* slot) { n += slot->numel(); });
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

namespace {
// A new leaf with p's values converted by `convert`, requiring grad like p.
template <typename F>
void replace_leaf(Tensor* slot, F convert) {
  NoGradGuard no_grad;
  const bool grad = slot->requires_grad();
  Tensor t = convert(slot->detach()).detach();
  if (t.impl() == slot->impl()) t = t.clone().detach();  // never share the old leaf's autograd fields
  t.set_requires_grad(grad);
  *slot = t;
}
}  // namespace

void Module::to(Device device) {
  visit("", [&](const std::string&, Tensor* slot) {
    if (slot->device() != device) replace_leaf(slot, [&](const Tensor& p) { return p.to(device); });
  });
}

void Module::to(DType dtype) {
  LORY_CHECK(is_floating(dtype), "module.to: parameters must be floating, got ", dtype_name(dtype));
  visit("", [&](const std::string&, Tensor* slot) {
    if (slot->dtype() != dtype) replace_leaf(slot, [&](const Tensor& p) { return p.to(dtype); });
  });
}

void Module::zero_grad() {
  visit("", [&](const std::string&, Tensor* slot) { slot->set_grad(Tensor()); });
}

Tensor& Module::register_parameter(const std::string& name, Tensor& slot) {
  LORY_CHECK(!name.empty(), "module: a parameter needs a name");
  for (auto& [n, s] : params_) LORY_CHECK(n != name, "module: parameter '", name, "' registered twice");
  LORY_CHECK(slot.defined(), "module: parameter '", name, "' is undefined");
  params_.emplace_back(name, &slot);
  return slot;
}

void Module::register_module(const std::string& name, Module& child) {
  LORY_CHECK(!name.empty(), "module: a submodule needs a name");
  for (auto& [n, c] : children_) LORY_CHECK(n != name, "module: submodule '", name, "' registered twice");
  children_.emplace_back(name, &child);
}

Tensor normal_parameter(const Shape& shape, double std, const InitOptions& options) {
  Tensor t = normal(shape, 0.0, std, {DType::f32, cpu_device(), false});
  if (options.dtype != DType::f32) t = t.to(options.dtype);
  if (options.device != cpu_device()) t = t.to(options.device);
  return t.set_requires_grad(true);
}

Tensor constant_parameter(const Shape& shape, double value, const InitOptions& options) {
  return full(shape, value, {options.dtype, options.device, false}).set_requires_grad(true);
}

}  // namespace lory::nn
