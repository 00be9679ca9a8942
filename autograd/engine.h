// engine.h — the reverse sweep over the graph that ops record (tensor/graph.h).
//
// Tensor::backward() (tensor/tensor.h) is the usual entry point and calls
// run_backward; both are defined in autograd/engine.cpp.
#pragma once

#include "tensor/graph.h"
#include "tensor/tensor.h"

namespace lory {

// Walks the graph from `root` in reverse topological order, calling each
// Node's backward once with the sum of the gradients that reached it, and
// accumulating into the leaves' .grad. `gradient` defaults to ones for a
// one-element root. Without retain_graph, every visited Node is released.
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace lory
