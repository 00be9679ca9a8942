// join.cpp — cat and stack (copies), split and chunk (views).
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  LORY_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  profiler::OpScope timed("cat");
  const Tensor& first = tensors[0];
  check_defined(first, "cat");
  LORY_CHECK(first.dim() > 0, "cat: cannot concatenate 0-d tensors (use stack)");
  const int64_t d = normalize_dim(dim, first.dim(), "cat");
  DType dtype = first.dtype();
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_device(first, t, "cat");
    LORY_CHECK(t.dim() == first.dim(), "cat: tensor 0 is ", first.describe(), " but tensor ", i, " is ",
               t.describe(), " (different number of dims)");
    for (int64_t j = 0; j < t.dim(); ++j)
      LORY_CHECK(j == d || t.size(j) == first.size(j), "cat: tensor 0 is ", first.describe(), " but tensor ", i,
                 " is ", t.describe(), " (sizes must match except in dim ", d, ")");
    shape[d] += t.size(d);
    dtype = promote_types(dtype, t.dtype());
  }
  Tensor out = empty_on(shape, dtype, first);
  std::vector<int64_t> sizes;
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      if (t.size(d) > 0) out.narrow(d, offset, t.size(d)).copy_(t);
      sizes.push_back(t.size(d));
      offset += t.size(d);
    }
  }
  if (!any_requires_grad(tensors)) return out;
  // Each input's gradient is its slice of the output gradient.
  return record("CatBackward", tensors, out, [sizes, d](const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t offset = 0;
    for (int64_t n : sizes) {
      grads.push_back(g.narrow(d, offset, n));
      offset += n;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  LORY_CHECK(!tensors.empty(), "stack: expected at least one tensor");
  const int64_t d = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    LORY_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor 0 is ", tensors[0].describe(),
               " but tensor ", i, " is ", tensors[i].describe(), " (all shapes must match)");
    parts.push_back(tensors[i].unsqueeze(d));
  }
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined(x, "split");
  const int64_t d = normalize_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    LORY_CHECK(s >= 0, "split: negative size ", s);
    total += s;
  }
  LORY_CHECK(total == x.size(d), "split: sizes ", shape_str(sizes), " sum to ", total, " but dim ", d, " of ",
             x.describe(), " has size ", x.size(d));
  std::vector<Tensor> parts;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.narrow(d, offset, s));
    offset += s;
  }
  return parts;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split");
  LORY_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  const int64_t n = x.size(dim);
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += split_size) sizes.push_back(std::min(split_size, n - at));
  if (sizes.empty()) sizes.push_back(0);  // an empty dim splits into one empty piece, as in PyTorch
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk");
  LORY_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t n = x.size(dim);
  // PyTorch: chunks of ceil(n / chunks); the last may be smaller, and fewer
  // than `chunks` pieces come back when n is small.
  return split(x, std::max<int64_t>((n + chunks - 1) / chunks, 1), dim);
}

}  // namespace lory
