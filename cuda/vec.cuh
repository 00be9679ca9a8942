// vec.cuh — 128-bit loads and stores of 16-bit and 32-bit elements.
//
// A memory-bound kernel on an H100 reaches its ~3 TB/s only when each thread
// moves 16 bytes per instruction (one LDG.128): 8 bf16 or 4 f32 values. Vec<T>
// is that bundle; a row qualifies when its start address and its length in
// bytes are multiples of 16, which can_vectorize() checks on the host.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "cuda/element.cuh"

namespace lory::cuda {

template <typename T>
struct alignas(16) Vec {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

// Every pointer given is 16-byte aligned (a Vec<T> load or a cp.async of 16 bytes may start there).
inline bool aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Elements of a row of length n at p can be read as Vec<T> (each row of a
// contiguous [R, n] matrix, when every pointer given is aligned too).
template <typename T>
inline bool can_vectorize(int64_t n, std::initializer_list<const void*> ptrs) {
  return sizeof(T) <= 8 && (n * static_cast<int64_t>(sizeof(T))) % 16 == 0 && aligned16(ptrs);
}

template <typename T>
__device__ __forceinline__ Vec<T> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}
template <typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T>& v) {
  *reinterpret_cast<Vec<T>*>(p) = v;
}

}  // namespace lory::cuda
