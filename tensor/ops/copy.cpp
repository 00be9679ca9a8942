// copy.cpp — copies and conversions: contiguous, clone, to(dtype), to(device), detach.
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor clone(const Tensor& x) {
  profiler::OpScope timed("clone");
  check_defined(x, "clone");
  Tensor out = empty_on(x.shape(), x.dtype(), x);
  if (out.numel() > 0) kernels(x).copy(x, out);
  if (any_requires_grad({&x}))
    record("CloneBackward", {x}, out, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor contiguous(const Tensor& x) {
  check_defined(x, "contiguous");
  if (x.is_contiguous()) return x;
  profiler::OpScope timed("contiguous");
  return clone(x);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined(x, "to");
  if (x.dtype() == dtype) return x;
  profiler::OpScope timed("to_dtype");
  Tensor out = empty_on(x.shape(), dtype, x);
  if (out.numel() > 0) kernels(x).copy(x, out);
  // Gradients of a cast flow back unchanged; the engine casts them to x's dtype.
  if (is_floating(dtype) && any_requires_grad({&x}))
    record("ToDtypeBackward", {x}, out, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor to_device(const Tensor& x, Device device) {
  check_defined(x, "to");
  if (x.device() == device) return x;
  profiler::OpScope timed("to_device");
  const Tensor src = contiguous(x.detach());
  Tensor out = empty(x.shape(), {x.dtype(), device, false});
  if (out.numel() > 0) {
    if (src.device().is_cpu()) {
      backend_for(device).copy_from_host(out.data_ptr(), src.data_ptr(), src.nbytes());
    } else if (device.is_cpu()) {
      backend_for(src.device()).copy_to_host(out.data_ptr(), src.data_ptr(), src.nbytes());
    } else {  // between two GPUs: through the host (peer copies come with the multi-GPU work)
      const Tensor host = to_device(src, cpu_device());
      backend_for(device).copy_from_host(out.data_ptr(), host.data_ptr(), host.nbytes());
    }
  }
  if (any_requires_grad({&x})) {
    const Device from = x.device();
    record("ToDeviceBackward", {x}, out, [from](const Tensor& g) { return std::vector<Tensor>{to_device(g, from)}; });
  }
  return out;
}

Tensor detach(const Tensor& x) {
  check_defined(x, "detach");
  return alias(x, x.shape(), x.strides(), x.offset());
}

}  // namespace lory
