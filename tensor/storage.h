// storage.h — a block of device memory that one or more tensors view.
//
// Views (reshape, permute, narrow, ...) share one Storage; the tensor's shape,
// strides and offset say which elements it sees. Memory comes from the
// device's Backend (tensor/backend.h): the CPU backend uses aligned host
// memory, the CUDA backend a caching allocator, so freeing here is cheap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace lory {

struct Storage {
  // Allocates nbytes on device through its backend.
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  // Bumped by every in-place write to this storage, through any view.
  // Autograd records it when an op saves a tensor for backward and checks it
  // again in backward, so "modified after being saved" is an error, not a
  // silently wrong gradient.
  std::atomic<uint64_t> version{0};
};

}  // namespace lory
