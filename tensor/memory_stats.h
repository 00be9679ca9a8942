// memory_stats.h — how many bytes of host memory tensors hold: now, and at
// most since the last reset. The CPU backend counts every allocation it makes
// for a Storage (tensor/cpu/cpu_backend.cpp), so a test can measure what a
// forward keeps for backward, or the peak of a training step, on the CPU.
// (GPU memory has its own statistics in the CUDA caching allocator,
// cuda/caching_allocator.h.)
//
// Counted: the bytes each Storage asked for (not the 64-byte rounding of the
// allocation, not malloc's bookkeeping). Not counted: memory kernels take
// for themselves (std::vector scratch, Eigen's GEMM blocks, OpenMP stacks),
// and freed blocks of 1 MiB or more that the backend keeps to reuse
// (cached_bytes; at most the peak of live bytes, cpu_backend.cpp says why).
// The counters are atomics: cheap, and correct when tensors are created and
// freed on several threads.
#pragma once

#include <cstdint>

namespace lory {

struct HostMemoryStats {
  int64_t live_bytes = 0;   // held by CPU tensors now
  int64_t peak_bytes = 0;   // the most live_bytes has been since the last reset_host_memory_peak()
  int64_t allocations = 0;  // CPU storage allocations so far
  int64_t cached_bytes = 0; // freed large blocks kept for reuse (not live)
};

HostMemoryStats host_memory_stats();
// Starts a new peak from what is live now (to measure one step or one forward).
void reset_host_memory_peak();
// Returns the cached free blocks to the C library (RSS drops by cached_bytes).
void release_cached_host_memory();

}  // namespace lory
