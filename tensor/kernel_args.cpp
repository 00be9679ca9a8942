// kernel_args.cpp — the argument contract of every Backend kernel; see kernel_args.h.
#include "tensor/kernel_args.h"

#include <utility>

#include "tensor/error.h"

namespace lory {

DimSplit split_at_dim(const Shape& shape, int64_t dim) {
  DimSplit s;
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  s.size = shape[dim];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) s.inner *= shape[d];
  return s;
}

void check_rows_like(const Tensor& t, const Tensor& x, const char* kernel, const char* what) {
  LORY_CHECK(t.shape() == x.shape() && t.dtype() == x.dtype() && t.is_contiguous(), kernel, ": ", what,
             " must be contiguous like x ", x.describe(), ", got ", t.describe());
}

void check_f32_rows(const Tensor& t, int64_t n, const char* kernel, const char* what) {
  LORY_CHECK(t.dtype() == DType::f32 && t.numel() == n && t.is_contiguous(), kernel, ": ", what,
             " must be contiguous f32 [", n, "], got ", t.describe());
}

// ---- copies and creation ----

void check_copy_args(const Tensor& src, const Tensor& dst) {
  LORY_CHECK(src.shape() == dst.shape(), "copy: shapes differ: src is ", src.describe(), ", dst is ", dst.describe());
}

void check_fill_args(const Tensor& out, const char* kernel) {
  LORY_CHECK(out.is_contiguous(), kernel, ": out must be contiguous, got ", out.describe());
}

// ---- elementwise ----

namespace {

bool unary_takes_integers(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::add_scalar || op == UnaryOp::mul_scalar ||
         op == UnaryOp::pow_scalar;
}

bool binary_takes_bools(BinaryOp op) {
  return is_comparison(op) || op == BinaryOp::add || op == BinaryOp::mul || op == BinaryOp::maximum ||
         op == BinaryOp::minimum;
}

}  // namespace

void check_unary_args(UnaryOp op, const Tensor& x, const Tensor& out) {
  const char* name = op_name(op);
  LORY_CHECK(x.shape() == out.shape() && x.dtype() == out.dtype() && out.is_contiguous(), name,
             ": out must be contiguous of x's shape and dtype: x is ", x.describe(), ", out is ", out.describe());
  LORY_CHECK(x.dtype() != DType::boolean, name, ": not defined for bool tensors, got ", x.describe(),
             " (convert to a numeric dtype first)");
  LORY_CHECK(is_floating(x.dtype()) || unary_takes_integers(op), name, ": not defined for integer tensors, got ",
             x.describe(), " (convert to a floating dtype first)");
}

void check_binary_args(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = op_name(op);
  LORY_CHECK(a.dtype() == b.dtype(), name, ": operand dtypes differ: a is ", a.describe(), ", b is ", b.describe());
  LORY_CHECK(a.shape() == out.shape() && b.shape() == out.shape(), name, ": operands must have out's shape: a is ",
             a.describe(), ", b is ", b.describe(), ", out is ", out.describe());
  const DType want = is_comparison(op) ? DType::boolean : a.dtype();
  LORY_CHECK(out.dtype() == want && out.is_contiguous(), name, ": out must be contiguous ", dtype_name(want), ", got ",
             out.describe());
  LORY_CHECK(a.dtype() != DType::boolean || binary_takes_bools(op), name, ": not defined for bool tensors: a is ",
             a.describe(), ", b is ", b.describe(), " (convert to a numeric dtype first)");
}

void check_where_condition(const Tensor& cond) {
  LORY_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", cond.describe());
}

void check_where_args(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_where_condition(cond);
  LORY_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where: operand dtypes must match out: a is ",
             a.describe(), ", b is ", b.describe(), ", out is ", out.describe());
  LORY_CHECK(cond.shape() == out.shape() && a.shape() == out.shape() && b.shape() == out.shape(),
             "where: operands must have out's shape: cond is ", cond.describe(), ", a is ", a.describe(), ", b is ",
             b.describe(), ", out is ", out.describe());
  LORY_CHECK(out.is_contiguous(), "where: out must be contiguous, got ", out.describe());
}

// ---- reductions ----

void check_reduce_args(ReduceOp op, const Tensor& x, const Tensor& out) {
  const char* name = op_name(op);
  LORY_CHECK(x.dim() == 2, name, ": x must be an [O, R] view, got ", x.describe());
  LORY_CHECK(out.dim() == 1 && out.size(0) == x.size(0) && out.dtype() == x.dtype() && out.is_contiguous(), name,
             ": out must be contiguous [", x.size(0), "] of x's dtype: x is ", x.describe(), ", out is ",
             out.describe());
  LORY_CHECK(op == ReduceOp::sum || x.size(1) > 0 || x.size(0) == 0, name, ": cannot reduce over zero elements of ",
             x.describe());
}

void check_softmax_args(const Tensor& x, const Tensor& out, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  LORY_CHECK(x.dim() == 2 && x.is_contiguous() && is_floating(x.dtype()), name,
             ": x must be contiguous floating [R, C], got ", x.describe());
  check_rows_like(out, x, name, "out");
}

// ---- matrix products ----

std::optional<GemmOperand> gemm_operand(const Tensor& m) {
  if (m.dim() != 3) return std::nullopt;
  const int64_t B = m.size(0), R = m.size(1), C = m.size(2);
  const int64_t sb = m.stride(0), sr = m.stride(1), sc = m.stride(2);
  GemmOperand g;
  g.batch_stride = B == 1 ? 0 : sb;
  if (g.batch_stride < 0) return std::nullopt;
  if ((C == 1 || sc == 1) && (R == 1 || sr >= C)) {
    g.row_major = true;
    g.ld = R == 1 ? C : sr;
  } else if ((R == 1 || sr == 1) && (C == 1 || sc >= R)) {
    g.row_major = false;
    g.ld = C == 1 ? R : sc;
  } else {
    return std::nullopt;
  }
  return g;
}

void check_bmm_operands(const Tensor& a, const Tensor& b, const char* op) {
  LORY_CHECK(a.dim() == 3 && b.dim() == 3, op, ": expected a [B, M, K] and b [B, K, N], got a ", a.describe(), ", b ",
             b.describe());
  LORY_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()), op, ": expected operands of one floating dtype, got a ",
             a.describe(), ", b ", b.describe());
  LORY_CHECK(a.size(0) == b.size(0), op, ": batch sizes differ: a is ", a.describe(), ", b is ", b.describe());
  LORY_CHECK(a.size(2) == b.size(1), op, ": inner dims differ: a is ", a.describe(), ", b is ", b.describe());
}

void check_matmul_args(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_bmm_operands(a, b, "matmul");
  const Shape want{a.size(0), a.size(1), b.size(2)};
  LORY_CHECK(out.shape() == want && out.dtype() == a.dtype() && out.is_contiguous(), "matmul: out must be contiguous ",
             shape_str(want), " of the operands' dtype: a is ", a.describe(), ", b is ", b.describe(), ", out is ",
             out.describe());
  for (const auto& [t, which] : {std::pair{&a, "a"}, std::pair{&b, "b"}})
    LORY_CHECK(gemm_operand(*t), "matmul: operand ", which,
               " is neither row- nor column-major with non-overlapping rows (strides [", t->stride(0), ", ",
               t->stride(1), ", ", t->stride(2), "]; the op packs such an operand first): a is ", a.describe(),
               ", b is ", b.describe());
}

// ---- indexing ----

void check_index_operand(const Tensor& idx, const char* op) {
  LORY_CHECK((idx.dtype() == DType::i64 || idx.dtype() == DType::i32) && idx.dim() <= 1, op,
             ": index must be i32/i64 of 0 or 1 dims, got ", idx.describe());
}

namespace {

void check_index(const Tensor& idx, const char* kernel) {
  check_index_operand(idx, kernel);
  LORY_CHECK(idx.is_contiguous(), kernel, ": index must be contiguous, got ", idx.describe());
}

}  // namespace

DimSplit check_index_select_args(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& out) {
  LORY_CHECK(dim >= 0 && dim < x.dim(), "index_select: dim ", dim, " out of range for ", x.describe());
  LORY_CHECK(x.dtype() == out.dtype() && out.is_contiguous(), "index_select: out must be contiguous of x's dtype: x ",
             x.describe(), ", out ", out.describe());
  check_index(idx, "index_select");
  const DimSplit s = split_at_dim(x.shape(), dim);
  LORY_CHECK(out.numel() == s.outer * idx.numel() * s.inner, "index_select: out ", out.describe(), " does not hold ",
             idx.numel(), " slices of ", x.describe(), " along dim ", dim);
  return s;
}

DimSplit check_index_add_args(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  LORY_CHECK(dim >= 0 && dim < out.dim(), "index_add: dim ", dim, " out of range for ", out.describe());
  LORY_CHECK(out.dtype() == src.dtype(), "index_add: dtypes differ: out is ", out.describe(), ", src is ",
             src.describe());
  LORY_CHECK(out.is_contiguous(), "index_add: out must be contiguous, got ", out.describe());
  check_index(idx, "index_add");
  Shape want = out.shape();
  want[dim] = idx.numel();
  LORY_CHECK(src.shape() == want && src.is_contiguous(), "index_add: src must be contiguous ", shape_str(want),
             " for out ", out.describe(), " and ", idx.numel(), " indices, got ", src.describe());
  return split_at_dim(out.shape(), dim);
}

void check_topk_args(const Tensor& x, int64_t k, const Tensor& indices) {
  LORY_CHECK(x.dim() == 2 && x.is_contiguous() && is_floating(x.dtype()),
             "topk: x must be contiguous floating [R, n], got ", x.describe());
  LORY_CHECK(k > 0 && k <= x.size(1), "topk: k must be in [1, ", x.size(1), "] for x ", x.describe(), ", got ", k);
  LORY_CHECK(indices.dtype() == DType::i64 && indices.is_contiguous() && indices.dim() == 2 &&
                 indices.size(0) == x.size(0) && indices.size(1) == k,
             "topk: indices must be contiguous i64 [", x.size(0), ", ", k, "], got ", indices.describe());
}

// ---- fused ops ----

void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out) {
  LORY_CHECK(out.dim() == 2 && out.is_contiguous() && is_floating(out.dtype()),
             "swiglu: out must be contiguous floating [R, F], got ", out.describe());
  for (const Tensor* in : {&gate, &up})
    LORY_CHECK(in->shape() == out.shape() && in->dtype() == out.dtype() && (in->stride(1) == 1 || out.size(1) <= 1),
               "swiglu: gate and up must be [R, F] rows with unit inner stride, like out ", out.describe(),
               ": gate is ", gate.describe(), ", up is ", up.describe());
}

void check_swiglu_backward_args(const Tensor& dy, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                                const Tensor& dup) {
  const char* kernel = "swiglu_backward";
  LORY_CHECK(dy.dim() == 2 && dy.is_contiguous() && is_floating(dy.dtype()), kernel,
             ": dy must be contiguous floating [R, F], got ", dy.describe());
  for (const Tensor* in : {&gate, &up})
    LORY_CHECK(in->shape() == dy.shape() && in->dtype() == dy.dtype() && (in->stride(1) == 1 || dy.size(1) <= 1),
               kernel, ": gate and up must be [R, F] rows with unit inner stride, like dy ", dy.describe(),
               ": gate is ", gate.describe(), ", up is ", up.describe());
  check_rows_like(dgate, dy, kernel, "dgate");
  check_rows_like(dup, dy, kernel, "dup");
}

void check_cross_entropy_inputs(const Tensor& logits, const Tensor& targets, const char* op) {
  LORY_CHECK(logits.dim() == 2 && is_floating(logits.dtype()), op, ": logits must be floating [N, V], got ",
             logits.describe());
  LORY_CHECK((targets.dtype() == DType::i64 || targets.dtype() == DType::i32) && targets.dim() == 1 &&
                 targets.size(0) == logits.size(0),
             op, ": targets must be i32/i64 [N] for logits [N, V]: logits is ", logits.describe(), ", targets is ",
             targets.describe());
}

namespace {

void check_logits_targets(const Tensor& logits, const Tensor& targets, const char* kernel) {
  check_cross_entropy_inputs(logits, targets, kernel);
  LORY_CHECK(logits.is_contiguous(), kernel, ": logits must be contiguous, got ", logits.describe());
  LORY_CHECK(logits.size(1) > 0, kernel, ": logits have no classes: ", logits.describe());
  LORY_CHECK(targets.dtype() == DType::i64 && targets.is_contiguous(), kernel, ": targets must be contiguous i64 [",
             logits.size(0), "], got ", targets.describe());
}

}  // namespace

void check_cross_entropy_args(const Tensor& logits, const Tensor& targets, const Tensor& row_loss, const Tensor& lse) {
  const char* kernel = "cross_entropy";
  check_logits_targets(logits, targets, kernel);
  check_f32_rows(row_loss, logits.size(0), kernel, "row_loss");
  check_f32_rows(lse, logits.size(0), kernel, "lse");
}

void check_cross_entropy_backward_args(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                       const Tensor& scale, const Tensor& dlogits) {
  const char* kernel = "cross_entropy_backward";
  check_logits_targets(logits, targets, kernel);
  check_f32_rows(lse, logits.size(0), kernel, "lse");
  LORY_CHECK(scale.numel() == 1 && scale.dtype() == DType::f32, kernel, ": scale must be one f32 value, got ",
             scale.describe());
  LORY_CHECK(dlogits.shape() == logits.shape() && dlogits.dtype() == logits.dtype() && dlogits.is_contiguous(), kernel,
             ": dlogits must be contiguous like logits ", logits.describe(), ", got ", dlogits.describe());
}

namespace {

// x [R, D] contiguous floating, weight contiguous [D] of x's dtype, rstd f32 [R].
void check_norm_operands(const Tensor& x, const Tensor& weight, const Tensor& rstd, const char* kernel) {
  LORY_CHECK(x.dim() == 2 && x.is_contiguous() && is_floating(x.dtype()), kernel,
             ": x must be contiguous floating [R, D], got ", x.describe());
  LORY_CHECK(weight.dim() == 1 && weight.size(0) == x.size(1) && weight.dtype() == x.dtype() &&
                 weight.is_contiguous(),
             kernel, ": weight must be contiguous [D] of x's dtype: x is ", x.describe(), ", weight is ",
             weight.describe());
  check_f32_rows(rstd, x.size(0), kernel, "rstd");
}

}  // namespace

void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& out, const Tensor& rstd) {
  check_norm_operands(x, weight, rstd, "rms_norm");
  check_rows_like(out, x, "rms_norm", "out");
}

void check_add_rms_norm_args(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& sum,
                             const Tensor& out, const Tensor& rstd) {
  const char* kernel = "add_rms_norm";
  check_norm_operands(x, weight, rstd, kernel);
  check_rows_like(residual, x, kernel, "residual");
  check_rows_like(sum, x, kernel, "sum");
  check_rows_like(out, x, kernel, "out");
}

void check_rms_norm_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                  const Tensor& dx, const Tensor& dweight) {
  const char* kernel = "rms_norm_backward";
  check_norm_operands(x, weight, rstd, kernel);
  check_rows_like(dy, x, kernel, "dy");
  check_rows_like(dx, x, kernel, "dx");
  LORY_CHECK(dweight.shape() == weight.shape() && dweight.dtype() == weight.dtype() && dweight.is_contiguous(),
             kernel, ": dweight must be contiguous like weight ", weight.describe(), ", got ", dweight.describe());
}

void check_rope_input(const Tensor& x, const char* kernel) {
  LORY_CHECK(x.dim() == 4 && is_floating(x.dtype()), kernel, ": x must be floating [B, L, H, Dh], got ", x.describe());
  LORY_CHECK(x.size(3) % 2 == 0, kernel, ": head dim must be even, got ", x.describe());
}

void check_rope_args(const Tensor& x, const Tensor& out, const char* kernel) {
  check_rope_input(x, kernel);
  LORY_CHECK(x.is_contiguous(), kernel, ": x must be contiguous, got ", x.describe());
  check_rows_like(out, x, kernel, "out");
}

void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const char* kernel) {
  LORY_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                 (k.size(1) > 0 ? q.size(1) % k.size(1) == 0 : q.size(1) == 0) && q.size(3) == k.size(3),
             kernel, ": expected q [B, H, L, Dh] and k, v [B, Hkv, S, Dh] with Hkv dividing H: q ", q.describe(),
             ", k ", k.describe(), ", v ", v.describe());
  LORY_CHECK(is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype(), kernel,
             ": expected q, k and v of one floating dtype: q ", q.describe(), ", k ", k.describe(), ", v ",
             v.describe());
  LORY_CHECK(!causal || k.size(2) >= q.size(2), kernel, ": causal attention needs S >= L: q ", q.describe(), ", k ",
             k.describe());
}

void check_attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          bool causal, const char* kernel) {
  check_attention_inputs(q, k, v, causal, kernel);
  for (const Tensor* t : {&q, &k, &v})
    LORY_CHECK(t->is_contiguous(), kernel, ": q, k and v must be contiguous, got ", t->describe());
  LORY_CHECK(out.shape() == q.shape() && out.dtype() == q.dtype() && out.is_contiguous(), kernel,
             ": out must be contiguous like q ", q.describe(), ", got ", out.describe());
  check_f32_rows(lse, q.size(0) * q.size(1) * q.size(2), kernel, "lse ([B, H, L])");
}

void check_attention_backward_args(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, bool causal, const Tensor& dq,
                                   const Tensor& dk, const Tensor& dv) {
  const char* kernel = "scaled_dot_product_attention_backward";
  check_attention_args(q, k, v, out, lse, causal, kernel);
  for (const auto& [t, what] : {std::pair{&dout, "dout"}, std::pair{&dq, "dq"}})
    LORY_CHECK(t->shape() == q.shape() && t->dtype() == q.dtype() && t->is_contiguous(), kernel, ": ", what,
               " must be contiguous like q ", q.describe(), ", got ", t->describe());
  for (const auto& [t, what] : {std::pair{&dk, "dk"}, std::pair{&dv, "dv"}})
    LORY_CHECK(t->shape() == k.shape() && t->dtype() == k.dtype() && t->is_contiguous(), kernel, ": ", what,
               " must be contiguous like k ", k.describe(), ", got ", t->describe());
}

// ---- Lory routing ----

void check_segment_mean_input(const Tensor& x, int64_t T) {
  LORY_CHECK(x.dim() == 3 && is_floating(x.dtype()), "segment_mean: x must be [B, L, d] of a floating dtype, got ",
             x.describe());
  LORY_CHECK(T > 0, "segment_mean: segment length must be > 0, got ", T);
}

int64_t check_segment_mean_args(const Tensor& x, int64_t T, const Tensor& out) {
  check_segment_mean_input(x, T);
  LORY_CHECK(x.is_contiguous(), "segment_mean: x must be contiguous, got ", x.describe());
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), N = (L + T - 1) / T;
  LORY_CHECK(out.dim() == 3 && out.size(0) == B && out.size(1) == N && out.size(2) == d && out.is_contiguous() &&
                 out.dtype() == x.dtype(),
             "segment_mean: out must be contiguous [", B, ", ", N, ", ", d, "] like x ", x.describe(), ", got ",
             out.describe());
  return N;
}

// ---- Lory expert merging ----

namespace {
void check_operand(const Tensor& t, const char* kernel, const char* what, const Tensor& like) {
  LORY_CHECK(t.is_contiguous() && t.dtype() == like.dtype(), kernel, ": ", what, " must be contiguous with ",
             dtype_name(like.dtype()), " like experts ", like.describe(), ", got ", t.describe());
}
}  // namespace

void check_merged_linear_args(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                              const Tensor& out) {
  const char* kernel = "merged_linear";
  LORY_CHECK(experts.dim() == 3 && is_floating(experts.dtype()), kernel,
             ": experts must be [E, out, in] of a floating dtype, got ", experts.describe());
  const int64_t E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  const int64_t x_dim = transposed ? rows : cols, y_dim = transposed ? cols : rows;
  LORY_CHECK(x.dim() == 3 && x.size(2) == x_dim, kernel, ": x must be [S, T, ", x_dim, "] for experts ",
             experts.describe(), transposed ? " (transposed)" : "", ", got ", x.describe());
  const int64_t S = x.size(0), T = x.size(1);
  LORY_CHECK(weights.dim() == 2 && weights.size(0) == S && weights.size(1) == E, kernel, ": weights must be [", S,
             ", ", E, "] (a weight per segment of x ", x.describe(), " and expert of ", experts.describe(), "), got ",
             weights.describe());
  LORY_CHECK(out.dim() == 3 && out.size(0) == S && out.size(1) == T && out.size(2) == y_dim, kernel,
             ": out must be [", S, ", ", T, ", ", y_dim, "], got ", out.describe());
  check_operand(x, kernel, "x", experts);
  check_operand(weights, kernel, "weights", experts);
  check_operand(experts, kernel, "experts", experts);
  check_operand(out, kernel, "out", experts);
}

void check_merged_linear_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weights,
                                       const Tensor& experts, const Tensor& dexperts, const Tensor& dweights) {
  const char* kernel = "merged_linear_backward_weights";
  LORY_CHECK(experts.dim() == 3 && is_floating(experts.dtype()), kernel,
             ": experts must be [E, out, in] of a floating dtype, got ", experts.describe());
  const int64_t E = experts.size(0), rows = experts.size(1), cols = experts.size(2);
  LORY_CHECK(x.dim() == 3 && x.size(2) == cols, kernel, ": x must be [S, T, ", cols, "] for experts ",
             experts.describe(), ", got ", x.describe());
  const int64_t S = x.size(0), T = x.size(1);
  LORY_CHECK(dy.dim() == 3 && dy.size(0) == S && dy.size(1) == T && dy.size(2) == rows, kernel, ": dy must be [", S,
             ", ", T, ", ", rows, "] for x ", x.describe(), " and experts ", experts.describe(), ", got ",
             dy.describe());
  LORY_CHECK(weights.dim() == 2 && weights.size(0) == S && weights.size(1) == E, kernel, ": weights must be [", S,
             ", ", E, "], got ", weights.describe());
  LORY_CHECK(dexperts.shape() == experts.shape(), kernel, ": dexperts must be shaped like experts ",
             experts.describe(), ", got ", dexperts.describe());
  LORY_CHECK(dweights.shape() == weights.shape(), kernel, ": dweights must be shaped like weights ",
             weights.describe(), ", got ", dweights.describe());
  for (const auto& [t, what] : {std::pair{&dy, "dy"}, std::pair{&x, "x"}, std::pair{&weights, "weights"},
                                std::pair{&experts, "experts"}, std::pair{&dexperts, "dexperts"},
                                std::pair{&dweights, "dweights"}})
    check_operand(*t, kernel, what, experts);
}

// ---- optimizer ----

void check_adamw_args(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                      const Tensor* publish, const std::vector<Backend::AdamWSlot>& slots,
                      const Backend::AdamWHyper& hyper) {
  const int64_t n = param.numel();
  const std::pair<const Tensor*, const char*> flat[] = {
      {&param, "param"}, {&grad, "grad"}, {&exp_avg, "exp_avg"}, {&exp_avg_sq, "exp_avg_sq"}};
  for (const auto& [t, what] : flat)
    LORY_CHECK(t->dtype() == DType::f32 && t->dim() == 1 && t->numel() == n && t->is_contiguous() &&
                   reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 == 0,
               "adamw_step: ", what, " must be a contiguous, 16-byte aligned f32 [", n, "], got ", t->describe());
  if (publish) {
    LORY_CHECK((publish->dtype() == DType::bf16 || publish->dtype() == DType::f16) && publish->numel() == n &&
                   publish->is_contiguous(),
               "adamw_step: publish must be contiguous bf16/f16 [", n, "], got ", publish->describe());
    LORY_CHECK(hyper.rounding_seed == 0 || publish->dtype() == DType::bf16,
               "adamw_step: stochastic rounding is for bf16 copies, not ", publish->describe());
  }
  int64_t end = 0;
  for (const Backend::AdamWSlot& s : slots) {
    LORY_CHECK(s.offset >= end && s.numel >= 0 && s.offset + s.numel <= n, "adamw_step: slot [", s.offset, ", ",
               s.offset + s.numel, ") overlaps the slot before it or lies outside the ", n,
               " elements (slots must be sorted and disjoint)");
    end = s.offset + s.numel;
  }
}

void check_sum_squares_args(const Tensor& x, const Tensor& out) {
  LORY_CHECK(x.dtype() == DType::f32 && x.is_contiguous(), "sum_squares: x must be contiguous f32, got ",
             x.describe());
  LORY_CHECK(out.dtype() == DType::f64 && out.numel() == 1, "sum_squares: out must be one f64, got ", out.describe());
}

}  // namespace lory
