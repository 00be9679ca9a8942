// The seams between layers that the build cannot check by itself.
#include <doctest/doctest.h>

#include "tensor/backend.h"
#include "tensor/error.h"

using namespace lory;

// cuda/ registers its Backend with tensor/ when the program loads, so it must
// be linked whole: were its objects dropped, a CUDA build would behave as a
// CPU-only one and say "no CUDA support" instead of naming the missing GPU.
TEST_CASE("the CUDA backend is registered exactly in CUDA builds") {
  if (cuda_is_available()) {
    CHECK(cuda_device_count() > 0);
    CHECK(cuda_backend(0).device() == Device{DeviceType::cuda, 0});
    return;
  }
  std::string message;
  try {
    cuda_backend(0);
  } catch (const Error& e) {
    message = e.what();
  }
#ifdef LORY_HAVE_CUDA
  CHECK(message.find("no CUDA device is available") != std::string::npos);
#else
  CHECK(message.find("this build has no CUDA support") != std::string::npos);
#endif
  CHECK(cuda_device_count() == 0);
}
