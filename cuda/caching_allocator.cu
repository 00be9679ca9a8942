// caching_allocator.cu — the free lists and the cudaMalloc fallback.
#include <algorithm>
#include <cstdio>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace lory::cuda {

namespace {
std::string mib(size_t bytes) {
  return std::to_string(bytes / (1 << 20)) + "." + std::to_string((bytes % (1 << 20)) * 10 / (1 << 20)) + " MiB";
}
}  // namespace

size_t CachingAllocator::round_size(size_t nbytes) {
  const size_t unit = nbytes <= kSmallLimit ? kSmallRound : kLargeRound;
  return std::max<size_t>(unit, (nbytes + unit - 1) / unit * unit);
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.allocations++;

  // Smallest cached block >= size, accepted if it wastes at most size/8.
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first - size <= size / 8) {
    const size_t block = it->first;
    void* ptr = it->second;
    free_blocks_.erase(it);
    stats_.cached_bytes -= block;
    stats_.allocated_bytes += block;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    stats_.cache_hits++;
    in_use_.emplace(ptr, block);
    return ptr;
  }

  ensure_device(device_);
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size);
  if (err == cudaErrorMemoryAllocation && !free_blocks_.empty()) {
    (void)cudaGetLastError();  // clear the error so later checks do not see it
    release_cached_locked();
    err = cudaMalloc(&ptr, size);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    fail("cuda:", device_, ": out of memory: cannot allocate ", nbytes, " bytes (", mib(size), " rounded); ",
         mib(stats_.allocated_bytes), " are allocated to tensors and ", mib(stats_.cached_bytes),
         " cached by the allocator (cudaMalloc: ", cudaGetErrorString(err), ")");
  }
  stats_.device_mallocs++;
  stats_.allocated_bytes += size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  in_use_.emplace(ptr, size);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(ptr);
  if (it == in_use_.end()) {
    std::fprintf(stderr, "lory: cuda:%d caching allocator: free of unknown pointer %p ignored\n", device_, ptr);
    return;
  }
  const size_t size = it->second;
  in_use_.erase(it);
  stats_.allocated_bytes -= size;
  stats_.cached_bytes += size;
  free_blocks_.emplace(size, ptr);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  ensure_device(device_);
  // cudaFree waits for the device, so blocks still used by queued kernels are
  // not released under them.
  for (const auto& [size, ptr] : free_blocks_) {
    CUDA_CHECK(cudaFree(ptr));
    stats_.cached_bytes -= size;
    stats_.device_frees++;
  }
  free_blocks_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

}  // namespace lory::cuda
