// backend.cpp — the op names of the kernel enums, and device lookup: which
// Backend owns a device (the CPU's, or the CUDA backend cuda/ registers).
// Backend has no method bodies: every kernel is pure virtual (backend.h).
#include "tensor/backend.h"

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace lory {

const char* op_name(UnaryOp op) {
  static const char* names[] = {"neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "abs",
                                "add_scalar", "mul_scalar", "pow_scalar", "div_scalar"};
  return names[static_cast<int>(op)];
}
const char* op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum",
                                "eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}
const char* op_name(ReduceOp op) {
  static const char* names[] = {"sum", "max", "min"};
  return names[static_cast<int>(op)];
}

namespace {
CudaBackendHooks& cuda_hooks() {
  static CudaBackendHooks hooks{nullptr, nullptr};
  return hooks;
}
}  // namespace

void register_cuda_backend(const CudaBackendHooks& hooks) { cuda_hooks() = hooks; }

Backend& cuda_backend(int index) {
  LORY_CHECK(cuda_hooks().backend != nullptr, "cuda:", index,
             ": this build has no CUDA support (the CUDA toolkit was not found at configure time, or -DLORY_CUDA=OFF)");
  return cuda_hooks().backend(index);
}

int cuda_device_count() { return cuda_hooks().device_count ? cuda_hooks().device_count() : 0; }

bool cuda_is_available() { return cuda_device_count() > 0; }

Backend& backend_for(Device device) {
  return device.is_cpu() ? cpu_backend() : cuda_backend(device.index);
}

}  // namespace lory
