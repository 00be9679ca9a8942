// hash.h — the two hashes behind every deterministic choice of the data path.
#pragma once

#include <cstdint>
#include <string>

namespace lory::corpus {

// FNV-1a, 64 bits: orders and splits documents by their names.
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// splitmix64 (Steele, Lea, Flood 2014): hashes integers (features, seeds)
// and drives the seeded shuffles.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace lory::corpus
