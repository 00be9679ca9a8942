// matmul.cpp — matrix products.
//
// bmm is the one primitive: [B, M, K] @ [B, K, N] on the backend's GEMM, with
// backward dA = dC B^T and dB = A^T dC — themselves bmm calls on transposed
// views, which the GEMM reads without a copy. matmul is composed from bmm and
// views (unsqueeze, expand, reshape), so NumPy's 1-d and broadcast-batch rules
// get their gradients from those views' backwards for free.
#include <algorithm>

#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

// A GEMM operand must be row-major (stride(-1) == 1) or column-major
// (stride(-2) == 1) in its last two dims; anything else is packed first.
Tensor gemm_ready(const Tensor& m) {
  return (m.stride(-1) == 1 || m.stride(-2) == 1) ? m : m.clone();
}

void check_matmul_operands(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  LORY_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: a is ", a.describe(), ", b is ", b.describe());
  LORY_CHECK(is_floating(a.dtype()), op, ": expected floating operands, got a ", a.describe(), ", b ", b.describe());
}

}  // namespace

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_matmul_operands(a, b, "bmm");
  LORY_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-d operands, got a ", a.describe(), ", b ", b.describe());
  LORY_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ: a is ", a.describe(), ", b is ", b.describe());
  LORY_CHECK(a.size(2) == b.size(1), "bmm: inner dims differ: a is ", a.describe(), ", b is ", b.describe());
  Tensor out = empty_on({a.size(0), a.size(1), b.size(2)}, a.dtype(), a);
  if (out.numel() > 0) {
    NoGradGuard no_grad;
    kernels(a).matmul(gemm_ready(a), gemm_ready(b), out);
  }
  if (!any_requires_grad({&a, &b})) return out;
  SavedTensor sa(a), sb(b);
  return record("BmmBackward", {a, b}, out, [sa, sb](const Tensor& g) {
    const Tensor& a = sa.get("BmmBackward");
    const Tensor& b = sb.get("BmmBackward");
    return std::vector<Tensor>{bmm(g, b.transpose(1, 2)), bmm(a.transpose(1, 2), g)};
  });
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_matmul_operands(a_in, b_in, "matmul");
  LORY_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: operands must have at least 1 dim, got a ",
             a_in.describe(), ", b ", b_in.describe());
  // NumPy: a 1-d a is a row vector [1, K], a 1-d b a column vector [K, 1];
  // the added dim is removed from the result.
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  const Tensor a = a_vec ? a_in.unsqueeze(0) : a_in;
  const Tensor b = b_vec ? b_in.unsqueeze(1) : b_in;
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  LORY_CHECK(b.size(-2) == K, "matmul: inner dims differ: a is ", a_in.describe(), ", b is ", b_in.describe());

  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Tensor out;
  if (b_batch.empty()) {
    // [..., M, K] @ [K, N]: fold a's batch into M — one large GEMM (every Linear layer).
    out = bmm(a.reshape({1, shape_numel(a_batch) * M, K}), b.unsqueeze(0));
    Shape shape = a_batch;
    shape.push_back(M);
    shape.push_back(N);
    out = out.reshape(shape);
  } else {
    Shape batch;
    try {
      batch = broadcast_shapes(a_batch, b_batch, "matmul");
    } catch (const Error&) {
      fail("matmul: batch dims cannot be broadcast: a is ", a_in.describe(), ", b is ", b_in.describe());
    }
    const int64_t B = shape_numel(batch);
    Shape as = batch, bs = batch;
    as.insert(as.end(), {M, K});
    bs.insert(bs.end(), {K, N});
    out = bmm(a.expand(as).reshape({B, M, K}), b.expand(bs).reshape({B, K, N}));
    Shape shape = batch;
    shape.insert(shape.end(), {M, N});
    out = out.reshape(shape);
  }
  if (a_vec) out = out.squeeze(-2);
  if (b_vec) out = out.squeeze(-1);
  return out;
}

}  // namespace lory
