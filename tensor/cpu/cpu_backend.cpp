// cpu_backend.cpp — host memory and the one CpuBackend instance.
#include "tensor/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "tensor/error.h"
#include "tensor/memory_stats.h"

namespace lory {

namespace {
// A cache line, and the widest vector load (AVX-512): Eigen maps of our
// buffers may then use aligned loads at the start of every tensor.
constexpr size_t kAlignment = 64;

// The counters behind host_memory_stats() (tensor/memory_stats.h).
std::atomic<int64_t> live_bytes{0}, peak_bytes{0}, allocations{0};

void count_allocation(int64_t nbytes) {
  const int64_t live = live_bytes.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
  allocations.fetch_add(1, std::memory_order_relaxed);
  int64_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (live > peak && !peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

// Large blocks are kept for reuse instead of being returned to the C
// library. glibc serves every allocation above its mmap threshold (at most
// 32 MiB) with a fresh mmap and unmaps it on free, so a training step that
// allocates the same 64 MiB logits gradient every step pays for 16k page
// faults (the kernel zeroing each page) every step: measured 19 ms of a
// 6 ms cross-entropy backward, and 11% of a dense step. A step allocates the
// same sizes every time, so a cache of freed blocks by (rounded) size finds
// them again, like the CUDA caching allocator but without splitting blocks.
//
// Only blocks of kCachedMinBytes or more (rounded up to kCachedGranule) are
// cached, and the cache never holds more than the peak of live tensor bytes
// (what one step needed at once), so a run's RSS grows by at most its peak
// of large temporaries; a block that does not fit is freed at once.
constexpr size_t kCachedMinBytes = size_t{1} << 20, kCachedGranule = size_t{64} << 10;
size_t cached_size(size_t nbytes) { return (nbytes + kCachedGranule - 1) / kCachedGranule * kCachedGranule; }

struct BlockCache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  size_t cached_bytes = 0;
};
BlockCache& block_cache() {
  static auto* cache = new BlockCache;  // never destroyed: tensors may outlive static destructors
  return *cache;
}
}  // namespace

HostMemoryStats host_memory_stats() {
  HostMemoryStats stats{live_bytes.load(std::memory_order_relaxed), peak_bytes.load(std::memory_order_relaxed),
                        allocations.load(std::memory_order_relaxed), 0};
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  stats.cached_bytes = static_cast<int64_t>(cache.cached_bytes);
  return stats;
}

void reset_host_memory_peak() {
  peak_bytes.store(live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void* CpuBackend::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  void* p = nullptr;
  if (nbytes >= kCachedMinBytes) {
    const size_t rounded = cached_size(nbytes);
    BlockCache& cache = block_cache();
    {
      std::lock_guard<std::mutex> lock(cache.mutex);
      if (auto it = cache.free_blocks.find(rounded); it != cache.free_blocks.end()) {
        p = it->second;
        cache.free_blocks.erase(it);
        cache.cached_bytes -= rounded;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(kAlignment, rounded);
  } else {
    // std::aligned_alloc requires the size to be a multiple of the alignment.
    p = std::aligned_alloc(kAlignment, (nbytes + kAlignment - 1) / kAlignment * kAlignment);
  }
  LORY_CHECK(p != nullptr, "cpu: out of host memory allocating ", nbytes, " bytes");
  count_allocation(static_cast<int64_t>(nbytes));
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  live_bytes.fetch_sub(static_cast<int64_t>(nbytes), std::memory_order_relaxed);
  if (nbytes >= kCachedMinBytes) {
    const size_t rounded = cached_size(nbytes);
    const size_t limit = static_cast<size_t>(std::max<int64_t>(0, peak_bytes.load(std::memory_order_relaxed)));
    BlockCache& cache = block_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.cached_bytes + rounded <= limit) {
      cache.free_blocks.emplace(rounded, ptr);
      cache.cached_bytes += rounded;
      return;
    }
  }
  std::free(ptr);
}

void release_cached_host_memory() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& [size, block] : cache.free_blocks) std::free(block);
  cache.free_blocks.clear();
  cache.cached_bytes = 0;
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace lory
