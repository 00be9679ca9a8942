// cpu_backend.cpp — host memory and the one CpuBackend instance.
#include "tensor/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>

#include "tensor/error.h"

namespace lory {

namespace {
// A cache line, and the widest vector load (AVX-512): Eigen maps of our
// buffers may then use aligned loads at the start of every tensor.
constexpr size_t kAlignment = 64;
}  // namespace

void* CpuBackend::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  // std::aligned_alloc requires the size to be a multiple of the alignment.
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  LORY_CHECK(p != nullptr, "cpu: out of host memory allocating ", nbytes, " bytes");
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t) { std::free(ptr); }

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
