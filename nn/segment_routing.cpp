// segment_routing.cpp — see segment_routing.h.
#include "nn/segment_routing.h"

#include "tensor/ops.h"

namespace lory::nn {

Tensor causal_segment_routing(const Tensor& probs, FirstSegment first_segment, TrainingRouting routing) {
  LORY_CHECK(probs.dim() == 3, "causal_segment_routing: probs must be [B, N, E], got ", probs.describe());
  const int64_t B = probs.size(0), N = probs.size(1), E = probs.size(2);
  // Segment 1: its own weights behind a stop-gradient on the router side
  // (the text after eq. (3)), or the plain expert average, strictly causal.
  const Tensor first = first_segment == FirstSegment::uniform
                           ? full({B, 1, E}, 1.0 / static_cast<double>(E), {probs.dtype(), probs.device(), false})
                           : probs.narrow(1, 0, 1).detach();
  if (N == 1) return first;
  if (routing == TrainingRouting::prefix)  // §5.1: segment 1 decides for all
    return cat({first, probs.narrow(1, 0, 1).expand({B, N - 1, E})}, 1);
  // The causal shift of eq. (3): segment k (k > 1) uses p_{k-1}.
  return cat({first, probs.narrow(1, 0, N - 1)}, 1);
}

}  // namespace lory::nn
