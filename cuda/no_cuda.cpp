// no_cuda.cpp — the CUDA entry points of a build without CUDA.
//
// Compiled instead of cuda/*.cu when the toolkit is missing or -DLORY_CUDA=OFF,
// so the rest of the engine needs no #ifdef: asking for a CUDA device fails
// with a message that says why, and the availability checks say "no".
#include "tensor/backend.h"
#include "tensor/error.h"

namespace lory {

Backend& cuda_backend(int) {
  fail("cuda: this build has no CUDA support (the CUDA toolkit was not found at configure time, or -DLORY_CUDA=OFF)");
}

bool cuda_is_available() { return false; }

int cuda_device_count() { return 0; }

}  // namespace lory
