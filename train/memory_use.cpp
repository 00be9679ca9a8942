// memory_use.cpp — see memory_use.h.
#include "train/memory_use.h"

#include <sys/resource.h>

#include <fstream>

#include "tensor/backend.h"
#include "tensor/memory_stats.h"
#ifdef LORY_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace lory::train {

MemoryPlan held_memory(const ZeroOptimizer& zero) {
  const FlatParameters& flat = zero.flat();
  auto bytes = [](const Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : int64_t{0}; };
  MemoryPlan m;
  m.flat_elements = flat.size();
  m.shard_elements = flat.shard_size();
  m.weights = bytes(flat.params);
  m.gradients = bytes(flat.grads) + zero.reducer_bytes() + (flat.has_separate_accumulator() ? bytes(flat.master_grads) : 0);
  m.master = flat.has_separate_master() ? bytes(flat.master) : 0;
  m.moments = bytes(zero.adam().exp_avg) + bytes(zero.adam().exp_avg_sq);
  return m;
}

int64_t peak_tensor_bytes(Device device) {
  if (device.is_cpu()) return host_memory_stats().peak_bytes;
#ifdef LORY_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend_for(device)))
    return static_cast<int64_t>(cuda->allocator().stats().peak_allocated_bytes);
#endif
  return 0;
}

void reset_peak_tensor_bytes(Device device) {
  if (device.is_cpu()) return reset_host_memory_peak();
#ifdef LORY_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend_for(device))) cuda->allocator().reset_peak();
#endif
}

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";  // resets the mm's high-water RSS mark, which getrusage's ru_maxrss reads
  clear.close();
  return static_cast<bool>(clear);
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace lory::train
