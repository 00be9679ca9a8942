// engine.h — the reverse sweep over the graph that ops record (tensor/graph.h).
//
// Tensor::backward() (tensor/tensor.h) is the usual entry point and calls
// run_backward; both are defined in autograd/engine.cpp.
#pragma once

#include <functional>

#include "tensor/graph.h"
#include "tensor/tensor.h"

namespace lory {

// Walks the graph from `root` in reverse topological order, calling each
// Node's backward once with the sum of the gradients that reached it, and
// accumulating into the leaves' .grad. `gradient` defaults to ones for a
// one-element root. Without retain_graph, every visited Node is released.
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

// Called by the sweep each time it has added a leaf's gradient into its
// .grad: in one backward every leaf's accumulator runs once, with the sum of
// what reached it, so at that moment the leaf's gradient for this backward is
// final. Data parallelism uses it to start reducing a bucket of gradients
// while backward goes on (train/gradient_reducer.h). One hook per process;
// an empty function removes it. Only for the thread that runs backward.
using LeafGradHook = std::function<void(const TensorImpl& leaf)>;
void set_leaf_grad_hook(LeafGradHook hook);

}  // namespace lory
