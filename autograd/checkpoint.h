// checkpoint.h — activation recomputation ("gradient checkpointing"):
// trade compute for memory by not keeping a block's intermediate tensors.
//
// checkpoint(fn, x) runs y = fn(x) with grad mode off, so none of fn's
// intermediates (attention probabilities, FFN activations, ...) are saved;
// it keeps only x. Its backward runs fn(x) again with grad mode on and
// back-propagates dy through that fresh graph: the gradients of the
// parameters fn uses accumulate into their .grad as usual, and the gradient
// of x flows on to the rest of the graph. Memory per block drops from all of
// its activations to its input, at the price of a second forward (about a
// third more compute in training).
//
// fn must compute the same values both times: it may use parameters and
// deterministic ops, not draw random numbers from the global generator.
#pragma once

#include <functional>

#include "tensor/tensor.h"

namespace lory {

using BlockFn = std::function<Tensor(const Tensor&)>;

// y = fn(x), recomputed in backward. Without grad mode it is just fn(x).
Tensor checkpoint(const BlockFn& fn, const Tensor& x);

}  // namespace lory
