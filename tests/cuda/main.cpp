// The doctest runner for lory_cuda_tests (tests/cuda/*.cpp). Without a GPU
// there is nothing to test: it says so and exits 77, which ctest reports as
// "skipped" (SKIP_RETURN_CODE 77), so a CPU-only machine stays green.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tensor/backend.h"

int main(int argc, char** argv) {
  if (!lory::cuda_is_available()) {
    std::printf("no CUDA GPU present: CUDA tests skipped\n");
    return 77;
  }
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
