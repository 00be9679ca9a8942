// view.cpp — views: new shape/strides/offset over the same storage, never a copy.
//
// Each view's backward maps the output gradient back to the input's geometry:
// reshape back, permute by the inverse, scatter into zeros (narrow/select), or
// sum over broadcast dims (expand).
#include <algorithm>
#include <optional>

#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

// Replaces a single -1 in `shape` so that it holds `numel` elements.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Tensor& x) {
  Shape out = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      LORY_CHECK(infer_at < 0, op, ": only one dim can be -1, got shape ", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      LORY_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    LORY_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape), " is invalid for input ",
               x.describe());
    out[infer_at] = numel / known;
  }
  LORY_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape), " is invalid for input ", x.describe(),
             " (", numel, " elements)");
  return out;
}

// Strides that let `new_shape` view memory laid out as (old_shape, old_strides),
// or nothing if the view would need a copy. Walks both shapes from the right,
// grouping old dims into contiguous chunks and splitting each chunk among new
// dims (PyTorch's computeStride).
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape) {
  Strides out(new_shape.size());
  if (shape_numel(old_shape) == 0 || old_shape.empty()) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    const bool chunk_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      out[view_d] = view_numel * chunk_base_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_base_stride = old_strides[d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  check_defined(x, "view");
  const Shape target = infer_shape(shape, x.numel(), "view", x);
  const auto strides = view_strides(x.shape(), x.strides(), target);
  LORY_CHECK(strides.has_value(), "view: shape ", shape_str(target), " is not compatible with the strides ",
             shape_str(x.strides()), " of input ", x.describe(), "; use reshape(), which copies when needed");
  Tensor out = alias(x, target, *strides, x.offset());
  if (any_requires_grad({&x})) {
    const Shape in_shape = x.shape();
    record("ViewBackward", {x}, out, [in_shape](const Tensor& g) { return std::vector<Tensor>{reshape(g, in_shape)}; });
  }
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined(x, "reshape");
  const Shape target = infer_shape(shape, x.numel(), "reshape", x);
  if (view_strides(x.shape(), x.strides(), target)) return view(x, target);
  return view(contiguous(x), target);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined(x, "permute");
  const int64_t n = x.dim();
  LORY_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: got ", dims.size(), " dims for input ", x.describe());
  std::vector<int64_t> perm(n), inverse(n, -1);
  Shape shape(n);
  Strides strides(n);
  for (int64_t i = 0; i < n; ++i) {
    perm[i] = normalize_dim(dims[i], n, "permute");
    LORY_CHECK(inverse[perm[i]] < 0, "permute: dim ", dims[i], " repeats in ", shape_str(dims));
    inverse[perm[i]] = i;
    shape[i] = x.shape()[perm[i]];
    strides[i] = x.strides()[perm[i]];
  }
  Tensor out = alias(x, shape, strides, x.offset());
  if (any_requires_grad({&x}))
    record("PermuteBackward", {x}, out, [inverse](const Tensor& g) { return std::vector<Tensor>{permute(g, inverse)}; });
  return out;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined(x, "transpose");
  const int64_t n = x.dim();
  std::vector<int64_t> dims(n);
  for (int64_t i = 0; i < n; ++i) dims[i] = i;
  std::swap(dims[normalize_dim(d0, n, "transpose")], dims[normalize_dim(d1, n, "transpose")]);
  return permute(x, dims);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check_defined(x, "narrow");
  LORY_CHECK(x.dim() > 0, "narrow: cannot narrow a 0-d tensor");
  const int64_t d = normalize_dim(dim, x.dim(), "narrow");
  const int64_t size = x.shape()[d];
  if (start < 0) start += size;
  LORY_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: range [", start, ", ", start + length,
             ") is out of bounds for dim ", d, " of size ", size, " of input ", x.describe());
  Shape shape = x.shape();
  shape[d] = length;
  Tensor out = alias(x, shape, x.strides(), x.offset() + start * x.strides()[d]);
  if (any_requires_grad({&x})) {
    const Shape in_shape = x.shape();
    record("NarrowBackward", {x}, out, [in_shape, d, start, length](const Tensor& g) {
      Tensor gx = zeros(in_shape, {g.dtype(), g.device(), false});
      gx.narrow(d, start, length).copy_(g);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check_defined(x, "select");
  LORY_CHECK(x.dim() > 0, "select: cannot select from a 0-d tensor");
  const int64_t d = normalize_dim(dim, x.dim(), "select");
  const int64_t size = x.shape()[d];
  LORY_CHECK(index >= -size && index < size, "select: index ", index, " is out of range for dim ", d, " of size ",
             size, " of input ", x.describe());
  if (index < 0) index += size;
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = alias(x, shape, strides, x.offset() + index * x.strides()[d]);
  if (any_requires_grad({&x})) {
    const Shape in_shape = x.shape();
    record("SelectBackward", {x}, out, [in_shape, d, index](const Tensor& g) {
      Tensor gx = zeros(in_shape, {g.dtype(), g.device(), false});
      gx.select(d, index).copy_(g);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined(x, "expand");
  const int64_t n = static_cast<int64_t>(shape.size()), lead = n - x.dim();
  LORY_CHECK(lead >= 0, "expand: cannot expand ", x.describe(), " to fewer dims ", shape_str(shape));
  Shape out_shape(n);
  Strides strides(n);
  for (int64_t i = 0; i < n; ++i) {
    if (i < lead) {  // new leading dims are broadcast
      LORY_CHECK(shape[i] >= 0, "expand: invalid size ", shape[i], " in ", shape_str(shape));
      out_shape[i] = shape[i];
      strides[i] = 0;
      continue;
    }
    const int64_t have = x.shape()[i - lead];
    const int64_t want = shape[i] == -1 ? have : shape[i];
    LORY_CHECK(want == have || have == 1, "expand: cannot expand ", x.describe(), " to ", shape_str(shape),
               " (dim ", i, ": size ", have, " is not 1)");
    out_shape[i] = want;
    strides[i] = (want == have) ? x.strides()[i - lead] : 0;
  }
  if (out_shape == x.shape()) return x;
  Tensor out = alias(x, out_shape, strides, x.offset());
  if (any_requires_grad({&x})) {
    const Shape in_shape = x.shape();
    record("ExpandBackward", {x}, out, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
  }
  return out;
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined(x, "unsqueeze");
  const int64_t d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  Strides strides = x.strides();
  // The new dim's stride is irrelevant (size 1); pick the one that keeps it contiguous.
  const int64_t s = d < x.dim() ? x.strides()[d] * x.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, s);
  Tensor out = alias(x, shape, strides, x.offset());
  if (any_requires_grad({&x}))
    record("UnsqueezeBackward", {x}, out, [d](const Tensor& g) { return std::vector<Tensor>{squeeze(g, d)}; });
  return out;
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_defined(x, "squeeze");
  if (x.dim() == 0) return x;
  const int64_t d = normalize_dim(dim, x.dim(), "squeeze");
  if (x.shape()[d] != 1) return x;  // PyTorch: squeezing a dim that is not 1 is a no-op
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = alias(x, shape, strides, x.offset());
  if (any_requires_grad({&x}))
    record("SqueezeBackward", {x}, out, [d](const Tensor& g) { return std::vector<Tensor>{unsqueeze(g, d)}; });
  return out;
}

}  // namespace lory
