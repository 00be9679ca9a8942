// ops.h — every tensor op of the engine, in one table of contents.
//
// Each op is one function defined once in tensor/ops/<family>.cpp, the file
// its section below names. The definition (1) checks and promotes its
// arguments, (2) allocates the output, (3) calls the device's kernel through
// Backend (tensor/backend.h): the Backend method X runs tensor/cpu/X.cpp or
// cuda/X.cu, and (4) if any input requires grad, records a Node
// (tensor/graph.h) whose backward is written with these same ops, so it runs
// on any device that has the forward kernels, or, for a few fused ops
// (ops/nn.cpp), calls a backward kernel of its own. docs/architecture.md
// walks one op end to end and tabulates the trace of the main ones.
//
// Shapes follow NumPy/PyTorch: binary ops broadcast, negative dims count from
// the end, reductions take a list of dims and keepdim.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/tensor.h"

namespace lory {

// ---- elementwise binary, with broadcasting (ops/binary.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient goes to a where a >= b
Tensor minimum(const Tensor& a, const Tensor& b);
// Comparisons return DType::boolean and are not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- elementwise unary and with a scalar (ops/unary.cpp) ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);  // x * sigmoid(x)
Tensor abs(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor add(const Tensor& x, double s);
Tensor sub(const Tensor& x, double s);
Tensor mul(const Tensor& x, double s);
Tensor div(const Tensor& x, double s);
Tensor rsub(const Tensor& x, double s);  // s - x

// ---- select by mask (ops/where.cpp) ----
// cond: boolean, broadcast with a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- reductions (ops/reduce.cpp) ----
// An empty dims list reduces over every dim.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// amax: max over dims; its gradient is shared equally among tied maxima.
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);  // values of amax over one dim
// Sums a gradient down to `shape` (undoes broadcasting): the backward of expand.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- softmax (ops/softmax.cpp); numerically stable, f32 accumulation ----
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- matrix products (ops/matmul.cpp) ----
// a: [..., M, K] @ b: [..., K, N] -> [..., M, N] with broadcast batch dims;
// 1-d operands as in NumPy. Transposed views go to the GEMM without a copy.
// Runs as one bmm, so its backward is bmm's.
Tensor matmul(const Tensor& a, const Tensor& b);
// a: [B, M, K] @ b: [B, K, N] -> [B, M, N], no broadcasting. Backward:
// dA = dC B^T, dB = A^T dC. Kernel: Backend::matmul.
Tensor bmm(const Tensor& a, const Tensor& b);

// ---- indexing (ops/index.cpp) ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// x with src's slices added at `index` along dim: out.index_select(dim, index)
// == x.index_select(dim, index) + src when the indices are distinct; repeated
// indices accumulate, in index order (deterministic). index: integer [n]; src:
// x's shape with n at dim. The scatter of a sparse MoE (each expert's outputs
// back to their tokens). Backward: dx = g, dsrc = g.index_select(dim, index).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// The positions of the k largest entries along the last dim, largest first;
// equal values in position order (a lower position first). x: floating
// [..., n] -> i64 [..., k], 0 < k <= n. Entries are compared as f32 values
// (tensor/kernel_args.h, topk_key), so the CPU and CUDA kernels pick the
// same ones for every dtype. Integer output, no gradient: to differentiate
// through the chosen values, gather them with index_select.
Tensor topk_indices(const Tensor& x, int64_t k);
// weight: [V, D], ids: integer [...] -> [..., D]. Backward scatter-adds rows.
Tensor embedding(const Tensor& weight, const Tensor& ids);

// ---- joining and splitting (ops/join.cpp); split/chunk return views ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// ---- views as free functions (ops/view.cpp) ----
Tensor view(const Tensor& x, const Shape& shape);
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x, int64_t dim);

// ---- copies (ops/copy.cpp) ----
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to_dtype(const Tensor& x, DType dtype);
Tensor to_device(const Tensor& x, Device device);
Tensor detach(const Tensor& x);

// ---- fused neural-network ops (ops/nn.cpp) ----
// gate, up: one shape [..., F]. silu(gate) * up in one pass: SwiGLU's gate,
// the elementwise step of a LLaMA FFN down(silu(gate(x)) * up(x)).
Tensor swiglu(const Tensor& gate, const Tensor& up);
// logits: [N, V] (any float dtype), targets: integer [N]. Mean of
// -log softmax(logits)[target] over rows whose target != ignore_index,
// accumulated in f32; returns an f32 scalar (0 when every row is ignored).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// x: [..., D], weight: [D]. x / sqrt(mean(x^2, -1) + eps) * weight.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
// The residual add before a pre-norm, fused: h = x + residual (x and
// residual of one shape [..., D]) and rms_norm(h, weight, eps), from one pass
// over memory, with the same bits as the two separate ops. Gradients are
// those of the two separate ops.
struct AddRmsNorm {
  Tensor sum;     // h = x + residual: the new residual stream
  Tensor normed;  // rms_norm(h, weight, eps): the next sublayer's input
};
AddRmsNorm add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps);
// x: [B, L, d] -> [B, ceil(L / T), d]: the mean of each segment of T tokens,
// the last (possibly shorter) segment over its real tokens (Lory §3.1).
Tensor segment_mean(const Tensor& x, int64_t T);
// Lory's merged linear, fused (tensor/ops/merged_linear.cpp): for every
// segment s, y[s] = x[s] W̄_s^T with W̄_s = Σ_i weights[s, i] experts[i].
// x: [S, T, in], weights: [S, E], experts: [E, out, in] -> [S, T, out].
// W̄_s is formed a tile at a time and never held whole, in forward or
// backward; nn/merge_experts.h has the GEMM formulation it equals.
Tensor merged_linear(const Tensor& x, const Tensor& weights, const Tensor& experts);
// x: [B, L, H, Dh] (sequence-major, as a projection produces it). Rotates
// pairs (i, i + Dh/2) by angle (pos_offset + l) * theta^(-2i/Dh): the HF LLaMA
// rotate_half convention. pos_offset is the number of cached positions.
Tensor rope(const Tensor& x, double theta, int64_t pos_offset = 0);
// q: [B, H, L, Dh], k, v: [B, Hkv, S, Dh] -> [B, H, L, Dh], H a multiple of
// Hkv (grouped-query attention: query head h reads key/value head
// h / (H / Hkv); Hkv = H is plain multi-head attention).
// softmax(q k^T * scale + causal mask) v; no scale means 1/sqrt(Dh).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true,
                                    std::optional<double> scale = std::nullopt);

// ---- operators ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, double s) { return add(x, s); }
inline Tensor operator-(const Tensor& x, double s) { return sub(x, s); }
inline Tensor operator*(const Tensor& x, double s) { return mul(x, s); }
inline Tensor operator/(const Tensor& x, double s) { return div(x, s); }
inline Tensor operator+(double s, const Tensor& x) { return add(x, s); }
inline Tensor operator-(double s, const Tensor& x) { return rsub(x, s); }
inline Tensor operator*(double s, const Tensor& x) { return mul(x, s); }

}  // namespace lory
