// backend.cpp — device lookup and the "not implemented on this device" defaults.
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

void Backend::not_implemented(const char* op) const {
  fail(op, ": not implemented on ", device().str(),
       " (this backend does not have the kernel yet; move the tensors to cpu with .to(cpu_device()))");
}

void Backend::copy(const Tensor&, Tensor&) { not_implemented("copy"); }
void Backend::fill(Tensor&, double) { not_implemented("fill"); }
void Backend::arange(Tensor&, double, double) { not_implemented("arange"); }
void Backend::random(Tensor&, RandomDist, uint64_t, uint64_t, double, double) { not_implemented("random"); }
void Backend::unary(UnaryOp op, const Tensor&, Tensor&, double) { not_implemented(op_name(op)); }
void Backend::binary(BinaryOp op, const Tensor&, const Tensor&, Tensor&) { not_implemented(op_name(op)); }
void Backend::where(const Tensor&, const Tensor&, const Tensor&, Tensor&) { not_implemented("where"); }
void Backend::reduce(ReduceOp op, const Tensor&, Tensor&) { not_implemented(op_name(op)); }
void Backend::softmax(const Tensor&, Tensor&, bool log) { not_implemented(log ? "log_softmax" : "softmax"); }
void Backend::matmul(const Tensor&, const Tensor&, Tensor&) { not_implemented("matmul"); }
void Backend::index_select(const Tensor&, int64_t, const Tensor&, Tensor&) { not_implemented("index_select"); }
void Backend::index_add(Tensor&, int64_t, const Tensor&, const Tensor&) { not_implemented("index_add"); }
void Backend::swiglu(const Tensor&, const Tensor&, Tensor&) { not_implemented("swiglu"); }
void Backend::swiglu_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&) {
  not_implemented("swiglu_backward");
}
void Backend::cross_entropy_forward(const Tensor&, const Tensor&, int64_t, Tensor&, Tensor&) {
  not_implemented("cross_entropy");
}
void Backend::cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, int64_t, const Tensor&, Tensor&) {
  not_implemented("cross_entropy_backward");
}
void Backend::rms_norm_forward(const Tensor&, const Tensor&, double, Tensor&, Tensor&) { not_implemented("rms_norm"); }
void Backend::rms_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&) {
  not_implemented("rms_norm_backward");
}
void Backend::add_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                   Tensor& sum, Tensor& out, Tensor& rstd) {
  binary(BinaryOp::add, x, residual, sum);
  rms_norm_forward(sum, weight, eps, out, rstd);
}
void Backend::segment_mean(const Tensor&, int64_t, Tensor&) { not_implemented("segment_mean"); }
void Backend::adamw_step(Tensor&, const Tensor&, Tensor&, Tensor&, Tensor*, const std::vector<AdamWSlot>&,
                         const AdamWHyper&) {
  not_implemented("adamw_step");
}
void Backend::sum_squares(const Tensor&, Tensor&) { not_implemented("sum_squares"); }
void Backend::rope(const Tensor&, Tensor&, int64_t, double, bool) { not_implemented("rope"); }
void Backend::attention_forward(const Tensor&, const Tensor&, const Tensor&, double, bool, Tensor&, Tensor&) {
  not_implemented("scaled_dot_product_attention");
}
void Backend::attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, double, bool, Tensor&, Tensor&, Tensor&) {
  not_implemented("scaled_dot_product_attention_backward");
}

}  // namespace lory
