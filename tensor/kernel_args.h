// kernel_args.h — the argument contract of every Backend kernel, in one place.
//
// tensor/backend.h says in words what each kernel accepts; the functions here
// say it in code. Both backends call them first thing (tensor/cpu/X.cpp and
// cuda/X.cu for the kernel X), so the CPU and CUDA kernels of an op accept
// exactly the same operands and refuse the rest with the same message, which
// names the kernel, the operand and the shapes involved. The op layer
// (tensor/ops/) has already brought the operands to the layout the contract
// describes; these catch a caller that bypasses it (tests, benchmarks, the
// optimizer), and a few of them are also the op's own check, where the op
// and the kernel would otherwise say the same thing twice (bmm, attention,
// rope, segment_mean, where's condition, index and cross-entropy operands).
//
// What is not here is a device's own limit, checked by that device alone:
// CUDA's 32-bit cuBLAS dimensions and head dims above 256, and values only
// the kernel sees (an index or target out of range), which the CPU reports at
// once and CUDA at the next synchronisation (cuda/kernel_error.h).
//
// The layout a GEMM reads in place (gemm_operand) is decided here too: the
// op packs what it refuses (tensor/ops/matmul.cpp) and both kernels read
// what it accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace lory {

// ---- shared pieces ----

// A shape seen around one dim as [outer, size, inner] (outer: the product of
// the dims before it, inner: of the dims after it).
struct DimSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
DimSplit split_at_dim(const Shape& shape, int64_t dim);

// t is contiguous with x's shape and dtype ("<kernel>: <what> must be contiguous like x ...").
void check_rows_like(const Tensor& t, const Tensor& x, const char* kernel, const char* what);
// t is a contiguous f32 vector of n elements.
void check_f32_rows(const Tensor& t, int64_t n, const char* kernel, const char* what);

// ---- copies and creation (Backend::copy, fill, arange, random) ----

// copy: src has dst's shape; both any strides, any dtypes.
void check_copy_args(const Tensor& src, const Tensor& dst);
// fill, arange, random: out is contiguous.
void check_fill_args(const Tensor& out, const char* kernel);

// ---- elementwise (Backend::unary, binary, where) ----

// unary: x has out's shape and dtype (any strides), out contiguous. Integer
// x only for neg, abs and add/mul/pow_scalar (the op layer promotes integers
// to f32 for the rest); bool x for none.
void check_unary_args(UnaryOp op, const Tensor& x, const Tensor& out);
// binary: a and b of one dtype and of out's shape (any strides, 0 where
// broadcast); out contiguous, bool for a comparison and a's dtype otherwise.
// Bool operands only for the comparisons and add/mul/maximum/minimum (or,
// and, or, and).
void check_binary_args(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
// where's condition is bool (the op's check and the kernel's).
void check_where_condition(const Tensor& cond);
// where: cond bool, a and b of out's dtype, all three of out's shape (any
// strides); out contiguous.
void check_where_args(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);

// ---- reductions (Backend::reduce, softmax) ----

// reduce: x [O, R] (any strides), out contiguous [O] of x's dtype. max and
// min need R > 0; a sum over R = 0 elements is 0.
void check_reduce_args(ReduceOp op, const Tensor& x, const Tensor& out);
// softmax, log_softmax: x and out contiguous [R, C] of one floating dtype.
void check_softmax_args(const Tensor& x, const Tensor& out, bool log);

// ---- matrix products (Backend::matmul) ----

// How the matrices of a [B, R, C] GEMM operand sit in memory, when a GEMM
// can read them in place: row-major (stride(2) == 1, rows ld apart) or
// column-major (stride(1) == 1, columns ld apart; a transposed view), with
// rows (columns) that do not overlap, ld >= C (ld >= R), and a batch stride
// >= 0 (0: one matrix shared by the batch, as an expanded weight is). A dim
// of size 1 never moves the pointer, so its stride is ignored and ld is
// given the packed value. cuBLAS's rule and Eigen's Map both take exactly
// these; nullopt for anything else (a stride-0 row from expand, a view that
// steps by 2 in both dims), which the op packs first.
struct GemmOperand {
  bool row_major = true;
  int64_t ld = 0;            // elements between rows (row-major) or columns (column-major)
  int64_t batch_stride = 0;  // elements between matrices; 0 when B == 1
};
std::optional<GemmOperand> gemm_operand(const Tensor& m);
// bmm's operands: a [B, M, K] and b [B, K, N] of one floating dtype ("<op>:
// ..." names both shapes). The op layer's check and the kernel's.
void check_bmm_operands(const Tensor& a, const Tensor& b, const char* op);
// matmul: the above, out contiguous [B, M, N] of their dtype, and a and b
// each a gemm_operand.
void check_matmul_args(const Tensor& a, const Tensor& b, const Tensor& out);

// ---- indexing (Backend::index_select, index_add) ----

// An index operand is i32/i64 of 0 or 1 dims (the op's check and the kernels').
void check_index_operand(const Tensor& idx, const char* op);
// index_select: 0 <= dim < x.dim(), idx i32/i64 contiguous 0-d or 1-d (values
// are the kernel's to check), out contiguous of x's dtype holding idx.numel()
// slices of x along dim. Returns x's shape split at dim.
DimSplit check_index_select_args(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& out);
// index_add: the same for out (contiguous) and src, which must be contiguous
// of out's shape with idx.numel() at dim (the op packs a strided gradient).
DimSplit check_index_add_args(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src);
// topk: x contiguous floating [R, n], 0 < k <= n, indices contiguous i64 [R, k].
void check_topk_args(const Tensor& x, int64_t k, const Tensor& indices);

// The sort key top-k ranks a value by: its f32 value's bits made unsigned so
// that integer order is float order (flip every bit of a negative, set the
// sign bit of a positive; -0 is taken as +0, NaN ranks above +inf). The CPU
// and CUDA kernels sort these same keys, so they pick the same entries even
// for bf16 or f64 inputs and for ties.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline uint32_t topk_key(float v) {
  if (v == 0.0f) v = 0.0f;  // -0 -> +0
  uint32_t bits;
#if defined(__CUDA_ARCH__)
  bits = __float_as_uint(v);
#else
  __builtin_memcpy(&bits, &v, sizeof bits);
#endif
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// ---- fused ops ----

// swiglu: gate and up [R, F] rows with unit inner stride (any row stride), of
// out's dtype; out contiguous floating [R, F].
void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out);
// swiglu_backward: gate and up as above, dy, dgate and dup contiguous [R, F]
// of their dtype.
void check_swiglu_backward_args(const Tensor& dy, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                                const Tensor& dup);

// cross_entropy's inputs: logits floating [N, V], targets i32/i64 [N] (the
// op's check and the kernels').
void check_cross_entropy_inputs(const Tensor& logits, const Tensor& targets, const char* op);
// cross_entropy: logits [N, V > 0] contiguous floating, targets i64 [N]
// contiguous (their values are checked by the kernel), row_loss and lse f32 [N].
void check_cross_entropy_args(const Tensor& logits, const Tensor& targets, const Tensor& row_loss,
                              const Tensor& lse);
// cross_entropy_backward: logits, targets and lse as above, scale one f32,
// dlogits contiguous like logits.
void check_cross_entropy_backward_args(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                       const Tensor& scale, const Tensor& dlogits);

// rms_norm: x [R, D] contiguous floating, weight contiguous [D] of x's
// dtype, out like x, rstd f32 [R].
void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& out, const Tensor& rstd);
// add_rms_norm: the above, plus residual and sum like x.
void check_add_rms_norm_args(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& sum,
                             const Tensor& out, const Tensor& rstd);
// rms_norm_backward: x, weight and rstd as above, dy and dx like x, dweight like weight.
void check_rms_norm_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                  const Tensor& dx, const Tensor& dweight);

// rope's input: x [B, L, H, Dh] floating with Dh even (the op's check and the kernel's).
void check_rope_input(const Tensor& x, const char* kernel);
// rope: the above with x contiguous, and out like x.
void check_rope_args(const Tensor& x, const Tensor& out, const char* kernel);

// attention's inputs: q [B, H, L, Dh], k and v [B, Hkv, S, Dh] (Hkv divides
// H) of one floating dtype; causal needs S >= L (the op's check and the kernel's).
void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const char* kernel);
// attention: the above, all contiguous, out like q, lse f32 [B, H, L].
void check_attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          bool causal, const char* kernel);
// attention_backward: the above plus dout and dq like q, dk and dv like k.
void check_attention_backward_args(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, bool causal, const Tensor& dq,
                                   const Tensor& dk, const Tensor& dv);

// ---- Lory routing ----

// segment_mean's input: x [B, L, d] floating, T > 0 (the op's check and the kernel's).
void check_segment_mean_input(const Tensor& x, int64_t T);
// segment_mean: the above with x contiguous, out [B, ceil(L/T), d] like x. Returns N.
int64_t check_segment_mean_args(const Tensor& x, int64_t T, const Tensor& out);

// ---- Lory expert merging ----

// merged_linear: x [S, T, in] (transposed: [S, T, out]), weights [S, E],
// experts [E, out, in], out [S, T, out] (transposed: [S, T, in]); contiguous,
// one floating dtype (the op's check and the kernel's). Names both shapes on
// a mismatch.
void check_merged_linear_args(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                              const Tensor& out);
// merged_linear_backward_weights: dy [S, T, out], x [S, T, in], weights
// [S, E], experts [E, out, in], dexperts like experts, dweights like weights.
void check_merged_linear_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weights,
                                       const Tensor& experts, const Tensor& dexperts, const Tensor& dweights);

// ---- optimizer ----

// adamw_step: four contiguous f32 buffers of one length (16-byte aligned, for
// vector loads), an optional bf16/f16 copy of that length (stochastic
// rounding only for bf16), and slots sorted, disjoint and inside the buffers.
void check_adamw_args(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                      const Tensor* publish, const std::vector<Backend::AdamWSlot>& slots,
                      const Backend::AdamWHyper& hyper);
// sum_squares: x contiguous f32, out one f64.
void check_sum_squares_args(const Tensor& x, const Tensor& out);

}  // namespace lory
