// index.cpp — gathering slices by index (index_select, embedding lookup), its
// adjoint scatter (index_add), and choosing by rank (topk_indices).
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

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  profiler::OpScope timed("index_add");
  check_same_device(x, index, "index_add");
  check_same_device(x, src, "index_add");
  check_index_operand(index, "index_add");
  LORY_CHECK(x.dim() > 0, "index_add: cannot index a 0-d tensor");
  const int64_t d = normalize_dim(dim, x.dim(), "index_add");
  const Tensor idx = index.reshape({index.numel()}).contiguous();
  Shape want = x.shape();
  want[d] = idx.numel();
  LORY_CHECK(src.shape() == want, "index_add: src must be ", shape_str(want), " (x ", x.describe(), " with ",
             idx.numel(), " indices at dim ", d, "), got ", src.describe());
  LORY_CHECK(src.dtype() == x.dtype(), "index_add: x is ", x.describe(), " but src is ", src.describe());
  Tensor out = empty_on(x.shape(), x.dtype(), x);  // contiguous; x itself is never written
  {
    NoGradGuard no_grad;
    out.copy_(x);
    if (src.numel() > 0) kernels(out).index_add(out, d, idx, src.contiguous());
  }
  if (!any_requires_grad({&x, &src})) return out;
  SavedTensor si(idx);
  return record("IndexAddBackward", {x, src}, out, [d, si](const Tensor& g) {
    return std::vector<Tensor>{g, index_select(g, d, si.get("IndexAddBackward"))};
  });
}

Tensor topk_indices(const Tensor& x, int64_t k) {
  profiler::OpScope timed("topk_indices");
  LORY_CHECK(x.dim() > 0 && is_floating(x.dtype()), "topk_indices: x must be floating with at least one dim, got ",
             x.describe());
  const int64_t n = x.size(-1);
  LORY_CHECK(k > 0 && k <= n, "topk_indices: k must be in [1, ", n, "] (the size of x's last dim), got k = ", k,
             " for x ", x.describe());
  Shape shape = x.shape();
  shape.back() = k;
  const Tensor rows = x.detach().reshape({x.numel() / std::max<int64_t>(n, 1), n}).contiguous();
  Tensor out = empty_on({rows.size(0), k}, DType::i64, x);
  if (out.numel() > 0) {
    NoGradGuard no_grad;
    kernels(x).topk(rows, k, out);
  }
  return out.view(shape);
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
