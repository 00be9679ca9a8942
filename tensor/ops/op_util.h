// op_util.h — small helpers shared by the op definitions in tensor/ops/.
// Internal to the op layer; not part of the public API.
#pragma once

#include <algorithm>

#include "tensor/graph.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"
#include "tensor/tensor.h"

namespace lory::ops_detail {

inline Backend& kernels(const Tensor& t) { return backend_for(t.device()); }

inline void check_defined(const Tensor& t, const char* op, const char* what = "input") {
  LORY_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

// Both operands must live on one device; the message names both.
inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op);
  check_defined(b, op);
  LORY_CHECK(a.device() == b.device(), op, ": operands are on different devices: a is ", a.describe(), ", b is ",
             b.describe());
}

inline void check_floating(const Tensor& t, const char* op) {
  LORY_CHECK(is_floating(t.dtype()), op, ": expected a floating tensor, got ", t.describe());
}

// A new tensor sharing x's storage with the given geometry and no autograd history.
inline Tensor alias(const Tensor& x, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

// Output of a kernel: contiguous, on the device of `like`.
inline Tensor empty_on(const Shape& shape, DType dtype, const Tensor& like) {
  return empty(shape, TensorOptions{dtype, like.device(), false});
}

// A 0-d constant that broadcasts against anything of its dtype/device.
inline Tensor constant_like(double value, const Tensor& like) {
  return scalar_tensor(value, TensorOptions{like.dtype(), like.device(), false});
}

}  // namespace lory::ops_detail

namespace lory::ops_detail {

// The broadcast shape of two operands; on failure the message names the op
// and both operands' shapes, dtypes and devices.
inline Shape broadcast_operands(const Tensor& a, const Tensor& b, const char* op) {
  const size_t n = std::max(a.shape().size(), b.shape().size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t pa = n - a.shape().size(), pb = n - b.shape().size();
    const int64_t da = i < pa ? 1 : a.shape()[i - pa];
    const int64_t db = i < pb ? 1 : b.shape()[i - pb];
    LORY_CHECK(da == db || da == 1 || db == 1, op, ": shapes cannot be broadcast: a is ", a.describe(), ", b is ",
               b.describe(), " (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace lory::ops_detail
