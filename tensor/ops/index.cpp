// index.cpp — gathering slices by index: index_select and embedding lookup.
//
// The backward of a gather is a scatter-add: every selected slice's gradient
// is added back at the position it came from, so an index that appears twice
// gets both gradients (index_add, accumulated in index order: deterministic).
#include "tensor/kernel_args.h"
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  profiler::OpScope timed("index_select");
  check_same_device(x, index, "index_select");
  check_index_operand(index, "index_select");
  LORY_CHECK(x.dim() > 0, "index_select: cannot index a 0-d tensor");
  const int64_t d = normalize_dim(dim, x.dim(), "index_select");
  const Tensor idx = index.reshape({index.numel()}).contiguous();
  Shape shape = x.shape();
  shape[d] = idx.numel();
  Tensor out = empty_on(shape, x.dtype(), x);
  if (out.numel() > 0) {
    NoGradGuard no_grad;
    kernels(x).index_select(x, d, idx, out);
  }
  if (!any_requires_grad({&x})) return out;
  const Shape in_shape = x.shape();
  SavedTensor si(idx);
  return record("IndexSelectBackward", {x}, out, [in_shape, d, si](const Tensor& g) {
    Tensor gx = zeros(in_shape, {g.dtype(), g.device(), false});
    kernels(gx).index_add(gx, d, si.get("IndexSelectBackward"), g.contiguous());  // the kernel takes contiguous src
    return std::vector<Tensor>{gx};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  profiler::OpScope timed("embedding");
  check_same_device(weight, ids, "embedding");
  LORY_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, dim], got ", weight.describe());
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  return index_select(weight, 0, ids.reshape({ids.numel()})).reshape(shape);
}

}  // namespace lory
