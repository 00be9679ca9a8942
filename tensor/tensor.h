// tensor.h — the Tensor handle: a strided view of a Storage, plus the autograd
// fields (requires_grad, grad, grad_fn) that reverse mode needs.
//
// A Tensor is a cheap shared handle (like torch.Tensor): copying it copies a
// pointer, not data. Element (i0, i1, ...) lives at
//   storage->data + dtype_size * (offset + i0*strides[0] + i1*strides[1] + ...)
// so views (permute, narrow, expand, ...) only change shape/strides/offset.
//
// The ops themselves (add, matmul, softmax, ...) are free functions declared
// in tensor/ops.h; the methods below are the PyTorch-style spellings of the
// most common ones and forward to them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace lory {

struct Node;  // tensor/graph.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // ---- autograd (autograd/engine.cpp) ----
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;          // the op that produced this tensor; null for leaves
  std::shared_ptr<TensorImpl> grad;       // accumulated gradient of a leaf
  std::weak_ptr<Node> grad_accumulator;   // a leaf's AccumulateGrad node, shared by its uses
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata ----
  const Shape& shape() const { return checked().shape; }
  const Strides& strides() const { return checked().strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return checked().offset; }
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device; }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  // "[4, 128] (bf16, cuda:0)" — how errors name an operand.
  std::string describe() const;

  // Pointer to element 0 of this view (storage data + offset).
  void* data_ptr() const;
  // Typed pointer; checks that T matches the dtype's size (bf16/f16 are uint16_t).
  template <typename T>
  T* data() const {
    LORY_CHECK(sizeof(T) == dtype_size(dtype()), "Tensor::data: element size ", sizeof(T),
               " does not match dtype ", dtype_name(dtype()));
    return static_cast<T*>(data_ptr());
  }
  // Marks an in-place write to the storage (autograd's version check).
  void bump_version() const { checked().storage->version++; }
  uint64_t version() const { return checked().storage->version; }

  // ---- autograd ----
  bool requires_grad() const { return defined() && impl_->requires_grad; }
  // Only leaves (tensors no op produced) may be marked; returns *this.
  Tensor& set_requires_grad(bool requires_grad = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  // The accumulated gradient of a leaf (undefined before the first backward).
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  // Reverse-mode sweep from this tensor (autograd/engine.cpp). Without an
  // explicit gradient the tensor must hold one element.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // ---- copies and conversions (tensor/ops/copy.cpp) ----
  Tensor contiguous() const;       // this if already contiguous, else a packed copy
  Tensor clone() const;            // always a packed copy (differentiable)
  Tensor to(DType dtype) const;    // this if dtype matches
  Tensor to(Device device) const;  // this if device matches
  Tensor detach() const;           // same storage, no autograd history
  double item() const;             // the single element as a double
  template <typename T>
  std::vector<T> to_vector() const;  // all elements in row-major order, converted to T

  // ---- views (tensor/ops/view.cpp); never copy ----
  Tensor view(const Shape& shape) const;     // error if the strides do not allow it
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor flatten() const { return reshape({numel()}); }
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(-2, -1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;

  // ---- in-place, not differentiable (optimizers, initialisers) ----
  // Each bumps the version counter; each refuses a tensor that requires grad
  // while grad mode is on.
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // broadcasts and converts dtype/device
  Tensor& add_(const Tensor& src);   // this += src, the same way (gradient accumulation)

  std::string str() const;  // PyTorch-like repr (tensor/print.cpp)

 private:
  TensorImpl& checked() const {
    LORY_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation (tensor/ops/creation.cpp) ----
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = cpu_device();
  bool requires_grad = false;
};
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// A scalar (0-d) tensor.
Tensor scalar_tensor(double value, TensorOptions options = {});
// From host values (converted to options.dtype); values.size() must equal the shape's numel.
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options = {});

// ---- random numbers: counter-based (tensor/philox.h) ----
// Every call draws from the global generator: it uses (seed, offset) and then
// advances offset past what it used, so a seed fixes the whole sequence on any
// device. The explicit-key forms do not touch the global generator.
void manual_seed(uint64_t seed);
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};
GeneratorState generator_state();
void set_generator_state(GeneratorState state);
Tensor randn(const Shape& shape, TensorOptions options = {});                   // N(0, 1)
Tensor rand(const Shape& shape, TensorOptions options = {});                    // U[0, 1)
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options = {});
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {});
// uniform: [a, b); normal: mean a, std b.
Tensor random_with_key(const Shape& shape, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b,
                       TensorOptions options = {});

}  // namespace lory
