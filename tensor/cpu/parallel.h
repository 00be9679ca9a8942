// parallel.h — OpenMP work splitting for the CPU kernels.
//
// parallel_for(begin, end, grain, f) calls f(b, e) on disjoint sub-ranges that
// cover [begin, end), on up to OMP_NUM_THREADS threads. Ranges shorter than
// `grain` items, and calls made from inside another parallel region (a kernel
// called per batch by another kernel), run on the calling thread: starting a
// team costs a few microseconds, more than a small loop.
//
// Which thread gets which range depends on the thread count, so a kernel must
// not let the partition change its result. Elementwise kernels are immune;
// reductions that split a sum across threads first cut it into blocks of a
// fixed size (independent of the thread count), sum each block, and add the
// block sums in order, so the result is the same on 1 or 64 threads.
//
// An exception thrown by f on a worker thread cannot leave an OpenMP region
// (std::terminate), so it is caught there and rethrown on the calling thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

// Asks the compiler to vectorise the loop that follows (GCC at -O2 otherwise
// only vectorises loops whose trip count it knows). Only on loops with no
// cross-iteration dependence, no aliasing between what they read and write
// at different iterations, and nothing that can throw.
// LORY_SIMD_SUM(acc) is the same for a loop that sums into acc: the lanes
// hold partial sums, combined in a fixed order, so the result depends only on
// the length and the build, never on threads.
#define LORY_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define LORY_SIMD LORY_PRAGMA(omp simd)
#define LORY_SIMD_SUM(acc) LORY_PRAGMA(omp simd reduction(+ : acc))
#else
#define LORY_SIMD
#define LORY_SIMD_SUM(acc)
#endif

namespace lory::cpu {

// Below this many elements an elementwise loop is not worth a thread team.
constexpr int64_t kParallelGrain = 32768;

inline int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// The grain (items per chunk) for items that each cost `cost` elements of work.
inline int64_t grain_for(int64_t cost) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, cost)); }

template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t threads = std::min<int64_t>(max_threads(), (n + grain - 1) / std::max<int64_t>(1, grain));
  if (threads <= 1) {
    f(begin, end);
    return;
  }
#ifdef _OPENMP
  std::exception_ptr error;
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const int64_t team = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t chunk = (n + team - 1) / team;
    const int64_t b = begin + tid * chunk, e = std::min(end, b + chunk);
    if (b < e) {
      try {
        f(b, e);
      } catch (...) {
#pragma omp critical(lory_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
#else
  f(begin, end);
#endif
}

}  // namespace lory::cpu
