// segment_routing.h — which routing distribution each segment uses (paper
// §3.1, eq. (3)), shared by the Lory layer and the segment-level Expert
// Choice baseline (which routes "with our segment routing strategy", §5.3).
//
// Given every segment's own distribution p_k = Softmax(R(h̄_k)), [B, N, E]:
//   causal_segment  segment k (k > 1) uses p_{k-1}, the segment before it, so
//                   no token is routed by information from its own segment or
//                   later; segment 1 uses p_1 behind a stop-gradient (the
//                   text after eq. (3)), or 1/E when first = uniform
//   prefix          every segment uses segment 1's p_1 (§5.1 ablation);
//                   segment 1 itself as above
#pragma once

#include "nn/config.h"
#include "tensor/tensor.h"

namespace lory::nn {

// probs: [B, N, E] -> [B, N, E], the distribution segment k is routed by.
Tensor causal_segment_routing(const Tensor& probs, FirstSegment first, TrainingRouting routing);

}  // namespace lory::nn
