// graph.h — the autograd graph: what an op records so that backward can run.
//
// Recording is part of every op (tensor/ops/), so the graph lives here, in the
// tensor layer; walking it backwards is autograd's job (autograd/engine.cpp),
// one layer up. This split is MLX's: the array keeps its inputs and vjp, the
// transforms live elsewhere. Tensor::backward is declared in tensor.h and
// defined by the autograd layer, which every program that calls it links.
//
// Reverse mode in one paragraph (micrograd's idea, PyTorch's shape): when an
// op runs on inputs that require grad, it creates a Node that remembers
//   * `next`: for each input, where that input's gradient goes — the Node
//     that produced the input, or the input itself if it is a leaf;
//   * `backward`: a function from the gradient of the op's output to the
//     gradients of its inputs, written with ordinary ops or, for a few fused
//     ops, a backward kernel every backend has (so it runs on any device),
//     and capturing, as SavedTensors, the values it needs.
// The output tensor points at its Node (grad_fn). Tensor::backward() then
// walks the graph from the output in reverse topological order, calling each
// backward once with the sum of the gradients that reached it
// (autograd/engine.cpp).
//
// Every op has exactly one output; ops that make several (split, chunk) are
// built from single-output views, so one gradient flows into each Node.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lory {

// A tensor an op keeps for its backward. It holds a detached alias (same
// storage, no grad_fn, so an op can save its own output without a reference
// cycle) and the storage version at save time: if anything writes to the
// storage in place before backward, get() throws instead of returning values
// that are no longer the ones the forward used.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  // `op` names the Node in the error message.
  const Tensor& get(const char* op) const;
  bool defined() const { return tensor_.defined(); }

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
};

// grads of the inputs (undefined where an input needs none) from the grad of the output.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node;

// Where one input's gradient goes.
struct Edge {
  std::shared_ptr<Node> node;  // null when that input does not require grad
};

struct Node {
  std::string name;                  // "MulBackward"
  const char* layer = nullptr;       // the layer type the op ran in, when profiling (tensor/profiler.h)
  std::vector<Edge> next;            // one per input of the op
  std::vector<Shape> input_shapes;   // the engine checks each returned grad against these
  std::vector<DType> input_dtypes;   // and casts the grad to the input's dtype
  BackwardFn backward;               // empty for AccumulateGrad nodes and after release()
  std::shared_ptr<TensorImpl> leaf;  // set only on an AccumulateGrad node: the leaf to accumulate into
  bool released = false;             // true after a backward that did not retain the graph

  bool is_accumulator() const { return leaf != nullptr; }
  // Frees the saved tensors (they live in the backward closure).
  void release() {
    backward = nullptr;
    released = true;
  }
};

// ---- grad mode ----
bool grad_mode_enabled();
// While alive, ops record no graph (PyTorch's torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// While alive, grad mode is `enabled` (backward of a recomputed block turns it
// back on inside the engine's no-grad sweep; autograd/checkpoint.h).
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any of the inputs requires grad: the test an
// op makes before building a Node.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Makes `output` the result of a differentiable op: gives it a Node named
// `name` with one Edge per input and the backward function. Call only when
// any_requires_grad(inputs) is true. Returns output.
Tensor record(const char* name, const std::vector<Tensor>& inputs, Tensor output, BackwardFn backward);

// The AccumulateGrad Node a leaf's gradient flows into: one per leaf, shared by
// all its uses in a graph, so a leaf used twice receives the sum of both.
std::shared_ptr<Node> accumulator_for(const Tensor& leaf);

}  // namespace lory
