// The CUDA kernels of the model and the optimizer against the CPU backend:
// gather/scatter-add, fused cross-entropy, RMSNorm (and its fused residual
// add), RoPE, segment means, the fused expert merge (merged_linear, over
// several workspace chunks), attention on both CUDA paths (FlashAttention on
// tensor cores, and the general kernels), the fused AdamW and the gradient
// norm, then a whole Lory layer and a whole Lory model, forward and backward.
// Helpers in tests/cuda/compare.h; skipped where no GPU exists.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/graph.h"
#include "cuda/cuda_backend.h"
#include "nn/lory_ffn.h"
#include "nn/lory_lm.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/cuda/compare.h"

using namespace lory;
using namespace lory::cuda_test;

namespace {

// Deterministic pseudo-random integers in [0, n).
std::vector<int64_t> random_ids(int64_t count, int64_t n, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<size_t>(count));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t& id : ids) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(n));
  }
  return ids;
}

Tensor ids_tensor(const std::vector<int64_t>& ids, DType t = DType::i64) {
  return from_vector(ids, {static_cast<int64_t>(ids.size())}, {DType::i64}).to(t);
}

// Grads of f(inputs) . w with respect to every input, on device d.
template <typename F>
std::vector<Tensor> grads_on(Device d, const std::vector<Tensor>& cpu_inputs, F f, uint64_t seed) {
  std::vector<Tensor> in;
  for (const Tensor& x : cpu_inputs) {
    Tensor t = x.to(d).clone();
    t.set_requires_grad(true);
    in.push_back(t);
  }
  const Tensor y = f(in);
  manual_seed(seed);
  const Tensor w = randn(y.shape()).to(y.dtype()).to(d);
  sum(mul(y.to(DType::f32), w.to(DType::f32))).backward();
  std::vector<Tensor> g;
  for (const Tensor& t : in) g.push_back(t.grad());
  return g;
}

template <typename F>
void check_grads(const std::string& what, Tol tol, const std::vector<Tensor>& cpu_inputs, F f, uint64_t seed = 7) {
  const std::vector<Tensor> e = grads_on(cpu_device(), cpu_inputs, f, seed), a = grads_on(kGpu, cpu_inputs, f, seed);
  for (size_t i = 0; i < e.size(); ++i) expect_close(e[i], a[i], tol, what + ": gradient of input " + std::to_string(i));
}

}  // namespace

// ---------------------------------------------------------------------------
// Gather and scatter-add
// ---------------------------------------------------------------------------

TEST_CASE("cuda: index_select matches the CPU along every dim, for i32 and i64 indices and strided inputs") {
  for (DType t : kAllTypes) {
    const Tensor x = mul(randn_as({5, 6, 7}, DType::f64, 1), 10.0).to(t);
    for (int64_t dim = 0; dim < 3; ++dim) {
      for (DType it : {DType::i64, DType::i32}) {
        const Tensor idx = ids_tensor(random_ids(9, x.size(dim), 2 + dim), it);  // repeats included
        check_same(name_of("index_select dim " + std::to_string(dim), t), Tol{0, 0},
                   [dim](const Tensor& a, const Tensor& i) { return index_select(a, dim, i); }, x, idx);
        check_same(name_of("index_select of a transposed view, dim " + std::to_string(dim), t), Tol{0, 0},
                   [dim](const Tensor& a, const Tensor& i) { return index_select(a.transpose(0, 2), dim, i); }, x,
                   ids_tensor(random_ids(4, 5, 3), it));
      }
    }
  }
  // The 16-byte row path: bf16 embedding rows of 64 and f32 rows of 12.
  for (DType t : {DType::bf16, DType::f32}) {
    const Tensor table = randn_as({100, t == DType::bf16 ? 64 : 12}, t, 4);
    check_same(name_of("embedding rows", t), Tol{0, 0},
               [](const Tensor& w, const Tensor& i) { return embedding(w, i.reshape({3, 11})); }, table,
               ids_tensor(random_ids(33, 100, 5)));
  }
}

TEST_CASE("cuda: index_add adds repeated indices in order, equal to the CPU bit for bit") {
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i64}) {
    for (int64_t dim = 0; dim < 3; ++dim) {
      Shape shape{4, 5, 6};
      const std::vector<int64_t> idv = random_ids(13, shape[dim], 10 + dim);  // 13 > 4, 5, 6: many repeats
      Shape src_shape = shape;
      src_shape[dim] = 13;
      const Tensor src = mul(randn_as(src_shape, DType::f64, 11), 3.0).to(t);
      const Tensor base = randn_as(shape, DType::f64, 12).to(t);
      Tensor cpu_out = base.clone(), gpu_out = base.to(kGpu);
      cpu_backend().index_add(cpu_out, dim, ids_tensor(idv), src);
      cuda_backend(0).index_add(gpu_out, dim, ids_tensor(idv).to(kGpu), src.to(kGpu));
      expect_close(cpu_out, gpu_out, Tol{0, 0}, name_of("index_add dim " + std::to_string(dim), t));
      // A strided src (a transposed view) is the op's to pack: both kernels refuse it.
      Tensor gpu_out2 = base.to(kGpu);
      const Tensor src_t = src.to(kGpu).transpose(0, 2).contiguous().transpose(0, 2);
      CHECK_THROWS_WITH_AS(cuda_backend(0).index_add(gpu_out2, dim, ids_tensor(idv).to(kGpu), src_t),
                           doctest::Contains("index_add: src must be contiguous"), Error);
    }
  }
  // Embedding backward (index_add of [tokens, d] into [vocab, d]), twice: the same bits.
  auto grad = [](Device d) {
    manual_seed(13);
    Tensor w = randn({50, 32}).to(d);
    w.set_requires_grad(true);
    const Tensor ids = ids_tensor(random_ids(400, 50, 14)).to(d);
    manual_seed(15);
    sum(mul(embedding(w, ids), randn({400, 32}).to(d))).backward();
    return w.grad();
  };
  const Tensor g1 = grad(kGpu), g2 = grad(kGpu);
  expect_close(grad(cpu_device()), g1, Tol{1e-6, 1e-6}, "embedding backward");
  expect_close(g1, g2, Tol{0, 0}, "embedding backward is deterministic");
}

TEST_CASE("cuda: topk_indices picks the CPU's entries in the CPU's order, ties and 16-bit types included") {
  for (DType t : kFloatTypes) {
    // 8 rows (experts) of 3000 scores: many rows, a row longer than a block; in
    // bf16/f16 many exact ties, which both kernels break by position.
    const Tensor x = randn_as({8, 3000}, t, 31);
    for (int64_t k : {int64_t{1}, int64_t{375}, int64_t{3000}})
      check_same(name_of("topk_indices k " + std::to_string(k), t), Tol{0, 0},
                 [k](const Tensor& a) { return topk_indices(a, k); }, x);
  }
  const Tensor tied = from_vector(std::vector<double>{1, 3, 3, -0.0, 0.0, 3, -1}, {1, 7}, {DType::f32});
  check_same("topk_indices of ties and signed zeros", Tol{0, 0}, [](const Tensor& a) { return topk_indices(a, 7); },
             tied);
  check_same("topk_indices of one row", Tol{0, 0}, [](const Tensor& a) { return topk_indices(a, 2); },
             randn_as({5}, DType::f32, 32));
}

TEST_CASE("cuda: the index_add op and its gradient match the CPU") {
  const Tensor idx = ids_tensor(random_ids(40, 12, 33));
  for (DType t : {DType::f32, DType::bf16}) {
    auto run = [&](Device d) {
      Tensor x = randn_as({12, 16}, t, 34).to(d), src = randn_as({40, 16}, t, 35).to(d);
      x.set_requires_grad(true);
      src.set_requires_grad(true);
      const Tensor y = index_add(x, 0, idx.to(d), src);
      manual_seed(36);
      sum(mul(y.to(DType::f32), randn(y.shape()).to(d))).backward();
      return std::vector<Tensor>{y.detach(), x.grad(), src.grad()};
    };
    const std::vector<Tensor> e = run(cpu_device()), a = run(kGpu);
    for (size_t i = 0; i < e.size(); ++i) expect_close(e[i], a[i], tol_for(t), name_of("index_add op " + std::to_string(i), t));
  }
}

TEST_CASE("cuda: an Expert Choice layer (token and segment level) matches the CPU, forward and backward") {
  for (nn::MoEType type : {nn::MoEType::expert_choice_token, nn::MoEType::expert_choice_segment}) {
    nn::LoryConfig c = nn::preset("tiny");
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_experts = 4;
    c.segment_length = 16;
    c.moe_type = type;
    c.router_init_std = 0.5;  // scores well apart: f32 rounding never changes a choice
    manual_seed(94);
    nn::ExpertChoiceFFN cpu(c, nn::InitOptions{0.02, DType::f32, cpu_device()});
    nn::ExpertChoiceFFN gpu(c, nn::InitOptions{0.02, DType::f32, kGpu});
    {
      NoGradGuard no_grad;
      auto cp = cpu.named_parameters(), gp = gpu.named_parameters();
      for (size_t i = 0; i < cp.size(); ++i) gp[i].second->copy_(cp[i].second->to(kGpu));
    }
    const Tensor x = randn_as({2, 50, 64}, DType::f32, 95);  // 4 segments, the last one short
    auto run = [&](nn::ExpertChoiceFFN& layer, Device d) {
      Tensor xi = x.to(d).clone();
      xi.set_requires_grad(true);
      const Tensor y = layer.forward(xi);
      manual_seed(96);
      sum(mul(y, randn(y.shape()).to(d))).backward();
      std::vector<Tensor> out{layer.last_choice(), y.detach(), xi.grad()};
      for (auto& [name, p] : layer.named_parameters()) out.push_back(p->grad());
      return out;
    };
    const std::vector<Tensor> e = run(cpu, cpu_device()), a = run(gpu, kGpu);
    expect_close(e[0], a[0], Tol{0, 0}, std::string(nn::moe_type_name(type)) + ": the experts' choices");
    for (size_t i = 1; i < e.size(); ++i)
      expect_close(e[i], a[i], Tol{1e-4, 1e-6}, std::string(nn::moe_type_name(type)) + " " + std::to_string(i));
  }
}

TEST_CASE("cuda: an out-of-range index is reported at the next synchronisation, naming it") {
  const Tensor table = randn({10, 4}, {DType::f32, kGpu});
  const Tensor bad = ids_tensor({1, 2, 10, 3}).to(kGpu);
  CHECK_THROWS_WITH_AS(index_select(table, 0, bad).to(cpu_device()),
                       doctest::Contains("index 10 (position 2) is out of range for dim 0 of size 10"), Error);
  // The error is consumed: the next op works.
  CHECK(sum(table).to(cpu_device()).numel() == 1);
  const Tensor logits = randn({3, 7}, {DType::f32, kGpu});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, ids_tensor({1, 9, 2}).to(kGpu)).item(),
                       doctest::Contains("target 9 at row 1 is out of range for 7 classes"), Error);
}

// ---------------------------------------------------------------------------
// Fused nn ops
// ---------------------------------------------------------------------------

TEST_CASE("cuda: cross_entropy matches the CPU, loss and gradient, for short and vocabulary-sized rows") {
  for (DType t : kFloatTypes) {
    for (int64_t V : {7, 64, 1000, 3001, 32768}) {  // warp rows, block rows; odd V takes the unvectorised path
      const int64_t N = V > 5000 ? 6 : 33;
      const Tensor logits = mul(randn_as({N, V}, DType::f64, 20 + V), 3.0).to(t);
      std::vector<int64_t> tv = random_ids(N, V, 21);
      tv[1] = -100;  // ignored
      const Tensor targets = ids_tensor(tv);
      const Tol tol = t == DType::f64 ? Tol{1e-10, 1e-10} : Tol{1e-4, 1e-5};  // loss is f32 (f64 math for f64)
      check_same(name_of("cross_entropy V " + std::to_string(V), t), tol,
                 [](const Tensor& x, const Tensor& y) { return cross_entropy(x, y); }, logits, targets);
      check_grads(name_of("cross_entropy backward V " + std::to_string(V), t), tol_for(t), {logits},
                  [&targets](const std::vector<Tensor>& in) {
                    return cross_entropy(in[0], targets.to(in[0].device())).reshape({1});
                  });
    }
  }
  // Large logits (no overflow) and a -inf logit (a masked class).
  Tensor x = mul(randn_as({4, 300}, DType::f32, 22), 1000.0);
  x.narrow(1, 5, 1).fill_(-INFINITY);
  check_same("cross_entropy of large and -inf logits", Tol{1e-4, 1e-4},
             [](const Tensor& a, const Tensor& y) { return cross_entropy(a, y); }, x, ids_tensor({0, 1, 2, 3}));
  // A NaN logit makes its row's loss NaN, even next to a +inf (the CPU's max propagates NaN).
  for (int64_t V : {300, 3000}) {
    Tensor bad = randn_as({2, V}, DType::f32, 23);
    bad.narrow(1, 7, 1).fill_(NAN);
    bad.narrow(1, 8, 1).fill_(INFINITY);
    Tensor loss = empty({2}, {DType::f32, kGpu}), lse = empty({2}, {DType::f32, kGpu});
    cuda_backend(0).cross_entropy_forward(bad.to(kGpu), ids_tensor({0, 1}).to(kGpu), -100, loss, lse);
    for (double l : loss.to_vector<double>()) CHECK(std::isnan(l));
    for (double l : lse.to_vector<double>()) CHECK(std::isnan(l));
  }
}

TEST_CASE("cuda: rms_norm and add_rms_norm match the CPU on every kernel path, forward and backward") {
  // D: odd (scalar path), 64 and 1024 (warp rows, vectorised), 3000 (block rows),
  // 6000 (the two-pass backward for long rows).
  for (DType t : kFloatTypes) {
    for (int64_t D : {7, 64, 1024, 3000, 6000}) {
      const int64_t R = D > 2000 ? 9 : 70;
      const Tensor x = randn_as({R, D}, t, 30), r = randn_as({R, D}, t, 31), w = randn_as({D}, t, 32);
      const std::string tag = " D " + std::to_string(D);
      check_same(name_of("rms_norm" + tag, t), tol_for(t),
                 [](const Tensor& a, const Tensor& b) { return rms_norm(a, b, 1e-5); }, x, w);
      check_same(name_of("add_rms_norm normed" + tag, t), tol_for(t),
                 [](const Tensor& a, const Tensor& b, const Tensor& c) { return add_rms_norm(a, b, c, 1e-5).normed; },
                 x, r, w);
      check_same(name_of("add_rms_norm sum" + tag, t), Tol{0, 0},
                 [](const Tensor& a, const Tensor& b, const Tensor& c) { return add_rms_norm(a, b, c, 1e-5).sum; }, x,
                 r, w);
      // dweight sums R rows: compare by normalised error in 16-bit types.
      const std::vector<Tensor> e = grads_on(cpu_device(), {x, w}, [](const std::vector<Tensor>& in) {
        return rms_norm(in[0], in[1], 1e-5);
      }, 33);
      const std::vector<Tensor> a = grads_on(kGpu, {x, w}, [](const std::vector<Tensor>& in) {
        return rms_norm(in[0], in[1], 1e-5);
      }, 33);
      expect_close(e[0], a[0], tol_for(t), name_of("rms_norm dx" + tag, t));
      expect_close_normalized(e[1], a[1], t == DType::f64 ? 1e-12 : (t == DType::f32 ? 1e-6 : 1e-2),
                              name_of("rms_norm dweight" + tag, t));
    }
  }
  check_grads("add_rms_norm backward (f32)", Tol{1e-5, 1e-5},
              {randn_as({2, 5, 32}, DType::f32, 34), randn_as({2, 5, 32}, DType::f32, 35),
               randn_as({32}, DType::f32, 36)},
              [](const std::vector<Tensor>& in) {
                const AddRmsNorm r = add_rms_norm(in[0], in[1], in[2], 1e-5);
                return r.sum * 0.5 + r.normed;
              });
}

TEST_CASE("cuda: rope matches the CPU at any position offset, and its backward is the inverse rotation") {
  for (DType t : kFloatTypes) {
    for (int64_t off : {0, 7, 4000}) {
      const Tensor x = randn_as({2, 9, 3, 64}, t, 40);
      check_same(name_of("rope offset " + std::to_string(off), t), tol_for(t),
                 [off](const Tensor& a) { return rope(a, 10000.0, off); }, x);
    }
    check_grads(name_of("rope backward", t), tol_for(t), {randn_as({1, 5, 2, 16}, t, 41)},
                [](const std::vector<Tensor>& in) { return rope(in[0], 500.0, 3); });
  }
}

TEST_CASE("cuda: segment_mean matches the CPU, forward and backward, with a short last segment") {
  for (DType t : kFloatTypes) {
    const Tensor x = randn_as({3, 70, 40}, t, 50);
    for (int64_t T : {1, 16, 64, 100}) {
      check_same(name_of("segment_mean T " + std::to_string(T), t), tol_for(t),
                 [T](const Tensor& a) { return segment_mean(a, T); }, x);
      check_grads(name_of("segment_mean backward T " + std::to_string(T), t), tol_for(t), {x},
                  [T](const std::vector<Tensor>& in) { return segment_mean(in[0], T); });
    }
  }
}

// ---------------------------------------------------------------------------
// The fused expert merge (merged_linear)
// ---------------------------------------------------------------------------

namespace {

// The CUDA merge's chunk budget for one scope (cuda/merged_linear.cu), then the default again.
struct MergeChunkBytes {
  explicit MergeChunkBytes(size_t bytes) { gpu_backend().set_merged_linear_chunk_bytes(bytes); }
  ~MergeChunkBytes() { gpu_backend().set_merged_linear_chunk_bytes(0); }
  MergeChunkBytes(const MergeChunkBytes&) = delete;
  MergeChunkBytes& operator=(const MergeChunkBytes&) = delete;
};

struct MergeCase {
  int64_t S, T, E, out, in;
  int64_t chunk;  // segments the budget holds (0: the default budget, one chunk at these sizes)
  std::string str() const {
    return "S" + std::to_string(S) + " T" + std::to_string(T) + " E" + std::to_string(E) + " out" +
           std::to_string(out) + " in" + std::to_string(in) + " chunk " + (chunk ? std::to_string(chunk) : "default");
  }
};

// The chunks the CUDA kernel takes for c (its rule: as many segments as the
// budget holds, evened out), to name them in the test's output.
std::string merge_chunks(const MergeCase& c) {
  const int64_t fit = c.chunk ? c.chunk : c.S, chunks = (c.S + fit - 1) / fit, nc = (c.S + chunks - 1) / chunks;
  std::string s;
  for (int64_t s0 = 0; s0 < c.S; s0 += nc) s += (s.empty() ? "" : "+") + std::to_string(std::min(nc, c.S - s0));
  return s;
}

// The three kernel calls of one backend on inputs {x, dy, weights, experts}:
// merged_linear, its transposed form (on dy) and the weight gradients.
// Outputs start as NaN, so an element a kernel leaves unwritten shows.
std::vector<Tensor> merged_linear_kernels(Backend& be, const std::vector<Tensor>& in) {
  const Tensor &x = in[0], &dy = in[1], &w = in[2], &W = in[3];
  const TensorOptions opt{W.dtype(), W.device(), false};
  const double nan = std::nan("");
  Tensor y = full(dy.shape(), nan, opt), dx = full(x.shape(), nan, opt), dW = full(W.shape(), nan, opt),
         de = full(w.shape(), nan, opt);
  be.merged_linear(x, w, W, /*transposed=*/false, y);
  be.merged_linear(dy, w, W, /*transposed=*/true, dx);
  be.merged_linear_backward_weights(dy, x, w, W, dW, de);
  return {y, dx, dW, de};
}

std::vector<Tensor> merge_inputs(const MergeCase& c, DType t) {
  return {randn_as({c.S, c.T, c.in}, t, 80), randn_as({c.S, c.T, c.out}, t, 81), randn_as({c.S, c.E}, t, 82),
          randn_as({c.E, c.out, c.in}, t, 83)};
}

double merge_tol(DType t) {
  return t == DType::f64 ? 1e-12 : (t == DType::f32 ? 1e-5 : (t == DType::f16 ? 3e-3 : 2e-2));
}

}  // namespace

TEST_CASE("cuda: merged_linear matches the CPU kernel (forward, transposed, weight gradients) over several chunks") {
  const std::vector<MergeCase> cases{
      {7, 5, 3, 12, 10, 3},    // chunks of 3, 3 and 1: a partial last chunk
      {7, 5, 3, 12, 10, 1},    // one segment a chunk
      {9, 8, 4, 64, 48, 4},    // evened out: 3 + 3 + 3
      {5, 4, 1, 8, 12, 2},     // E = 1, chunks 2 + 2 + 1
      {1, 9, 4, 16, 24, 0},    // S = 1
      {1, 3, 1, 5, 7, 1},      // S = 1 and E = 1
      {10, 16, 8, 32, 24, 0},  // the default budget: one chunk
  };
  for (DType t : kFloatTypes) {
    for (const MergeCase& c : cases) {
      const std::string what =
          std::string("merged_linear ") + dtype_name(t) + " " + c.str() + " (chunks " + merge_chunks(c) + ")";
      const std::vector<Tensor> in = merge_inputs(c, t);
      std::vector<Tensor> gpu_in;
      for (const Tensor& x : in) gpu_in.push_back(x.to(kGpu));
      const std::vector<Tensor> e = merged_linear_kernels(cpu_backend(), in);
      MergeChunkBytes budget(static_cast<size_t>(c.chunk * c.out * c.in) * dtype_size(t));
      const std::vector<Tensor> a = merged_linear_kernels(cuda_backend(0), gpu_in);
      const char* names[] = {"y", "dx (transposed)", "dexperts", "dweights"};
      for (int i = 0; i < 4; ++i) expect_close_normalized(e[i], a[i], merge_tol(t), what + ": " + names[i]);
    }
  }
}

TEST_CASE("cuda: merged_linear is deterministic over several chunks (bf16 dexperts summed in f32 across them)") {
  const MergeCase c{11, 8, 4, 40, 24, 3};
  for (DType t : {DType::f32, DType::bf16}) {
    const std::vector<Tensor> in = merge_inputs(c, t);
    std::vector<Tensor> gpu_in;
    for (const Tensor& x : in) gpu_in.push_back(x.to(kGpu));
    MergeChunkBytes budget(static_cast<size_t>(c.chunk * c.out * c.in) * dtype_size(t));
    const std::vector<Tensor> a = merged_linear_kernels(cuda_backend(0), gpu_in),
                              b = merged_linear_kernels(cuda_backend(0), gpu_in);
    for (int i = 0; i < 4; ++i)
      expect_close(a[i], b[i], Tol{0, 0}, name_of("merged_linear run twice, output " + std::to_string(i), t));
  }
}

TEST_CASE("cuda: the merged_linear op's gradients match the CPU with several chunks, in f32 and bf16") {
  const MergeCase c{6, 7, 3, 20, 12, 4};  // chunks 3 + 3
  for (DType t : {DType::f32, DType::bf16}) {
    const std::vector<Tensor> in = merge_inputs(c, t);
    const std::vector<Tensor> params{in[0], in[2], in[3]};  // x, weights, experts
    auto f = [](const std::vector<Tensor>& p) { return merged_linear(p[0], p[1], p[2]); };
    MergeChunkBytes budget(static_cast<size_t>(c.chunk * c.out * c.in) * dtype_size(t));
    const std::vector<Tensor> e = grads_on(cpu_device(), params, f, 84), a = grads_on(kGpu, params, f, 84);
    const char* names[] = {"dx", "dweights", "dexperts"};
    for (int i = 0; i < 3; ++i)
      expect_close_normalized(e[i], a[i], merge_tol(t), name_of(std::string("merged_linear op ") + names[i], t));
  }
}

TEST_CASE("cuda: merged_linear's workspace is one chunk, not an [S, out, in] buffer") {
  CudaBackend& backend = gpu_backend();
  const MergeCase c{32, 8, 4, 64, 48, 2};
  const size_t budget = static_cast<size_t>(c.chunk * c.out * c.in) * sizeof(float);  // 24 KiB; all 32 W̄_s: 384 KiB
  std::vector<Tensor> in;
  for (const Tensor& x : merge_inputs(c, DType::f32)) in.push_back(x.to(kGpu));
  const Tensor &x = in[0], &dy = in[1], &w = in[2], &W = in[3];
  Tensor y = empty(dy.shape(), {DType::f32, kGpu}), dW = empty(W.shape(), {DType::f32, kGpu}),
         de = empty(w.shape(), {DType::f32, kGpu});
  MergeChunkBytes chunk(budget);
  backend.merged_linear(x, w, W, false, y);  // creates the GEMM context and its workspace first
  backend.synchronize();
  for (int pass = 0; pass < 2; ++pass) {
    backend.allocator().reset_peak();
    const size_t before = backend.allocator().stats().allocated_bytes;
    if (pass == 0)
      backend.merged_linear(x, w, W, false, y);
    else
      backend.merged_linear_backward_weights(dy, x, w, W, dW, de);
    backend.synchronize();
    const size_t peak = backend.allocator().stats().peak_allocated_bytes;
    CHECK_MESSAGE(peak - before <= budget, (pass == 0 ? "forward" : "backward"), " used ", peak - before,
                  " bytes of workspace, budget ", budget);
  }
}

// ---------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------

namespace {

struct AttnCase {
  int64_t B, H, L, S, Dh;
  bool causal;
  int64_t Hkv = 0;  // key/value heads; 0: H (grouped-query attention when fewer)
};

// Output and gradients of attention on device d (the same cotangent everywhere).
std::vector<Tensor> attention_run(Device d, const Tensor& q0, const Tensor& k0, const Tensor& v0, bool causal) {
  std::vector<Tensor> in;
  for (const Tensor* x : {&q0, &k0, &v0}) {
    Tensor t = x->to(d).clone();
    t.set_requires_grad(true);
    in.push_back(t);
  }
  const Tensor out = scaled_dot_product_attention(in[0], in[1], in[2], causal);
  manual_seed(99);
  const Tensor w = randn(out.shape()).to(out.dtype()).to(d);
  sum(mul(out.to(DType::f32), w.to(DType::f32))).backward();
  return {out.detach(), in[0].grad(), in[1].grad(), in[2].grad()};
}

void check_attention(const AttnCase& c, DType t, bool flash) {
  gpu_backend().set_flash_attention(flash);
  const std::string what = std::string(flash ? "flash" : "general") + " attention " + dtype_name(t) + " B" +
                           std::to_string(c.B) + " H" + std::to_string(c.H) + " L" + std::to_string(c.L) + " S" +
                           std::to_string(c.S) + " Dh" + std::to_string(c.Dh) + (c.causal ? " causal" : " full") +
                           (c.Hkv ? " Hkv" + std::to_string(c.Hkv) : "");
  const int64_t Hkv = c.Hkv ? c.Hkv : c.H;
  const Tensor q = randn_as({c.B, c.H, c.L, c.Dh}, t, 60), k = randn_as({c.B, Hkv, c.S, c.Dh}, t, 61),
               v = randn_as({c.B, Hkv, c.S, c.Dh}, t, 62);
  // The CPU reference in f32 for 16-bit inputs (the CPU widens them too).
  const std::vector<Tensor> e = attention_run(cpu_device(), q, k, v, c.causal);
  const std::vector<Tensor> a = attention_run(kGpu, q, k, v, c.causal);
  const double tol = t == DType::f64 ? 1e-12 : (t == DType::f32 ? 1e-5 : (t == DType::f16 ? 3e-3 : 2e-2));
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (int i = 0; i < 4; ++i) expect_close_normalized(e[i], a[i], tol, what + ": " + names[i]);
  gpu_backend().set_flash_attention(true);
}

}  // namespace

TEST_CASE("cuda: FlashAttention (bf16/f16, Dh 64 and 128) matches the CPU, forward and backward") {
  const std::vector<AttnCase> cases{
      {1, 1, 1, 1, 64, true},     // a single query and key
      {2, 3, 17, 17, 64, true},   // L not a multiple of the tile
      {1, 2, 64, 64, 128, true},  // exactly one tile
      {2, 2, 100, 100, 128, false},
      {1, 2, 5, 133, 64, true},   // KV cache: fewer queries than keys, causal offset
      {1, 1, 257, 300, 128, false},
      {1, 4, 300, 300, 64, true},
      {2, 4, 130, 130, 64, true, 2},   // grouped-query: 2 query heads per key/value head
      {1, 6, 70, 90, 128, true, 2},    // GQA with a KV-cache offset
      {1, 8, 65, 65, 64, false, 1},    // multi-query
  };
  for (DType t : {DType::bf16, DType::f16})
    for (const AttnCase& c : cases) check_attention(c, t, true);
}

TEST_CASE("cuda: the general attention kernels match the CPU for f32, f64 and any head dim") {
  const std::vector<AttnCase> cases{{1, 1, 1, 1, 8, true},     {2, 3, 17, 17, 64, true}, {1, 2, 9, 20, 40, true},
                                    {1, 2, 33, 33, 100, false}, {1, 1, 7, 7, 256, true}, {2, 4, 9, 12, 16, true, 2},
                                    {1, 3, 5, 5, 32, false, 1}};
  for (DType t : kFloatTypes)
    for (const AttnCase& c : cases) check_attention(c, t, false);
}

TEST_CASE("cuda: the two attention paths agree with each other on the GPU, and the backward is deterministic") {
  const Tensor q = randn_as({2, 4, 130, 64}, DType::bf16, 70), k = randn_as({2, 4, 130, 64}, DType::bf16, 71),
               v = randn_as({2, 4, 130, 64}, DType::bf16, 72);
  gpu_backend().set_flash_attention(false);
  const std::vector<Tensor> general = attention_run(kGpu, q, k, v, true);
  gpu_backend().set_flash_attention(true);
  const std::vector<Tensor> flash1 = attention_run(kGpu, q, k, v, true), flash2 = attention_run(kGpu, q, k, v, true);
  for (int i = 0; i < 4; ++i) {
    expect_close_normalized(general[i], flash1[i], 2e-2, "flash vs general " + std::to_string(i));
    expect_close(flash1[i], flash2[i], Tol{0, 0}, "flash run twice " + std::to_string(i));
  }
}

TEST_CASE("cuda: FlashAttention at L = 8192 uses memory linear in L (no L x L buffer)") {
  CudaBackend& backend = gpu_backend();
  const int64_t B = 1, H = 2, L = 8192, Dh = 128;
  Tensor q = randn({B, H, L, Dh}, {DType::bf16, kGpu}), k = randn({B, H, L, Dh}, {DType::bf16, kGpu}),
         v = randn({B, H, L, Dh}, {DType::bf16, kGpu});
  backend.synchronize();
  backend.allocator().reset_peak();
  const size_t before = backend.allocator().stats().allocated_bytes;
  q.set_requires_grad(true);
  k.set_requires_grad(true);
  v.set_requires_grad(true);
  const Tensor out = scaled_dot_product_attention(q, k, v, true);
  sum(out.to(DType::f32)).backward();
  backend.synchronize();
  const size_t peak = backend.allocator().stats().peak_allocated_bytes;
  const size_t one = static_cast<size_t>(B * H * L * Dh) * 2;  // one [B, H, L, Dh] bf16 tensor
  CHECK(peak - before < 16 * one);                            // an [L, L] f32 matrix per head would be 128x `one`
  // The last query of a causal row sees every key; spot-check it against the CPU in f32.
  const Tensor q_last = q.detach().narrow(2, L - 1, 1).to(cpu_device()).to(DType::f32);
  const Tensor ref = scaled_dot_product_attention(q_last, k.detach().to(cpu_device()).to(DType::f32),
                                                  v.detach().to(cpu_device()).to(DType::f32), true);
  expect_close_normalized(ref.to(DType::bf16).to(DType::f32), out.detach().narrow(2, L - 1, 1).to(DType::f32), 2e-2,
                          "the last row at L = 8192");
}

// ---------------------------------------------------------------------------
// Optimizer
// ---------------------------------------------------------------------------

TEST_CASE("cuda: the fused AdamW step and the gradient norm match the CPU") {
  const int64_t n = 100000;  // several blocks, slots crossing block boundaries
  manual_seed(80);
  const Tensor p = randn({n}), g = randn({n}), m = randn({n}) * 0.1, v = abs(randn({n})) * 0.1;
  std::vector<Backend::AdamWSlot> slots;
  for (int64_t off = 0, k = 0; off < n - 100; off += 9000 + 16 * k, ++k)  // 16-element padding gaps
    slots.push_back({off, std::min<int64_t>(9000 - 16 * (k % 3), n - off), 1e-3 * (1 + k), 1.0 + 0.01 * k,
                     k % 2 ? 1.0 : 1.0 - 1e-4});
  for (uint64_t seed : {uint64_t{0}, uint64_t{777}}) {
    const Backend::AdamWHyper h{0.9, 0.95, 1e-8, 0.7, seed};
    Tensor cp = p.clone(), cm = m.clone(), cv = v.clone(), cpub = zeros({n}, {DType::bf16});
    Tensor gp = p.to(kGpu), gm = m.to(kGpu), gv = v.to(kGpu), gpub = zeros({n}, {DType::bf16, kGpu});
    cpu_backend().adamw_step(cp, g, cm, cv, &cpub, slots, h);
    cuda_backend(0).adamw_step(gp, g.to(kGpu), gm, gv, &gpub, slots, h);
    const std::string tag = seed ? " (stochastic rounding)" : "";
    expect_close(cp, gp, Tol{1e-6, 1e-7}, "adamw param" + tag);
    expect_close(cm, gm, Tol{1e-6, 1e-7}, "adamw exp_avg" + tag);
    expect_close(cv, gv, Tol{1e-6, 1e-7}, "adamw exp_avg_sq" + tag);
    // The bf16 copy: the same rounding of (nearly) the same weight; at most one bf16 step apart.
    expect_close(cpub, gpub, Tol{1e-2, 1e-6}, "adamw bf16 copy" + tag);
  }
  Tensor cn = empty({1}, {DType::f64}), gn = empty({1}, {DType::f64, kGpu});
  cpu_backend().sum_squares(g, cn);
  cuda_backend(0).sum_squares(g.to(kGpu), gn);
  CHECK(gn.item() == doctest::Approx(cn.item()).epsilon(1e-12));
  Tensor gn2 = empty({1}, {DType::f64, kGpu});
  cuda_backend(0).sum_squares(g.to(kGpu), gn2);
  CHECK(gn2.item() == gn.item());  // deterministic
}

// ---------------------------------------------------------------------------
// The Lory layer and a whole model
// ---------------------------------------------------------------------------

namespace {

// A CPU model and a copy of it on the GPU, with the same weights. (Modules
// hold pointers to their own members, so they live on the heap, unmoved.)
struct ModelPair {
  std::unique_ptr<nn::LoryLM> cpu, gpu;
};
ModelPair model_pair(const nn::LoryConfig& c, DType dtype) {
  manual_seed(90);
  ModelPair m{std::make_unique<nn::LoryLM>(c, nn::InitOptions{0.02, dtype, cpu_device()}),
              std::make_unique<nn::LoryLM>(c, nn::InitOptions{0.02, dtype, kGpu})};
  auto cp = m.cpu->named_parameters(), gp = m.gpu->named_parameters();
  REQUIRE(cp.size() == gp.size());
  NoGradGuard no_grad;
  for (size_t i = 0; i < cp.size(); ++i) gp[i].second->copy_(cp[i].second->to(kGpu));
  return m;
}

}  // namespace

TEST_CASE("cuda: a Lory layer on the GPU matches the CPU Lory layer, forward and backward") {
  nn::LoryConfig c = nn::preset("tiny");
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_experts = 4;
  c.segment_length = 16;
  for (nn::MergeKernel kernel : {nn::MergeKernel::fused, nn::MergeKernel::gemm}) {
    manual_seed(91);
    nn::LoryFFN cpu(c, nn::InitOptions{0.02, DType::f32, cpu_device()});
    nn::LoryFFN gpu(c, nn::InitOptions{0.02, DType::f32, kGpu});
    cpu.merge_kernel = gpu.merge_kernel = kernel;
    {
      NoGradGuard no_grad;
      auto cp = cpu.named_parameters(), gp = gpu.named_parameters();
      for (size_t i = 0; i < cp.size(); ++i) gp[i].second->copy_(cp[i].second->to(kGpu));
    }
    const Tensor x = randn_as({2, 50, 64}, DType::f32, 92);  // 4 segments, the last one short
    auto run = [&](nn::LoryFFN& layer, Device d) {
      Tensor xi = x.to(d).clone();
      xi.set_requires_grad(true);
      const Tensor y = layer.forward(xi, nn::TrainingRouting::causal_segment, 0);
      manual_seed(93);
      sum(mul(y, randn(y.shape()).to(d))).backward();
      std::vector<Tensor> out{y.detach(), xi.grad()};
      for (auto& [name, p] : layer.named_parameters()) out.push_back(p->grad());
      return out;
    };
    const std::vector<Tensor> e = run(cpu, cpu_device()), a = run(gpu, kGpu);
    for (size_t i = 0; i < e.size(); ++i)
      expect_close(e[i], a[i], Tol{1e-4, 1e-6},
                   std::string("Lory layer (") + nn::merge_kernel_name(kernel) + ") " + std::to_string(i));
  }
}

TEST_CASE("cuda: a whole Lory model's loss and gradients match the CPU (f32), and bf16 stays close") {
  nn::LoryConfig base = nn::preset("tiny");
  base.hidden_size = 64;
  base.num_attention_heads = 1;  // head dim 64: the flash path in bf16
  base.num_key_value_heads = 1;
  base.segment_length = 8;
  base.max_position_embeddings = 128;
  // And a LLaMA-3-like variant: grouped-query attention (4 heads of 64 over
  // 2 key/value heads) and tied embeddings.
  nn::LoryConfig gqa = base;
  gqa.hidden_size = 256;
  gqa.num_attention_heads = 4;
  gqa.num_key_value_heads = 2;
  gqa.tie_word_embeddings = true;
  std::vector<int64_t> tv = random_ids(2 * 33, base.vocab_size, 94);
  const Tensor tokens = from_vector(tv, {2, 33}, {DType::i64});
  for (const nn::LoryConfig& c : {base, gqa}) {
    for (DType t : {DType::f32, DType::bf16}) {
      INFO("heads " << c.num_attention_heads << ", key/value heads " << c.num_key_value_heads);
      ModelPair m = model_pair(c, t);
      nn::LoryLM& cpu = *m.cpu;
      nn::LoryLM& gpu = *m.gpu;
      const Tensor lc = cpu.loss(tokens), lg = gpu.loss(tokens.to(kGpu));
      lc.backward();
      lg.backward();
      const double tol = t == DType::f32 ? 1e-5 : 2e-2;
      CHECK(lg.item() == doctest::Approx(lc.item()).epsilon(tol));
      auto cp = cpu.named_parameters(), gp = gpu.named_parameters();
      for (size_t i = 0; i < cp.size(); ++i)
        // bf16: two different roundings of a whole model's backward; small, cancelling
        // gradients (the routers') can differ by several percent. A wrong kernel is off by ~100%.
        expect_close_normalized(cp[i].second->grad(), gp[i].second->grad(), t == DType::f32 ? 1e-4 : 1e-1,
                                std::string("model gradient of ") + cp[i].first + " (" + dtype_name(t) + ")");
    }
  }
}
