// nn.cpp — the fused ops of a Transformer.
//
// Each has a forward kernel of its own, so that the forward writes no
// full-size intermediate. Most ops write their backward with other ops; these
// are deliberate exceptions, with a backward kernel of their own: composing
// them from small ops would store several full-size intermediates (the
// softmax of a [tokens, vocab] logit matrix, the attention matrix) that the
// fused kernels recompute or never materialise, or (swiglu) make eight passes
// over [tokens, F] where one will do. Each keeps only what its backward
// needs: cross-entropy the row log-sum-exp, RMSNorm the row 1/rms, attention
// the output and the row log-sum-exp, swiglu its two inputs. add_rms_norm and
// segment_mean reuse RMSNorm's backward and compose theirs from ops.
#include <cmath>

#include "tensor/kernel_args.h"
#include "tensor/ops/op_util.h"

namespace lory {

using namespace ops_detail;

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  profiler::OpScope timed("swiglu");
  check_same_device(gate, up, "swiglu");
  check_floating(gate, "swiglu");
  LORY_CHECK(gate.shape() == up.shape() && gate.dim() >= 1,
             "swiglu: gate and up must have one shape [..., F]: gate is ", gate.describe(), ", up is ", up.describe());
  const DType dtype = promote_types(gate.dtype(), up.dtype());
  const int64_t F = gate.size(-1), R = F ? gate.numel() / F : 0;
  Tensor out;
  {
    NoGradGuard no_grad;
    // [R, F] rows with unit inner stride: a view for contiguous inputs and for
    // the halves of a fused [..., 2F] projection, a copy otherwise.
    auto rows = [&](const Tensor& t) {
      Tensor r = t.to(dtype).reshape({R, F});
      return r.stride(1) == 1 || F == 1 ? r : r.contiguous();
    };
    out = empty_on({R, F}, dtype, gate);
    if (out.numel() > 0) kernels(gate).swiglu(rows(gate), rows(up), out);
    out = out.view(gate.shape());
  }
  if (!any_requires_grad({&gate, &up})) return out;
  // d/dgate = g * up * silu'(gate), silu'(x) = s (1 + x (1 - s));  d/dup = g * silu(gate):
  // one fused kernel (Backend::swiglu_backward) rather than eight elementwise passes.
  SavedTensor sg(gate), su(up);
  const Shape shape = gate.shape();
  return record("SwigluBackward", {gate, up}, out, [sg, su, shape, dtype, R, F](const Tensor& g) {
    const Tensor& x = sg.get("SwigluBackward");
    const Tensor& u = su.get("SwigluBackward");
    auto rows = [&](const Tensor& t) {
      Tensor r = t.to(dtype).reshape({R, F});
      return r.stride(1) == 1 || F == 1 ? r : r.contiguous();
    };
    const Tensor dy = g.to(dtype).contiguous().reshape({R, F});
    Tensor dgate = empty_on({R, F}, dtype, dy), dup = empty_on({R, F}, dtype, dy);
    if (dy.numel() > 0) kernels(dy).swiglu_backward(dy, rows(x), rows(u), dgate, dup);
    return std::vector<Tensor>{dgate.view(shape), dup.view(shape)};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  profiler::OpScope timed("cross_entropy");
  check_same_device(logits, targets, "cross_entropy");
  check_cross_entropy_inputs(logits, targets, "cross_entropy");
  const int64_t N = logits.size(0);
  Tensor x, t, row_loss, lse, loss, count;
  {
    NoGradGuard no_grad;
    x = logits.contiguous();
    t = targets.to(DType::i64).contiguous();
    row_loss = empty_on({N}, DType::f32, x);
    lse = empty_on({N}, DType::f32, x);
    if (N > 0) kernels(x).cross_entropy_forward(x, t, ignore_index, row_loss, lse);
    // Mean over the rows that count; all on device, no host sync.
    count = maximum(sum(ne(t, full({}, static_cast<double>(ignore_index), {DType::i64, x.device(), false})))
                        .to(DType::f32),
                    constant_like(1.0, row_loss));
    loss = sum(row_loss) / count;
  }
  if (!any_requires_grad({&logits})) return loss;
  SavedTensor sx(x), st(t), slse(lse), scount(count);
  return record("CrossEntropyBackward", {logits}, loss, [sx, st, slse, scount, ignore_index](const Tensor& g) {
    const char* node = "CrossEntropyBackward";
    const Tensor& x = sx.get(node);
    const Tensor scale = (g.to(DType::f32) / scount.get(node)).reshape({1});
    Tensor dx = empty_like(x);
    if (x.numel() > 0) kernels(x).cross_entropy_backward(x, st.get(node), slse.get(node), ignore_index, scale, dx);
    return std::vector<Tensor>{dx};
  });
}

namespace {

// The backward of y = rms_norm(x) given its saved [R, D] input, weight and
// rstd (f32 [R], r = 1 / sqrt(mean(x^2) + eps) per row): one
// Backend::rms_norm_backward kernel (tensor/cpu/rms_norm.cpp,
// cuda/rms_norm.cu) with g = dy * w,
//   dx = r g - (r^3 / D) (g . x) x   [R, D]      dw = Σ_rows dy x r   [D]
// (dw summed over rows in a fixed order on both devices).
BackwardFn rms_norm_backward_fn(const Tensor& x2, const Tensor& w, const Tensor& rstd, const Shape& shape) {
  const int64_t D = x2.size(1), R = x2.size(0);
  SavedTensor sx(x2), sw(w), sr(rstd);
  return [sx, sw, sr, shape, R, D](const Tensor& g) {
    const char* node = "RmsNormBackward";
    const Tensor& x = sx.get(node);
    const Tensor& w = sw.get(node);
    Tensor dx = empty_like(x), dw = empty_like(w);
    if (x.numel() > 0) {
      kernels(x).rms_norm_backward(g.to(x.dtype()).contiguous().view({R, D}), x, w, sr.get(node), dx, dw);
    } else {
      dw.zero_();
    }
    return std::vector<Tensor>{dx.view(shape), dw};
  };
}

}  // namespace

// rms_norm — trace:
//   declared  tensor/ops.h; x [..., D] is run as its [R, D] rows, weight [D]
//   kernel    Backend::rms_norm_forward (tensor/backend.h): CPU
//             tensor/cpu/rms_norm.cpp, CUDA cuda/rms_norm.cu; contract
//             check_rms_norm_args (tensor/kernel_args.h)
//   backward  RmsNormBackward: rms_norm_backward_fn above, a kernel of its own
//   tests     tests/test_ops.cpp, tests/test_autograd.cpp, tests/cuda/test_cuda_nn.cpp
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  profiler::OpScope timed("rms_norm");
  check_same_device(x, weight, "rms_norm");
  check_floating(x, "rms_norm");
  LORY_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1),
             "rms_norm: weight must be [D] for input [..., D]: x is ", x.describe(), ", weight is ", weight.describe());
  LORY_CHECK(eps >= 0, "rms_norm: eps must be >= 0, got ", eps);
  const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
  Tensor x2, w, out, rstd;
  {
    NoGradGuard no_grad;
    x2 = x.contiguous().view({R, D});
    w = weight.to(x.dtype()).contiguous();
    out = empty_on({R, D}, x.dtype(), x);
    rstd = empty_on({R}, DType::f32, x);
    if (out.numel() > 0) kernels(x).rms_norm_forward(x2, w, eps, out, rstd);
  }
  out = out.view(x.shape());
  if (!any_requires_grad({&x, &weight})) return out;
  return record("RmsNormBackward", {x, weight}, out, rms_norm_backward_fn(x2, w, rstd, x.shape()));
}

// add_rms_norm — trace:
//   declared  tensor/ops.h; x and residual [..., D] run as [R, D] rows
//   kernel    Backend::add_rms_norm_forward (tensor/backend.h), one pass that
//             writes h = x + residual and rms_norm(h): CPU
//             tensor/cpu/rms_norm.cpp, CUDA cuda/rms_norm.cu; contract
//             check_add_rms_norm_args (tensor/kernel_args.h)
//   backward  two nodes, as if the add and the norm had run apart:
//             AddBackward (dx = dresidual = dh) and RmsNormBackward
//             (rms_norm_backward_fn above, on the saved h)
//   tests     tests/test_fused_kernels.cpp (fused = unfused, bit for bit),
//             tests/cuda/test_cuda_nn.cpp
AddRmsNorm add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
  profiler::OpScope timed("add_rms_norm");
  check_same_device(x, residual, "add_rms_norm");
  check_same_device(x, weight, "add_rms_norm");
  check_floating(x, "add_rms_norm");
  LORY_CHECK(x.shape() == residual.shape() && x.dtype() == residual.dtype(),
             "add_rms_norm: x and residual must have one shape and dtype: x is ", x.describe(), ", residual is ",
             residual.describe());
  LORY_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1),
             "add_rms_norm: weight must be [D] for input [..., D]: x is ", x.describe(), ", weight is ",
             weight.describe());
  LORY_CHECK(eps >= 0, "add_rms_norm: eps must be >= 0, got ", eps);
  const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
  Tensor h, out, rstd, w;
  {
    NoGradGuard no_grad;
    const Tensor x2 = x.contiguous().view({R, D}), r2 = residual.contiguous().view({R, D});
    w = weight.to(x.dtype()).contiguous();
    h = empty_on({R, D}, x.dtype(), x);
    out = empty_on({R, D}, x.dtype(), x);
    rstd = empty_on({R}, DType::f32, x);
    if (out.numel() > 0) kernels(x).add_rms_norm_forward(x2, r2, w, eps, h, out, rstd);
  }
  AddRmsNorm result{h.view(x.shape()), out.view(x.shape())};
  if (!any_requires_grad({&x, &residual, &weight})) return result;
  // Two nodes, as if the add and the norm had run apart: h's gradient is the
  // sum of what flows into it from the norm and from the residual stream.
  result.sum = record("AddBackward", {x, residual}, result.sum,
                      [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
  result.normed = record("RmsNormBackward", {result.sum, weight}, result.normed,
                         rms_norm_backward_fn(h, w, rstd, x.shape()));
  return result;
}

Tensor segment_mean(const Tensor& x, int64_t T) {
  profiler::OpScope timed("segment_mean");
  check_defined(x, "segment_mean");
  check_segment_mean_input(x, T);
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), N = (L + T - 1) / T;
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor xc = x.contiguous();
    out = empty_on({B, N, d}, x.dtype(), x);
    if (out.numel() > 0) kernels(x).segment_mean(xc, T, out);
  }
  if (!any_requires_grad({&x})) return out;
  // Each token gets its segment's gradient over the segment's token count.
  return record("SegmentMeanBackward", {x}, out, [B, L, d, N, T](const Tensor& g) {
    const int64_t last = L - (N - 1) * T;  // tokens in the last segment
    // Counts and the division in f32 at least: a bf16 count above 256 would round.
    const DType div_type = g.dtype() == DType::f64 ? DType::f64 : DType::f32;
    Tensor counts = full({1, N, 1}, static_cast<double>(T), {div_type, g.device(), false});
    if (last != T) counts.narrow(1, N - 1, 1).fill_(static_cast<double>(last));
    const Tensor per_token =
        (g.to(div_type) / counts).to(g.dtype()).unsqueeze(2).expand({B, N, T, d}).reshape({B, N * T, d});
    return std::vector<Tensor>{N * T == L ? per_token : per_token.narrow(1, 0, L).contiguous()};
  });
}

Tensor rope(const Tensor& x, double theta, int64_t pos_offset) {
  profiler::OpScope timed("rope");
  check_defined(x, "rope");
  check_rope_input(x, "rope");
  LORY_CHECK(theta > 0, "rope: theta must be positive, got ", theta);
  LORY_CHECK(pos_offset >= 0, "rope: pos_offset must be >= 0, got ", pos_offset);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor in = x.contiguous();
    out = empty_like(in);
    if (out.numel() > 0) kernels(x).rope(in, out, pos_offset, theta, false);
  }
  if (!any_requires_grad({&x})) return out;
  // A rotation's transpose is the rotation by the opposite angle.
  return record("RopeBackward", {x}, out, [theta, pos_offset](const Tensor& g) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty_like(gc);
    if (dx.numel() > 0) kernels(gc).rope(gc, dx, pos_offset, theta, true);
    return std::vector<Tensor>{dx};
  });
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    std::optional<double> scale_arg) {
  profiler::OpScope timed("scaled_dot_product_attention");
  check_same_device(q, k, "scaled_dot_product_attention");
  check_same_device(q, v, "scaled_dot_product_attention");
  check_attention_inputs(q, k, v, causal, "scaled_dot_product_attention");
  LORY_CHECK(!scale_arg || std::isfinite(*scale_arg), "scaled_dot_product_attention: scale must be finite, got ",
             *scale_arg);
  const double scale = scale_arg ? *scale_arg : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor qc, kc, vc, out, lse;
  {
    NoGradGuard no_grad;
    qc = q.contiguous();
    kc = k.contiguous();
    vc = v.contiguous();
    out = empty_like(qc);
    lse = empty_on({q.size(0), q.size(1), q.size(2)}, DType::f32, q);
    if (out.numel() > 0) kernels(q).attention_forward(qc, kc, vc, scale, causal, out, lse);
  }
  if (!any_requires_grad({&q, &k, &v})) return out;
  SavedTensor sq(qc), sk(kc), sv(vc), so(out), sl(lse);
  return record("AttentionBackward", {q, k, v}, out, [sq, sk, sv, so, sl, scale, causal](const Tensor& g) {
    const char* node = "AttentionBackward";
    const Tensor& q = sq.get(node);
    const Tensor& k = sk.get(node);
    const Tensor& v = sv.get(node);
    Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
    if (q.numel() > 0 && k.numel() > 0) {
      kernels(q).attention_backward(g.to(q.dtype()).contiguous(), q, k, v, so.get(node), sl.get(node), scale, causal,
                                    dq, dk, dv);
    } else {
      dq.zero_();
      dk.zero_();
      dv.zero_();
    }
    return std::vector<Tensor>{dq, dk, dv};
  });
}

}  // namespace lory
