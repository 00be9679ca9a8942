// checkpoint.cpp — see checkpoint.h.
#include "autograd/checkpoint.h"

#include "tensor/graph.h"

namespace lory {

Tensor checkpoint(const BlockFn& fn, const Tensor& x) {
  if (!grad_mode_enabled()) return fn(x);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = fn(x);
  }
  // The node is recorded even when x needs no gradient (the first block's
  // input may be a constant): the parameters inside fn still do.
  const bool x_needs_grad = x.requires_grad();
  SavedTensor saved_x(x);
  return record("CheckpointBackward", {x}, y, [fn, saved_x, x_needs_grad](const Tensor& dy) {
    Tensor x_again = saved_x.get("CheckpointBackward").detach();
    if (x_needs_grad) x_again.set_requires_grad(true);
    Tensor y_again;
    {
      GradModeGuard grad_on(true);
      y_again = fn(x_again);
    }
    // The nested sweep accumulates into fn's parameters and into x_again.
    if (y_again.requires_grad()) y_again.backward(dy);
    return std::vector<Tensor>{x_needs_grad ? x_again.grad() : Tensor()};
  });
}

}  // namespace lory
