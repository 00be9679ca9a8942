// memory_use.h — what a rank actually holds, next to what memory_plan.h
// predicts: the flat buffers and optimizer state counted from the tensors
// themselves, and the peak of all tensor memory on the run's device (the
// CPU tensor counters, tensor/memory_stats.h, or the CUDA caching
// allocator's peak) and of the process (RSS).
#pragma once

#include <cstdint>

#include "tensor/device.h"
#include "train/memory_plan.h"
#include "train/zero_optimizer.h"

namespace lory::train {

// The bytes `zero` holds, in memory_plan.h's categories (activations: 0).
MemoryPlan held_memory(const ZeroOptimizer& zero);
// The most tensor memory live on `device` at once so far.
int64_t peak_tensor_bytes(Device device);
// The process's peak resident set (getrusage).
int64_t peak_rss_bytes();

}  // namespace lory::train
