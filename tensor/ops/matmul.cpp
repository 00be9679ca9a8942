// matmul.cpp — matrix products: the op definitions of bmm and matmul.
//
// Trace (tensor/ops.h declares both ops):
//   op        here: bmm checks (check_bmm_operands, tensor/kernel_args.h),
//             packs the operands the GEMM cannot read in place, allocates,
//             calls Backend::matmul and records BmmBackward; matmul reshapes
//             its operands into one bmm
//   contract  tensor/backend.h (Backend::matmul), tensor/kernel_args.h
//             (check_matmul_args, gemm_operand)
//   kernels   CPU: tensor/cpu/matmul.cpp (Eigen);  CUDA: cuda/matmul.cu, on
//             the cuBLASLt wrapper cuda/gemm.cu
//   backward  BmmBackward below, two more bmm calls (so two more GEMMs)
//   tests     tests/test_ops.cpp, tests/test_autograd.cpp, tests/cuda/test_cuda_ops.cpp
//
// bmm is the one primitive: C = A B for A [B, M, K], B [B, K, N], C [B, M, N]
// (batch by batch). Its backward, given dC [B, M, N]:
//   dA = dC B^T   [B, M, N] @ [B, N, K] -> [B, M, K]
//   dB = A^T dC   [B, K, M] @ [B, M, N] -> [B, K, N]
// both bmm calls on transposed views (transpose(1, 2)), which the GEMM reads
// as column-major without a copy.
//
// matmul has no backward of its own: it is composed from bmm and views
// (unsqueeze, expand, reshape), so its backward is bmm's, and NumPy's 1-d and
// broadcast-batch rules get their gradients from those views' backwards (a
// broadcast batch is summed back by expand's backward, a folded batch is
// unfolded by reshape's).
//
// Layout: which operands go to the GEMM as they are is decided once, by
// gemm_operand (tensor/kernel_args.h): a row- or column-major matrix with
// non-overlapping rows is read in place by both kernels; bmm packs anything
// else into a contiguous copy here, before the kernel, and the kernels refuse
// (never repack) an operand outside that rule. The one repacking below this
// layer is CUDA's: cuBLASLt may have no algorithm for an operand starting at
// an odd address, and cuda/gemm.cu then copies both operands to aligned
// memory (an alignment fallback, not a layout decision).
#include <algorithm>

#include "tensor/kernel_args.h"
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

namespace {

// The GEMM reads m in place if gemm_operand accepts it; anything else is packed.
Tensor gemm_ready(const Tensor& m) { return gemm_operand(m) ? m : m.contiguous(); }

void check_matmul_dtypes(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  LORY_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()), op, ": expected operands of one floating dtype, got a ",
             a.describe(), ", b ", b.describe());
}

}  // namespace

Tensor bmm(const Tensor& a, const Tensor& b) {
  profiler::OpScope timed("bmm");
  check_same_device(a, b, "bmm");
  check_bmm_operands(a, b, "bmm");
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
    return std::vector<Tensor>{bmm(g, b.transpose(1, 2)), bmm(a.transpose(1, 2), g)};  // dA = dC B^T, dB = A^T dC
  });
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  profiler::OpScope timed("matmul");  // the bmm it becomes is part of it
  check_matmul_dtypes(a_in, b_in, "matmul");
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
