// caching_allocator.h — device memory for tensors without a cudaMalloc per op.
//
// cudaMalloc and cudaFree are slow (cudaFree synchronises the whole device),
// and a training step allocates and frees the same activation sizes every
// step. So a freed block is not returned to CUDA but kept in a free list, and
// the next request of (nearly) the same size reuses it: after the first step
// no op calls cudaMalloc.
//
//   * Sizes are rounded up: to a multiple of 512 B up to 1 MiB, to a multiple
//     of 2 MiB above, so shapes that differ by a little share blocks.
//   * Free blocks sit in a multimap keyed by size. A request takes the
//     smallest cached block that fits if that wastes at most 1/8 of the
//     request (blocks are never split: simple, and the waste is bounded).
//   * When cudaMalloc fails, every cached block is freed and the malloc is
//     tried once more; if that fails too the error names the request and the
//     allocated and cached totals, which is what a user needs to decide
//     between a smaller batch and a leak hunt.
//
// The backend uses a single stream per device (cuda/stream.h), so a block
// freed on the host while kernels that use it are still queued can be handed
// out at once: any later use is queued behind them on the same stream. With
// several streams this would need an event per block (PyTorch's
// recordStream); we do not need that yet.
//
// This header is free of CUDA types so that tests compiled as plain C++ can
// read the statistics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

namespace lory::cuda {

struct AllocatorStats {
  size_t allocated_bytes = 0;  // in blocks handed out (rounded sizes)
  size_t cached_bytes = 0;     // in free blocks kept for reuse
  size_t peak_allocated_bytes = 0;
  uint64_t device_mallocs = 0;  // cudaMalloc calls that succeeded
  uint64_t device_frees = 0;    // cudaFree calls (only when the cache is released)
  uint64_t allocations = 0;     // allocate() calls
  uint64_t cache_hits = 0;      // allocate() calls served from the cache
  size_t reserved_bytes() const { return allocated_bytes + cached_bytes; }
};

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  // The cache is deliberately not released on destruction: allocators live
  // as long as the process (see cuda_backend.cu), and cudaFree from a static
  // destructor may run after the CUDA runtime has shut down.
  ~CachingAllocator() = default;

  // A block of at least nbytes on this allocator's device; nullptr for 0 bytes.
  void* allocate(size_t nbytes);
  // Returns a block from allocate() to the cache. Never throws (it runs in
  // Storage's destructor); an unknown pointer is reported on stderr.
  void deallocate(void* ptr);
  // cudaFree every cached block (e.g. before handing memory to another library).
  void release_cached();
  AllocatorStats stats() const;
  // Starts a new peak from what is allocated now (to measure one step or one op).
  void reset_peak();

  // The size a request of nbytes occupies.
  static size_t round_size(size_t nbytes);

  static constexpr size_t kSmallRound = 512;
  static constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
  static constexpr size_t kLargeRound = size_t{2} << 20;  // 2 MiB

 private:
  void release_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;  // size -> block
  std::unordered_map<void*, size_t> in_use_;  // block -> size
  AllocatorStats stats_;
};

}  // namespace lory::cuda
