// philox.h — the counter-based random number generator of the engine
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
//
// Philox4x32-10 maps (key, counter) to four 32-bit words with ten rounds of
// multiply/xor. No state is carried from one number to the next, so element i
// of a random tensor is a pure function of (seed, offset, i): any thread on
// any device computes it independently, and CPU and CUDA agree. This header
// is included by both the CPU kernels and the CUDA kernels.
//
// Element i of a tensor drawn with (seed, offset) uses counter offset + i/4
// and word i%4 of the result:
//   uniform: u = (word >> 8) * 2^-24, in [0, 1), 24 random bits (exact in f32);
//   normal:  Box-Muller on the word pair (2*(i%4/2), 2*(i%4/2)+1): even words
//            take r*cos(2*pi*u2), odd words r*sin(2*pi*u2), computed in f64.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LORY_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LORY_HOST_DEVICE inline
#endif

namespace lory::philox {

struct Words {
  uint32_t w[4];
};

LORY_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on a 128-bit counter with a 64-bit key (k0, k1),
// exactly as Random123's philox4x32_10.
LORY_HOST_DEVICE Words philox4x32_10(Words ctr, uint32_t k0, uint32_t k1) {
  uint32_t c0 = ctr.w[0], c1 = ctr.w[1], c2 = ctr.w[2], c3 = ctr.w[3];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;  // the Weyl sequence that varies the key per round
    k1 += 0xBB67AE85u;
  }
  return Words{{c0, c1, c2, c3}};
}

// The engine's use: a 64-bit counter (upper counter words 0) and a 64-bit seed.
LORY_HOST_DEVICE Words philox4x32_10(uint64_t counter, uint64_t key) {
  const Words ctr{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_10(ctr, static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32));
}

LORY_HOST_DEVICE double word_to_unit(uint32_t word) {  // [0, 1)
  return static_cast<double>(word >> 8) * (1.0 / 16777216.0);
}

// The uniform [0, 1) number of element i.
LORY_HOST_DEVICE double uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
  const Words r = philox4x32_10(offset + i / 4, seed);
  return word_to_unit(r.w[i % 4]);
}

// The standard normal number of element i.
LORY_HOST_DEVICE double normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
  const Words r = philox4x32_10(offset + i / 4, seed);
  const unsigned lane = static_cast<unsigned>(i % 4), pair = lane / 2;
  const double u1 = word_to_unit(r.w[2 * pair]) + 0.5 / 16777216.0;  // (0, 1): log is finite
  const double u2 = word_to_unit(r.w[2 * pair + 1]);
  const double radius = ::sqrt(-2.0 * ::log(u1));
  const double angle = 6.283185307179586 * u2;
  return (lane % 2 == 0) ? radius * ::cos(angle) : radius * ::sin(angle);
}

// How far a draw of n elements advances the generator's offset.
LORY_HOST_DEVICE uint64_t offset_advance(uint64_t n) { return (n + 3) / 4; }

}  // namespace lory::philox
