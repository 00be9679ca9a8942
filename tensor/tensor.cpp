// tensor.cpp — Tensor's own methods: metadata, element access, autograd fields.
// The ops the methods forward to live in tensor/ops/.
#include "tensor/tensor.h"

#include <cstring>

#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace lory {

int64_t Tensor::size(int64_t d) const {
  if (dim() == 0) fail("size: a 0-d tensor has no dim ", d);
  return shape()[normalize_dim(d, dim(), "size")];
}

int64_t Tensor::stride(int64_t d) const {
  if (dim() == 0) fail("stride: a 0-d tensor has no dim ", d);
  return strides()[normalize_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  // Dims of size 1 may have any stride: they never move the pointer.
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    const int64_t s = shape()[i];
    if (s == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= s;
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "(undefined tensor)";
  return shape_str(shape()) + " (" + dtype_name(dtype()) + ", " + device().str() + ")";
}

void* Tensor::data_ptr() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data) + t.offset * static_cast<int64_t>(dtype_size(t.dtype));
}

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  TensorImpl& t = checked();
  LORY_CHECK(t.grad_fn == nullptr, "set_requires_grad: only leaf tensors can be marked; this tensor ", describe(),
             " was produced by ", t.grad_fn->name, " (use detach() to make a new leaf)");
  LORY_CHECK(!requires_grad || is_floating(t.dtype), "set_requires_grad: only floating tensors can require grad, got ",
             describe());
  t.requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked();
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined())
    LORY_CHECK(grad.shape() == shape(), "set_grad: gradient ", grad.describe(), " does not match tensor ", describe());
  checked().grad = grad.impl_ptr();
}


Tensor Tensor::contiguous() const { return lory::contiguous(*this); }
Tensor Tensor::clone() const { return lory::clone(*this); }
Tensor Tensor::to(DType dtype) const { return to_dtype(*this, dtype); }
Tensor Tensor::to(Device device) const { return to_device(*this, device); }
Tensor Tensor::detach() const { return lory::detach(*this); }

double Tensor::item() const {
  LORY_CHECK(numel() == 1, "item: tensor must hold exactly one element, got ", describe());
  return to_vector<double>()[0];
}

namespace {
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::i64;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::u8;
  else
    static_assert(sizeof(T) == 0, "unsupported element type");
}
}  // namespace

template <typename T>
std::vector<T> Tensor::to_vector() const {
  NoGradGuard no_grad;
  const Tensor host = to(cpu_device()).to(dtype_of<T>()).contiguous();
  std::vector<T> out(static_cast<size_t>(host.numel()));
  if (!out.empty()) std::memcpy(out.data(), host.data_ptr(), out.size() * sizeof(T));
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

Tensor Tensor::view(const Shape& s) const { return lory::view(*this, s); }
Tensor Tensor::reshape(const Shape& s) const { return lory::reshape(*this, s); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return lory::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return lory::transpose(*this, d0, d1); }
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const { return lory::narrow(*this, d, start, length); }
Tensor Tensor::select(int64_t d, int64_t index) const { return lory::select(*this, d, index); }
Tensor Tensor::expand(const Shape& s) const { return lory::expand(*this, s); }
Tensor Tensor::unsqueeze(int64_t d) const { return lory::unsqueeze(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return lory::squeeze(*this, d); }

namespace {
// In-place writes bypass autograd, so refuse them where autograd could see them.
void check_inplace_allowed(const Tensor& t, const char* op) {
  LORY_CHECK(!(t.requires_grad() && grad_mode_enabled()), op, ": in-place write to ", t.describe(),
             " which requires grad, while grad mode is on (wrap the update in NoGradGuard)");
  // A broadcast view (stride 0) has several elements in one memory location:
  // writing it is a race between threads and its result is undefined.
  for (int64_t d = 0; d < t.dim(); ++d)
    LORY_CHECK(t.stride(d) != 0 || t.size(d) <= 1, op, ": destination ", t.describe(),
               " is a broadcast view (stride 0 in dim ", d, "): several of its elements share one memory location; ",
               "write to a contiguous copy instead");
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  profiler::OpScope timed("fill_");
  check_inplace_allowed(*this, "fill_");
  if (is_contiguous()) {
    backend_for(device()).fill(*this, value);
    bump_version();
  } else {
    copy_(scalar_tensor(value, {dtype(), device()}));
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  profiler::OpScope timed("copy_");
  check_inplace_allowed(*this, "copy_");
  NoGradGuard no_grad;
  LORY_CHECK(src.defined(), "copy_: source is undefined");
  // Broadcast the source to this shape; copy() converts the dtype.
  LORY_CHECK(broadcasts_to(src.shape(), shape()), "copy_: source ", src.describe(),
             " cannot be broadcast to destination ", describe());
  Tensor s = src.to(device()).expand(shape());
  Tensor self = *this;
  backend_for(device()).copy(s, self);
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& src) {
  profiler::OpScope timed("add_");
  check_inplace_allowed(*this, "add_");
  NoGradGuard no_grad;
  LORY_CHECK(src.defined(), "add_: source is undefined");
  LORY_CHECK(broadcasts_to(src.shape(), shape()), "add_: source ", src.describe(), " cannot be broadcast to destination ",
             describe());
  const Tensor s = src.to(device()).to(dtype()).expand(shape());
  if (is_contiguous()) {
    // Elementwise kernels read element i before writing it, so out may alias an input.
    Tensor self = *this;
    if (numel() > 0) backend_for(device()).binary(BinaryOp::add, self, s, self);
    bump_version();
  } else {
    copy_(add(*this, s));
  }
  return *this;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace lory
