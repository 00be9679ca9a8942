// kernel_args.cpp — see kernel_args.h.
#include "tensor/kernel_args.h"

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

void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out, const char* kernel) {
  LORY_CHECK(out.dim() == 2 && out.is_contiguous() && is_floating(out.dtype()), kernel,
             ": out must be contiguous floating [R, F], got ", out.describe());
  for (const Tensor* in : {&gate, &up})
    LORY_CHECK(in->shape() == out.shape() && in->dtype() == out.dtype() && (in->stride(1) == 1 || out.size(1) <= 1),
               kernel, ": gate and up must be [R, F] rows with unit inner stride, like out ", out.describe(),
               ": gate is ", gate.describe(), ", up is ", up.describe());
}

void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& rstd, const char* kernel) {
  LORY_CHECK(x.dim() == 2 && x.is_contiguous() && is_floating(x.dtype()), kernel,
             ": x must be contiguous floating [R, D], got ", x.describe());
  LORY_CHECK(weight.dim() == 1 && weight.size(0) == x.size(1) && weight.dtype() == x.dtype() &&
                 weight.is_contiguous(),
             kernel, ": weight must be contiguous [D] of x's dtype: x is ", x.describe(), ", weight is ",
             weight.describe());
  check_f32_rows(rstd, x.size(0), kernel, "rstd");
}

void check_rms_norm_backward_args(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                  const Tensor& dx, const Tensor& dweight) {
  const char* kernel = "rms_norm_backward";
  check_rms_norm_args(x, weight, rstd, kernel);
  check_rows_like(dy, x, kernel, "dy");
  check_rows_like(dx, x, kernel, "dx");
  LORY_CHECK(dweight.shape() == weight.shape() && dweight.dtype() == weight.dtype() && dweight.is_contiguous(),
             kernel, ": dweight must be contiguous like weight ", weight.describe(), ", got ", dweight.describe());
}

int64_t check_segment_mean_args(const Tensor& x, int64_t T, const Tensor& out) {
  LORY_CHECK(x.dim() == 3 && x.is_contiguous() && is_floating(x.dtype()),
             "segment_mean: x must be contiguous floating [B, L, d], got ", x.describe());
  LORY_CHECK(T > 0, "segment_mean: segment length must be > 0, got ", T);
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), N = (L + T - 1) / T;
  LORY_CHECK(out.dim() == 3 && out.size(0) == B && out.size(1) == N && out.size(2) == d && out.is_contiguous() &&
                 out.dtype() == x.dtype(),
             "segment_mean: out must be contiguous [", B, ", ", N, ", ", d, "] like x ", x.describe(), ", got ",
             out.describe());
  return N;
}

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
