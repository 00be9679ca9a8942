// graph.cpp — recording the graph (record, SavedTensor) and the grad-mode switch.
#include "tensor/graph.h"

#include "tensor/profiler.h"

namespace lory {

namespace {
thread_local bool grad_enabled = true;
}

bool grad_mode_enabled() { return grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(grad_enabled) { grad_enabled = false; }
NoGradGuard::~NoGradGuard() { grad_enabled = previous_; }

GradModeGuard::GradModeGuard(bool enabled) : previous_(grad_enabled) { grad_enabled = enabled; }
GradModeGuard::~GradModeGuard() { grad_enabled = previous_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

// The Node a leaf's gradient flows into: one per leaf, shared by all its uses
// in a graph, so a leaf used twice receives the sum of both gradients.
std::shared_ptr<Node> accumulator_for(const Tensor& leaf) {
  TensorImpl* impl = leaf.impl();
  if (auto node = impl->grad_accumulator.lock()) return node;
  auto node = std::make_shared<Node>();
  node->name = "AccumulateGrad";
  node->leaf = leaf.impl_ptr();
  node->input_shapes = {leaf.shape()};
  node->input_dtypes = {leaf.dtype()};
  impl->grad_accumulator = node;
  return node;
}

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  tensor_ = t.detach();
  version_ = t.version();
}

const Tensor& SavedTensor::get(const char* op) const {
  LORY_CHECK(tensor_.defined(), op, ": a tensor saved for backward is missing");
  LORY_CHECK(tensor_.version() == version_, op, ": a tensor it saved for backward, ", tensor_.describe(),
             ", was modified by an in-place operation after it was saved (version ", tensor_.version(),
             ", expected ", version_, "); gradients would be wrong. Clone it before modifying it.");
  return tensor_;
}

Tensor record(const char* name, const std::vector<Tensor>& inputs, Tensor output, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->layer = profiler::current_layer();
  node->backward = std::move(backward);
  for (const Tensor& in : inputs) {
    Edge edge;
    if (in.requires_grad()) edge.node = in.is_leaf() ? accumulator_for(in) : in.grad_fn();
    node->next.push_back(edge);
    node->input_shapes.push_back(in.shape());
    node->input_dtypes.push_back(in.dtype());
  }
  TensorImpl* out = output.impl();
  out->requires_grad = true;
  out->grad_fn = std::move(node);
  return output;
}

}  // namespace lory
