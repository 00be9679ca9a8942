// kernel_args.h — the argument checks of Backend methods, shared by every
// backend, so the CPU and CUDA kernels of an op accept exactly the same
// inputs and refuse the rest with the same message (naming the kernel, the
// operand and both shapes). The op layer (tensor/ops/) has already brought
// the operands to the layout the contract in tensor/backend.h describes; these
// catch a caller that bypasses it (tests, benchmarks, the trainer).
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace lory {

// A shape seen around one dim as [outer, size, inner] (outer: the product of
// the dims before it, inner: of the dims after it).
struct DimSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
DimSplit split_at_dim(const Shape& shape, int64_t dim);

// index_select: 0 <= dim < x.dim(), idx i32/i64 contiguous 0-d or 1-d (values
// are the kernel's to check), out contiguous of x's dtype holding idx.numel()
// slices of x along dim. Returns x's shape split at dim.
DimSplit check_index_select_args(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& out);
// index_add: the same for out (contiguous) and src, which must be out's shape
// with idx.numel() at dim.
DimSplit check_index_add_args(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src);

// t is contiguous with x's shape and dtype ("<kernel>: <what> must be contiguous like x ...").
void check_rows_like(const Tensor& t, const Tensor& x, const char* kernel, const char* what);
// t is a contiguous f32 vector of n elements.
void check_f32_rows(const Tensor& t, int64_t n, const char* kernel, const char* what);

// swiglu: gate and up [R, F] rows with unit inner stride (any row stride), of
// out's dtype; out (and, for the backward, dy and the gradients) contiguous [R, F].
void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out, const char* kernel);

// rms_norm_*: x [R, D] contiguous floating, weight [D] of x's dtype, rstd f32 [R].
void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& rstd, const char* kernel);
// rms_norm_backward: the above plus dy and dx like x, dweight like weight.
void check_rms_norm_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                  const Tensor& dx, const Tensor& dweight);

// segment_mean: x [B, L, d] contiguous, T > 0, out [B, ceil(L/T), d] like x. Returns N.
int64_t check_segment_mean_args(const Tensor& x, int64_t T, const Tensor& out);

// adamw_step: four contiguous f32 buffers of one length (16-byte aligned, for
// vector loads), an optional bf16/f16 copy of that length (stochastic
// rounding only for bf16), and slots sorted, disjoint and inside the buffers.
void check_adamw_args(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                      const Tensor* publish, const std::vector<Backend::AdamWSlot>& slots,
                      const Backend::AdamWHyper& hyper);

// sum_squares: x contiguous f32, out one f64.
void check_sum_squares_args(const Tensor& x, const Tensor& out);

// cross_entropy: logits [N, V > 0] contiguous floating, targets i64 [N]
// contiguous (their values are checked by the kernel), row_loss and lse f32 [N].
void check_cross_entropy_args(const Tensor& logits, const Tensor& targets, const Tensor& row_loss,
                              const Tensor& lse);
// cross_entropy_backward: logits, targets and lse as above, scale one f32,
// dlogits contiguous like logits.
void check_cross_entropy_backward_args(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                       const Tensor& scale, const Tensor& dlogits);

// rope: x [B, L, H, Dh] contiguous floating with Dh even, out like x.
void check_rope_args(const Tensor& x, const Tensor& out, const char* kernel);

// attention: q [B, H, L, Dh], k and v [B, H, S, Dh], out like q, all
// contiguous of q's dtype; lse f32 [B, H, L]; causal needs S >= L.
void check_attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          bool causal, const char* kernel);
// attention_backward: the above plus dout and dq like q, dk and dv like k.
void check_attention_backward_args(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, bool causal, const Tensor& dq,
                                   const Tensor& dk, const Tensor& dv);

}  // namespace lory
