// backend.h — the kernel interface every device implements.
//
// The op layer (tensor/ops/*.cpp) validates arguments, promotes dtypes,
// broadcasts, decides layouts (e.g. which GEMM operands are packed),
// allocates the output and records autograd; then it calls one virtual
// method here on the output's device. A Backend method is therefore a pure
// kernel: it gets tensors whose shapes already agree and only computes.
//
// Every kernel method is pure virtual, and both backends implement all of
// them: the CPU backend (tensor/cpu/, cpu_backend.h) and the CUDA backend
// (cuda/, cuda_backend.h). A backend that missed one would not compile. The
// kernel of method X lives in tensor/cpu/X.cpp and cuda/X.cu (the two file
// maps, in cpu_backend.h and cuda_backend.h, list the few files that hold a
// family: copy holds fill and arange, optimizer holds adamw_step and
// sum_squares, ...). The CUDA backend registers itself (register_cuda_backend,
// below); in a build without CUDA, cuda_backend() throws "this build has no
// CUDA support".
//
// Each method's argument contract is written twice, in words below and in
// code in tensor/kernel_args.h (check_X_args), which both backends call, so
// they refuse the same operands with the same message. Conventions for every
// kernel below:
//   * `out` is contiguous and already allocated with its final shape/dtype.
//   * Elementwise inputs are views with exactly out's shape (broadcast dims
//     have stride 0) and out's dtype, but arbitrary strides.
//   * Floating math in bf16/f16 is done in f32; reductions accumulate in f32
//     or wider.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace lory {

class Tensor;

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, abs,
  add_scalar,  // x + s
  mul_scalar,  // x * s
  pow_scalar,  // x ^ s
  div_scalar,  // x / s (true division, not x * (1/s): 49 / 49 is exactly 1)
};

enum class BinaryOp : uint8_t {
  add, sub, mul, div, maximum, minimum,
  eq, ne, lt, le, gt, ge,  // comparisons: out is DType::boolean
};
inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

enum class ReduceOp : uint8_t { sum, max, min };

enum class RandomDist : uint8_t { uniform, normal };

const char* op_name(UnaryOp op);
const char* op_name(BinaryOp op);
const char* op_name(ReduceOp op);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- memory ----
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  // Waits until all work queued on this device has finished.
  virtual void synchronize() {}

  // ---- copies and creation ----
  // dst[i] = src[i] for every index of dst's shape; src and dst may both be
  // strided views (dst is the one exception to "out is contiguous"), of any
  // dtypes (converted as by a C cast; to bf16/f16 with round-to-nearest-even).
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& out, double value) = 0;
  // out[i] = start + i * step
  virtual void arange(Tensor& out, double start, double step) = 0;
  // Counter-based Philox 4x32-10 keyed by seed; element i of out uses counter
  // offset + i/4 (see tensor/philox.h), so CPU and CUDA give the same numbers.
  // uniform: [a, b); normal: mean a, std b.
  virtual void random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) = 0;

  // ---- elementwise ----
  // out = f(x). Integer x only for neg, abs and add/mul/pow_scalar; no bool.
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) = 0;
  // out = f(a, b); a, b of one dtype; out bool for comparisons. Bool a, b only
  // for comparisons and add/mul/maximum/minimum (or/and/or/and).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = cond ? a : b; cond is a boolean view of out's shape.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // ---- reductions ----
  // x: [O, R] (any strides) -> out: [O]; reduces each row. max and min need
  // R > 0; a sum over R = 0 elements is 0.
  virtual void reduce(ReduceOp op, const Tensor& x, Tensor& out) = 0;
  // x, out: [R, C] contiguous floating; (log-)softmax of each row, max-subtracted.
  virtual void softmax(const Tensor& x, Tensor& out, bool log) = 0;

  // ---- linear algebra ----
  // a: [B, M, K], b: [B, K, N], out: [B, M, N] contiguous, one floating
  // dtype. Each matrix of a and b is row-major (stride(-1) == 1) or
  // column-major (stride(-2) == 1) with rows (columns) that do not overlap,
  // i.e. a transposed view is taken as is; batch strides are >= 0 (0 for a
  // broadcast operand). gemm_operand (tensor/kernel_args.h) is that rule in
  // code; the op packs anything else. Accumulates in f32 (f64 for f64).
  virtual void matmul(const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // ---- indexing ----
  // out = x.index_select(dim, idx); idx is contiguous i32/i64 [n]; x any strides.
  virtual void index_select(const Tensor& x, int64_t dim, const Tensor& idx, Tensor& out) = 0;
  // out.index_select(dim, idx) += src, accumulating repeated indices in order
  // (deterministic); out and src are contiguous, out is updated in place.
  virtual void index_add(Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) = 0;
  // indices[r, :] = the positions of the k largest entries of row r of x
  // (contiguous floating [R, n], 0 < k <= n; indices contiguous i64 [R, k]),
  // largest first; equal values in position order. Values are ranked by
  // topk_key (tensor/kernel_args.h), i.e. as f32, so both backends agree.
  virtual void topk(const Tensor& x, int64_t k, Tensor& indices) = 0;

  // ---- fused ops ----
  // SwiGLU's gate (Shazeer 2020), the elementwise step of a LLaMA FFN:
  // out = silu(gate) * up, in f32 for bf16/f16 and rounded once. gate, up:
  // [R, F] with unit inner stride and any row stride (the two halves of one
  // fused projection qualify); out: [R, F] contiguous. One dtype throughout.
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // Its backward, fused (one read of dy, gate, up; one write of each
  // gradient), with s = sigmoid(gate):
  //   dgate = dy * up * s * (1 + gate * (1 - s)),   dup = dy * gate * s
  // dy, dgate, dup: [R, F] contiguous; gate, up as in swiglu. One dtype.
  virtual void swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) = 0;

  // logits: [N, V] contiguous, targets: [N] i64. Writes per-row loss
  // (lse - logit[target], 0 where target == ignore_index) and the row's
  // log-sum-exp, both f32 [N].
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                     Tensor& row_loss, Tensor& lse) = 0;
  // dlogits = scale * (softmax(logits) - onehot(target)) on non-ignored rows,
  // 0 on ignored rows. scale: f32 [1] (upstream grad / number of counted rows).
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                      int64_t ignore_index, const Tensor& scale, Tensor& dlogits) = 0;
  // x: [R, D] contiguous, weight: [D]. out = x * rsqrt(mean(x^2) + eps) * weight;
  // rstd: f32 [R] saved for backward.
  virtual void rms_norm_forward(const Tensor& x, const Tensor& weight, double eps, Tensor& out, Tensor& rstd) = 0;
  // The residual add before a norm, fused with it: sum = x + residual
  // (rounded to x's dtype, as a separate add would), then out and rstd as
  // rms_norm_forward of sum, in one pass over the rows. x, residual, sum,
  // out: [R, D] contiguous. The same bits as binary(add) then rms_norm_forward.
  virtual void add_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                    Tensor& sum, Tensor& out, Tensor& rstd) = 0;
  // dx: [R, D]; dweight: [D] (weight's dtype), summed over rows in a fixed order.
  virtual void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                 Tensor& dx, Tensor& dweight) = 0;
  // Rotary embedding, HF LLaMA rotate_half convention. x, out: [B, L, H, Dh]
  // contiguous; position of row l is pos_offset + l; inverse rotates by the
  // negative angle (that is the backward).
  virtual void rope(const Tensor& x, Tensor& out, int64_t pos_offset, double theta, bool inverse) = 0;
  // Scaled dot-product attention. q: [B, H, L, Dh]; k, v: [B, Hkv, S, Dh]
  // with H % Hkv == 0 (query head h reads key/value head h / (H / Hkv)); all
  // contiguous. dk and dv sum over the H / Hkv query heads of a group. Causal masking aligns the last query with the last key
  // (query i sees keys j <= i + S - L), which is what a KV cache needs.
  // out: [B, H, L, Dh]; lse: f32 [B, H, L] (log-sum-exp of each score row).
  virtual void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                 Tensor& out, Tensor& lse) = 0;
  virtual void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, double scale, bool causal, Tensor& dq,
                                  Tensor& dk, Tensor& dv) = 0;

  // ---- Lory routing ----
  // x: [B, L, d] contiguous -> out: [B, N, d], N = ceil(L / T): the mean of
  // each segment of T tokens; the last segment averages its real tokens only
  // (L - (N-1) T of them). Accumulates in f32 (f64 for f64), in token order.
  virtual void segment_mean(const Tensor& x, int64_t T, Tensor& out) = 0;

  // ---- Lory expert merging (nn/merge_experts.h has the maths) ----
  // The merged linear of a Lory layer, fused: for every segment s, with the
  // merged matrix W̄_s = Σ_i weights[s, i] experts[i] (eq. (2)/(3)),
  //   transposed = false:  out[s] = x[s] W̄_s^T   x: [S, T, in]   out: [S, T, out]
  //   transposed = true:   out[s] = x[s] W̄_s     x: [S, T, out]  out: [S, T, in]
  // (the second is the first's input gradient). experts: [E, out, in],
  // weights: [S, E]; all contiguous, one floating dtype. W̄_s is never held
  // whole: it is formed a tile at a time and used at once.
  virtual void merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts, bool transposed,
                             Tensor& out) = 0;
  // Its parameter gradients, with G_s = dy[s]^T x[s] ([out, in], also never
  // held whole), dy: [S, T, out], x: [S, T, in]:
  //   dexperts[i] = Σ_s weights[s, i] G_s        [E, out, in]
  //   dweights[s, i] = <G_s, experts[i]>         [S, E]
  // accumulated in f32 (f64 for f64) in a fixed order: the same bits on
  // every run and thread count. Same contiguity and dtype rules as above.
  virtual void merged_linear_backward_weights(const Tensor& dy, const Tensor& x, const Tensor& weights,
                                              const Tensor& experts, Tensor& dexperts, Tensor& dweights) = 0;

  // ---- optimizer ----
  // One AdamW update over flat f32 buffers, every parameter slot in one pass
  // (train/adamw.h has the formula). Per element i of each slot:
  //   g = grad[i] * clip;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  //   param[i] = param[i] * keep - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
  // and, when `publish` is given (bf16/f16 [n], the model's compute copy),
  // publish[i] = param[i] rounded to its dtype: to nearest even, or
  // stochastically (rounding_seed != 0: a random 16-bit value from Philox
  // (rounding_seed, element i) is added below the kept bits before
  // truncation, so rounding is unbiased in expectation). Elements outside
  // every slot (alignment padding) are left alone.
  struct AdamWSlot {
    int64_t offset, numel;           // elements, into every buffer
    double step_size;                // lr / (1 - b1^t)
    double inv_sqrt_bc2;             // 1 / sqrt(1 - b2^t)
    double keep;                     // 1 - lr wd (1 without decay)
  };
  struct AdamWHyper {
    double beta1, beta2, eps, clip;
    uint64_t rounding_seed = 0;  // 0: round to nearest even
  };
  virtual void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* publish,
                          const std::vector<AdamWSlot>& slots, const AdamWHyper& hyper) = 0;
  // out (f64 [1]) = Σ x[i]^2 over a contiguous f32 x, accumulated in f64 in
  // a fixed order (chunks of 65536 elements, each summed in vector lanes
  // combined in a fixed order, then the chunks in order): the squared global
  // gradient norm, the same bits on every run and thread count.
  virtual void sum_squares(const Tensor& x, Tensor& out) = 0;
};

// The backend that owns a device's memory and kernels.
Backend& backend_for(Device device);
// Defined in tensor/cpu/cpu_backend.cpp.
Backend& cpu_backend();
// The CUDA backend lives one layer up (cuda/, its own library), so the tensor
// layer knows it only through these hooks, which cuda/cuda_backend.cu
// registers when the program loads. In a build without CUDA nothing registers:
// cuda_backend() then throws "this build has no CUDA support" and the two
// questions answer no.
struct CudaBackendHooks {
  Backend& (*backend)(int index);  // the backend of cuda:index (throws when there is no such device)
  int (*device_count)();
};
void register_cuda_backend(const CudaBackendHooks& hooks);
Backend& cuda_backend(int index);
// True when this build has CUDA and a GPU is present.
bool cuda_is_available();
int cuda_device_count();

}  // namespace lory
