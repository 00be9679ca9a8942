// cpu_backend.cpp — host memory and the one CpuBackend instance.
#include "tensor/cpu/cpu_backend.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

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
}  // namespace

HostMemoryStats host_memory_stats() {
  return {live_bytes.load(std::memory_order_relaxed), peak_bytes.load(std::memory_order_relaxed),
          allocations.load(std::memory_order_relaxed)};
}

void reset_host_memory_peak() {
  peak_bytes.store(live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void* CpuBackend::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  // std::aligned_alloc requires the size to be a multiple of the alignment.
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  LORY_CHECK(p != nullptr, "cpu: out of host memory allocating ", nbytes, " bytes");
  count_allocation(static_cast<int64_t>(nbytes));
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  std::free(ptr);
  live_bytes.fetch_sub(static_cast<int64_t>(nbytes), std::memory_order_relaxed);
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
