// kernel_error.cu — the pinned slots of cuda/kernel_error.h and their messages.
#include <mutex>
#include <string>
#include <vector>

#include "cuda/check.h"
#include "cuda/kernel_error.h"
#include "cuda/stream.h"
#include "tensor/error.h"

namespace lory::cuda {

namespace {

struct Slot {
  KernelError* host = nullptr;    // what the host reads
  KernelError* device = nullptr;  // the same memory, as kernels address it
};

std::mutex slots_mutex;
std::vector<Slot>& slots() {
  static auto* s = new std::vector<Slot>();  // never destroyed (see cuda_backend.cu)
  return *s;
}

// A copy of the device's slot pointers (created on first use): copied under
// the lock, since another thread may grow the vector right after.
Slot slot_for(int device) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  auto& all = slots();
  if (static_cast<int>(all.size()) <= device) all.resize(static_cast<size_t>(device) + 1);
  Slot& s = all[static_cast<size_t>(device)];  // reference valid while the lock is held
  if (s.host == nullptr) {
    ensure_device(device);
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, sizeof(KernelError), cudaHostAllocMapped));
    s.host = static_cast<KernelError*>(p);
    *s.host = KernelError{};
    void* d = nullptr;
    CUDA_CHECK(cudaHostGetDevicePointer(&d, p, 0));
    s.device = static_cast<KernelError*>(d);
  }
  return s;
}

}  // namespace

KernelError* kernel_error_slot(int device) { return slot_for(device).device; }

void throw_if_kernel_error(int device) {
  std::unique_lock<std::mutex> lock(slots_mutex);
  if (static_cast<int>(slots().size()) <= device) return;  // no kernel ever asked for the slot
  volatile KernelError* e = slots()[static_cast<size_t>(device)].host;
  if (e == nullptr || e->check == 0) return;
  const KernelError r{e->check, e->dim, e->value, e->position, e->bound};
  e->check = 0;
  lock.unlock();
  const std::string where = " (found by a kernel on cuda:" + std::to_string(device) + ")";
  switch (static_cast<KernelCheck>(r.check)) {
    case KernelCheck::index_select:
    case KernelCheck::index_add:
      fail(r.check == static_cast<int32_t>(KernelCheck::index_select) ? "index_select" : "index_add", ": index ",
           r.value, " (position ", r.position, ") is out of range for dim ", r.dim, " of size ", r.bound, where);
    case KernelCheck::cross_entropy:
      fail("cross_entropy: target ", r.value, " at row ", r.position, " is out of range for ", r.bound,
           " classes", where);
    default:
      fail("a CUDA kernel reported error code ", r.check, where);
  }
}

}  // namespace lory::cuda
