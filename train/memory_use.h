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
// The most tensor memory live on `device` at once so far (since the last reset).
int64_t peak_tensor_bytes(Device device);
// Starts a new tensor-memory peak on `device` from what is live now (to
// measure one phase of a run, e.g. the training steps of one model).
void reset_peak_tensor_bytes(Device device);
// The process's peak resident set (getrusage) since it started or the last
// reset_peak_rss().
int64_t peak_rss_bytes();
// Starts a new RSS peak from the current resident set (Linux: "5" written to
// /proc/self/clear_refs). False where the kernel does not allow it; the
// peak then stays the process's.
bool reset_peak_rss();

}  // namespace lory::train
