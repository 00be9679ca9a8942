// engine.cpp — walking the graph backwards (run_backward); ops record it (tensor/graph.cpp).
#include <algorithm>
#include <unordered_map>

#include "autograd/engine.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace lory {

namespace {

// Nodes reachable from root, ordered so that every node comes after all the
// nodes that feed gradient into it (reverse of a DFS post-order).
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_map<Node*, bool> visited;
  // Iterative DFS: (node, index of the next edge to visit).
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  visited[root] = true;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->next.size()) {
      Node* child = node->next[next++].node.get();
      if (child && !visited[child]) {
        visited[child] = true;
        stack.emplace_back(child, 0);
      }
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  std::reverse(post_order.begin(), post_order.end());
  return post_order;
}

LeafGradHook& leaf_grad_hook() {
  static LeafGradHook hook;
  return hook;
}

void accumulate_into_leaf(Node* node, const Tensor& grad) {
  TensorImpl* leaf = node->leaf.get();
  Tensor g = grad.to(leaf->dtype);
  if (leaf->grad) {
    // In place, as PyTorch does: a trainer may have made .grad a view of a
    // flat gradient buffer (train/flat_parameters.h), which must keep it.
    Tensor(leaf->grad).add_(g);
    return;
  } else {
    // Own the buffer: the incoming gradient may be the caller's seed, another
    // leaf's gradient (add hands the same tensor to both inputs) or a view;
    // an optimizer updates .grad in place, so it must alias nothing.
    g = g.clone();
  }
  leaf->grad = g.impl_ptr();
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  // Profiling: the sweep is one region (its own time is the ordering and
  // bookkeeping); each Node's backward, and adding what it returns into the
  // gradients pending for its inputs, is timed under the Node's name and the
  // layer type it was recorded in.
  profiler::Region sweep("autograd_engine", profiler::Phase::backward);
  LORY_CHECK(root.defined(), "backward: called on an undefined tensor");
  LORY_CHECK(root.requires_grad(), "backward: tensor ", root.describe(),
             " does not require grad and has no grad_fn (did the computation run under NoGradGuard, or do no inputs "
             "require grad?)");
  Tensor seed = gradient;
  if (!seed.defined()) {
    LORY_CHECK(root.numel() == 1, "backward: a gradient must be given for non-scalar output ", root.describe(),
               " (backward() without arguments is only for outputs with one element)");
    seed = ones(root.shape(), {root.dtype(), root.device(), false});
  }
  LORY_CHECK(seed.shape() == root.shape(), "backward: gradient ", seed.describe(), " does not match output ",
             root.describe());

  NoGradGuard no_grad;  // backward formulas build no graph (no double backward)
  std::shared_ptr<Node> root_node = root.is_leaf() ? accumulator_for(root) : root.grad_fn();

  std::unordered_map<Node*, Tensor> pending;  // summed incoming gradient per node
  pending[root_node.get()] = seed;
  for (Node* node : topological_order(root_node.get())) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;  // no gradient reached this node
    const Tensor grad = it->second;
    pending.erase(it);
    if (node->is_accumulator()) {
      {
        profiler::NodeScope timed(node->name, node->layer);
        accumulate_into_leaf(node, grad);
      }
      if (leaf_grad_hook()) leaf_grad_hook()(*node->leaf);
      continue;
    }
    profiler::NodeScope timed(node->name, node->layer);
    LORY_CHECK(!node->released, "backward: trying to backward through the graph a second time (", node->name,
               " already freed its saved tensors); pass retain_graph=true to the first backward() if you need to "
               "call it twice");
    std::vector<Tensor> input_grads = node->backward(grad);
    LORY_CHECK(input_grads.size() == node->next.size(), "backward: ", node->name, " returned ", input_grads.size(),
               " gradients for ", node->next.size(), " inputs");
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].node.get();
      if (!next || !input_grads[i].defined()) continue;
      Tensor g = input_grads[i];
      LORY_CHECK(g.shape() == node->input_shapes[i], "backward: ", node->name, " produced gradient ", g.describe(),
                 " for input ", i, " of shape ", shape_str(node->input_shapes[i]));
      if (g.dtype() != node->input_dtypes[i]) g = g.to(node->input_dtypes[i]);
      auto [slot, inserted] = pending.try_emplace(next, g);
      if (!inserted) slot->second = add(slot->second, g);
    }
    if (!retain_graph) node->release();
  }
}

void set_leaf_grad_hook(LeafGradHook hook) { leaf_grad_hook() = std::move(hook); }

// Declared in tensor/tensor.h; defined here, in the layer that owns the sweep.
void Tensor::backward(const Tensor& gradient, bool retain_graph) const { run_backward(*this, gradient, retain_graph); }

}  // namespace lory
