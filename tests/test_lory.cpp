// The Lory layer and LoryLM (nn/): causality of causal segment routing, the
// stop-gradient on segment 1, equivalences with dense FFNs, gradcheck of a
// whole model, and KV-cached generation against full recomputation.
//
// The "tiny" preset: 2 layers, d 32, 4 heads, f 48, E 4, T 4, vocab 64.
// Sequences of 14 tokens make 4 segments, the last one partial.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "tensor/graph.h"
#include "nn/lory_lm.h"
#include "nn/merge_experts.h"
#include "tensor/ops.h"
#include "tests/compare.h"

using namespace lory;
using lory::test::max_abs_diff;
using lory::test::max_abs;
using namespace lory::nn;

namespace {

LoryConfig tiny(TrainingRouting routing = TrainingRouting::causal_segment, FirstSegment first = FirstSegment::self) {
  LoryConfig c = preset("tiny");
  c.routing = routing;
  c.first_segment = first;
  return c;
}

Tensor token_ids(const std::vector<int64_t>& ids, int64_t batch = 1) {
  std::vector<int64_t> all;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t id : ids) all.push_back((id + 7 * b) % 64);
  return from_vector(all, {batch, static_cast<int64_t>(ids.size())}, {DType::i64});
}

std::vector<int64_t> sequence(int64_t n, int64_t seed = 3) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = (seed * 17 + i * 29 + i * i * 7) % 64;
  return ids;
}

// Logits [1, L, V] for ids, with no graph.
Tensor logits_of(LoryLM& model, const std::vector<int64_t>& ids, ForwardOptions options) {
  NoGradGuard no_grad;
  return model.forward(token_ids(ids), options);
}

// For each t in `positions`: change token t and return the largest change of
// the logits ([1, L, V] for a sequence of L ids) at positions before t.
std::vector<double> earlier_changes(const std::function<Tensor(const std::vector<int64_t>&)>& logits,
                                    const std::vector<int64_t>& ids, const std::vector<int64_t>& positions) {
  const Tensor base = logits(ids);
  std::vector<double> changes;
  for (int64_t t : positions) {
    std::vector<int64_t> perturbed = ids;
    perturbed[static_cast<size_t>(t)] = (perturbed[static_cast<size_t>(t)] + 31) % 64;
    const Tensor other = logits(perturbed);
    // The perturbation does reach the logits from t on.
    CHECK(max_abs_diff(base.narrow(1, t, 1), other.narrow(1, t, 1)) > 0);
    changes.push_back(t == 0 ? 0.0 : max_abs_diff(base.narrow(1, 0, t), other.narrow(1, 0, t)));
  }
  return changes;
}

std::vector<double> earlier_changes(LoryLM& model, const std::vector<int64_t>& ids, TrainingRouting routing,
                                    const std::vector<int64_t>& positions) {
  return earlier_changes([&](const std::vector<int64_t>& in) { return logits_of(model, in, {routing}); }, ids,
                         positions);
}

// A Lory layer rebuilt here from its parameters, merge_experts.h and the
// steps of lory_ffn.h, with a choice the real layer does not offer: with
// causal_shift = false, segment k is merged with the weights of its *own*
// mean, Softmax(R(h̄_k)), i.e. "simply using the current segment to compute
// the routing weights", which §3.1 says leaks information. A leaky model
// exists only in this file, to show that the causality test catches one.
Tensor rebuilt_lory_ffn(const LoryFFN& ffn, const Tensor& x, bool causal_shift) {
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), T = ffn.segment_length, E = ffn.num_experts;
  const int64_t N = (L + T - 1) / T;
  const Tensor probs = softmax(ffn.router.forward(LoryFFN::segment_means(x, T)), -1);  // [B, N, E]: p_k
  Tensor weights = probs;  // leaky: segment k uses p_k
  if (causal_shift) {      // eq. (3): segment k uses p_{k-1}; segment 1 its own, stop-gradient
    weights = N == 1 ? probs.detach() : cat({probs.narrow(1, 0, 1).detach(), probs.narrow(1, 0, N - 1)}, 1);
  }
  const Tensor padded = N * T == L ? x : cat({x, zeros({B, N * T - L, d}, {x.dtype(), x.device(), false})}, 1);
  const Tensor xs = padded.reshape({B * N, T, d}), w = weights.reshape({B * N, E});
  const Tensor gate = merged_linear(xs, w, ffn.gate_experts);  // the fused op, as the layer uses it
  const Tensor up = merged_linear(xs, w, ffn.up_experts);
  const Tensor y = merged_linear(swiglu(gate, up), w, ffn.down_experts).view({B, N * T, d});
  return y.narrow(1, 0, L);
}

// The logits of `model` with every Lory layer replaced by rebuilt_lory_ffn;
// the rest as DecoderLayer::forward computes it.
Tensor rebuilt_logits(LoryLM& model, const std::vector<int64_t>& ids, bool causal_shift) {
  NoGradGuard no_grad;
  Tensor x = model.model.embed_tokens.forward(token_ids(ids));
  for (auto& layer : model.model.layers) {
    const auto [h, n] = layer->post_attention_layernorm.add_and_forward(
        x, layer->self_attn.forward(layer->input_layernorm.forward(x)));
    x = h + rebuilt_lory_ffn(*layer->lory_mlp, n, causal_shift);
  }
  return model.logits_from_hidden(model.model.norm.forward(x));
}

}  // namespace

TEST_CASE("lory: perturbing a token at t >= T never changes the logits before t") {
  manual_seed(1);
  LoryLM model(tiny());
  const std::vector<int64_t> ids = sequence(14);
  const std::vector<int64_t> positions = {4, 5, 7, 8, 10, 12, 13};  // segments 2, 3 and the partial 4th
  const std::vector<double> changes = earlier_changes(model, ids, TrainingRouting::causal_segment, positions);
  for (size_t i = 0; i < positions.size(); ++i) {
    INFO("t = " << positions[i]);
    CHECK(changes[i] == 0.0);
  }
  // Prefix routing is causal too.
  const std::vector<double> prefix = earlier_changes(model, ids, TrainingRouting::prefix, positions);
  for (double c : prefix) CHECK(c == 0.0);
}

TEST_CASE("lory: a model routed by the current segment fails the causality test") {
  manual_seed(1);
  LoryLM model(tiny());
  const std::vector<int64_t> ids = sequence(14);
  // The rebuilt layers with the causal shift are the model's own: the leaky
  // model below differs from the real one in its routing only.
  CHECK(max_abs_diff(rebuilt_logits(model, ids, true), logits_of(model, ids, {TrainingRouting::causal_segment})) ==
        0.0);
  const std::vector<double> causal = earlier_changes(
      [&](const std::vector<int64_t>& in) { return rebuilt_logits(model, in, true); }, ids, {5, 9, 13});
  for (double c : causal) CHECK(c == 0.0);
  const std::vector<double> leaky = earlier_changes(
      [&](const std::vector<int64_t>& in) { return rebuilt_logits(model, in, false); }, ids, {5, 9, 13});
  for (double c : leaky) CHECK(c > 1e-6);  // the leak is visible at every segment
}

TEST_CASE("lory: segment 1 routed by its own mean leaks in the forward; first_segment=uniform does not") {
  manual_seed(2);
  const std::vector<int64_t> ids = sequence(14);
  LoryLM paper(tiny(TrainingRouting::causal_segment, FirstSegment::self));
  const std::vector<double> leak = earlier_changes(paper, ids, TrainingRouting::causal_segment, {1, 2, 3});
  for (double c : leak) CHECK(c > 0.0);  // segment 1 routed by its own mean (§3.1, after eq. (3)); see lory-notes.md
  manual_seed(2);
  LoryLM strict(tiny(TrainingRouting::causal_segment, FirstSegment::uniform));
  const std::vector<double> none =
      earlier_changes(strict, ids, TrainingRouting::causal_segment, {1, 2, 3, 4, 6, 9, 13});
  for (double c : none) CHECK(c == 0.0);
}

TEST_CASE("lory: the gradient of the logits before t with respect to the input at t is exactly zero, for every t") {
  manual_seed(3);
  LoryLM model(tiny());
  const int64_t L = 14;
  Tensor x;
  {
    NoGradGuard no_grad;
    x = model.model.embed_tokens.forward(token_ids(sequence(L))).clone();
  }
  x.set_requires_grad(true);
  manual_seed(4);
  const Tensor w = randn({1, L, 64});
  for (int64_t t = 1; t < L; ++t) {
    INFO("t = " << t);
    x.set_grad(Tensor());
    model.zero_grad();
    const Tensor logits = model.forward_embeddings(x, {TrainingRouting::causal_segment});
    sum(logits.narrow(1, 0, t) * w.narrow(1, 0, t)).backward();
    const Tensor later = x.grad().narrow(1, t, L - t);
    CHECK(amax(abs(later)).item() == 0.0);
    CHECK(amax(abs(x.grad().narrow(1, 0, t))).item() > 0.0);
    if (t > 4) {  // logits of segment 2 on depend on the router, which gets a gradient
      CHECK(amax(abs(model.model.layers[1]->lory_mlp->router.weight.grad())).item() > 0.0);
    }
  }
}

TEST_CASE("lory: the router gets no gradient from segment 1's routing weights; the experts do") {
  manual_seed(5);
  LoryLM model(tiny());
  // One segment (L <= T): only segment 1's own, stop-gradient weights are used.
  model.loss(token_ids(sequence(5))).backward();  // 4 inputs = one segment
  for (auto& layer : model.model.layers) {
    const Tensor g = layer->lory_mlp->router.weight.grad();
    CHECK((!g.defined() || amax(abs(g)).item() == 0.0));
    CHECK(amax(abs(layer->lory_mlp->gate_experts.grad())).item() > 0.0);
    CHECK(amax(abs(layer->lory_mlp->down_experts.grad())).item() > 0.0);
  }
  // Two segments: now the router learns (from segment 2's use of segment 1's mean).
  model.zero_grad();
  model.loss(token_ids(sequence(9))).backward();
  for (auto& layer : model.model.layers) CHECK(amax(abs(layer->lory_mlp->router.weight.grad())).item() > 0.0);
}

TEST_CASE("lory: with E = 1 the Lory layer is the dense SwiGLU FFN") {
  manual_seed(6);
  LoryConfig c = tiny();
  c.num_experts = 1;
  c.hidden_size = 16;
  c.num_attention_heads = c.num_key_value_heads = 2;
  LoryFFN lory(c, {});
  SwiGLU dense(c.hidden_size, c.intermediate_size, {});
  lory.to(DType::f64);
  dense.to(DType::f64);
  {
    NoGradGuard no_grad;
    dense.gate_proj.weight.copy_(lory.gate_experts.select(0, 0));
    dense.up_proj.weight.copy_(lory.up_experts.select(0, 0));
    dense.down_proj.weight.copy_(lory.down_experts.select(0, 0));
  }
  const Tensor x = randn({2, 11, 16}).to(DType::f64);
  for (const ForwardRouting& r :
       std::vector<ForwardRouting>{TrainingRouting::causal_segment, TrainingRouting::prefix, InferenceRouting::prompt})
    CHECK(max_abs_diff(lory.forward(x, r), dense.forward(x)) < 1e-12);
}

TEST_CASE("lory: with identical experts the layer equals the dense FFN for any router") {
  manual_seed(7);
  LoryConfig c = tiny();
  c.router_init_std = 3.0;  // a router far from uniform
  LoryFFN lory(c, {});
  SwiGLU dense(c.hidden_size, c.intermediate_size, {});
  lory.to(DType::f64);
  dense.to(DType::f64);
  {
    NoGradGuard no_grad;
    for (int64_t e = 0; e < c.num_experts; ++e) {
      lory.gate_experts.select(0, e).copy_(dense.gate_proj.weight);
      lory.up_experts.select(0, e).copy_(dense.up_proj.weight);
      lory.down_experts.select(0, e).copy_(dense.down_proj.weight);
    }
  }
  const Tensor x = randn({2, 14, c.hidden_size}).to(DType::f64);
  const Tensor y = lory.forward(x, TrainingRouting::causal_segment);
  CHECK(max_abs_diff(y, dense.forward(x)) < 1e-12);
  // The routing really was far from uniform.
  CHECK(amax(lory.last_routing_weights()).item() > 0.5);
}

TEST_CASE("lory: each segment's output is the FFN whose weights are the routing-weighted average of the experts") {
  manual_seed(8);
  LoryConfig c = tiny();
  c.router_init_std = 1.0;
  LoryFFN lory(c, {});
  lory.to(DType::f64);
  const int64_t B = 2, L = 14, T = c.segment_length, E = c.num_experts;
  const Tensor x = randn({B, L, c.hidden_size}).to(DType::f64);
  const Tensor y = lory.forward(x, TrainingRouting::causal_segment);
  const Tensor weights = lory.last_routing_weights();  // [B, N, E]
  REQUIRE(weights.shape() == Shape{B, 4, E});
  // Segment means -> softmax(router) -> shifted by one segment; segment 1 its own.
  const Tensor probs = softmax(matmul(LoryFFN::segment_means(x, T), lory.router.weight.t()), -1);
  CHECK(max_abs_diff(weights.narrow(1, 0, 1), probs.narrow(1, 0, 1)) < 1e-15);
  CHECK(max_abs_diff(weights.narrow(1, 1, 3), probs.narrow(1, 0, 3)) < 1e-15);
  // The last, partial segment (2 tokens) is averaged over its real tokens.
  CHECK(max_abs_diff(LoryFFN::segment_means(x, T).narrow(1, 3, 1), mean(x.narrow(1, 12, 2), {1}, true)) < 1e-15);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < 4; ++s) {
      // W̄ = Σ_i e_i W_i, summed here one expert at a time.
      Tensor gate = zeros({c.intermediate_size, c.hidden_size}, {DType::f64});
      Tensor up = zeros_like(gate), down = zeros({c.hidden_size, c.intermediate_size}, {DType::f64});
      for (int64_t i = 0; i < E; ++i) {
        const double e = weights.select(0, b).select(0, s).select(0, i).item();
        gate = gate + lory.gate_experts.select(0, i) * e;
        up = up + lory.up_experts.select(0, i) * e;
        down = down + lory.down_experts.select(0, i) * e;
      }
      const int64_t len = std::min(T, L - s * T);
      const Tensor xs = x.select(0, b).narrow(0, s * T, len);
      const Tensor want = matmul(silu(matmul(xs, gate.t())) * matmul(xs, up.t()), down.t());
      INFO("batch " << b << " segment " << s);
      CHECK(max_abs_diff(y.select(0, b).narrow(0, s * T, len), want) < 1e-12);
    }
  }
}

TEST_CASE("lory: the fused merge kernel and the GEMM formulation give the same layer, values and gradients") {
  manual_seed(9);
  LoryConfig c = tiny();
  LoryFFN lory(c, {});
  lory.to(DType::f64);
  const Tensor x0 = randn({2, 14, c.hidden_size}).to(DType::f64);
  auto run = [&](MergeKernel kernel) {
    lory.merge_kernel = kernel;
    lory.zero_grad();
    Tensor x = x0.clone();
    x.set_requires_grad(true);
    const Tensor y = lory.forward(x, TrainingRouting::causal_segment);
    sum(y * y).backward();
    return std::vector<Tensor>{y.detach(), x.grad(), lory.gate_experts.grad(), lory.up_experts.grad(),
                               lory.down_experts.grad(), lory.router.weight.grad()};
  };
  const std::vector<Tensor> gemm = run(MergeKernel::gemm), fused = run(MergeKernel::fused);
  for (size_t i = 0; i < gemm.size(); ++i) {
    INFO("tensor " << i);
    const double scale = max_abs(gemm[i]);
    CHECK(scale > 0);  // a real value, not two zeros
    CHECK(max_abs_diff(gemm[i], fused[i]) <= 1e-12 * scale);
  }
}

TEST_CASE("gradcheck: a whole tiny LoryLM in f64 (embeddings, attention, Lory layers, loss)") {
  LoryConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 6;
  c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 2;
  c.num_experts = 3;
  c.segment_length = 2;
  c.max_position_embeddings = 16;
  c.router_init_std = 0.5;
  c.initializer_range = 0.3;
  // Segment 1 routed by its own mean has a stop-gradient, so its gradient is
  // not the derivative of the forward (by design); the strictly causal
  // first segment has none, so the whole model is checkable.
  c.first_segment = FirstSegment::uniform;
  manual_seed(11);
  for (MergeKernel kernel : {MergeKernel::fused, MergeKernel::gemm}) {
    LoryLM model(c);
    model.to(DType::f64);
    model.set_merge_kernel(kernel);
    const Tensor tokens =
        from_vector(std::vector<int64_t>{1, 5, 3, 9, 2, 2, 7, 10, 4, 6, 0, 3, 8, 1}, {2, 7}, {DType::i64});
    Tensor targets = zeros({2, 6, c.vocab_size}, {DType::f64});  // one-hot of tokens[:, 1:]
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t l = 0; l < 6; ++l)
        targets.select(0, b)
            .select(0, l)
            .narrow(0, static_cast<int64_t>(tokens.select(0, b).select(0, l + 1).item()), 1)
            .fill_(1.0);
    std::vector<Tensor*> slots;
    std::vector<Tensor> inputs;
    for (auto& [name, slot] : model.named_parameters()) {
      slots.push_back(slot);
      inputs.push_back(*slot);
    }
    INFO("merge kernel " << merge_kernel_name(kernel));
    CHECK(gradcheck(
        [&](const std::vector<Tensor>& in) {
          for (size_t i = 0; i < in.size(); ++i) *slots[i] = in[i];
          // The next-token loss, in f64 (cross_entropy returns f32 by
          // contract, too coarse for finite differences; it is gradchecked
          // on its own in test_autograd.cpp).
          const Tensor logits = model.forward(tokens.narrow(1, 0, 6));
          return -mean(sum(log_softmax(logits, -1) * targets, {-1}));
        },
        inputs, GradcheckOptions{1e-6, 1e-7, 1e-5}));
  }
}

TEST_CASE("lory: KV-cached generation equals full recomputation, for prompt and segment routing") {
  manual_seed(12);
  LoryLM model(tiny());
  const std::vector<int64_t> ids = sequence(13);
  NoGradGuard no_grad;
  for (const int64_t prompt : {int64_t{3}, int64_t{6}}) {
    // prompt routing: the prompt's mean decides once; full recomputation of
    // every prefix with prompt_length = prompt gives the same logits.
    InferenceState state = model.new_inference_state(16, InferenceRouting::prompt);
    const std::vector<int64_t> head(ids.begin(), ids.begin() + prompt);
    Tensor cached = model.forward_cached(token_ids(head), state);
    for (int64_t t = prompt; t <= 12; ++t) {
      const Tensor full = model.forward(token_ids(std::vector<int64_t>(ids.begin(), ids.begin() + t)),
                                        {InferenceRouting::prompt, prompt});
      INFO("prompt " << prompt << ", step " << t);
      CHECK(max_abs_diff(cached.narrow(1, cached.size(1) - 1, 1), full.narrow(1, t - 1, 1)) < 1e-5);
      cached = model.forward_cached(token_ids({ids[static_cast<size_t>(t)]}), state);
    }
  }
  // segment routing with a prompt that covers segment 1: the cache reproduces causal_segment.
  InferenceState state = model.new_inference_state(16, InferenceRouting::segment);
  const Tensor first = model.forward_cached(token_ids(std::vector<int64_t>(ids.begin(), ids.begin() + 5)), state);
  const Tensor full = model.forward(token_ids(ids), {TrainingRouting::causal_segment});
  CHECK(max_abs_diff(first, full.narrow(1, 0, 5)) < 1e-5);
  for (int64_t t = 5; t < 13; ++t) {
    const Tensor step = model.forward_cached(token_ids({ids[static_cast<size_t>(t)]}), state);
    INFO("segment routing, position " << t);
    CHECK(max_abs_diff(step, full.narrow(1, t, 1)) < 1e-5);
  }
}

TEST_CASE("lory: prompt routing equals segment routing when the prompt is one segment long") {
  manual_seed(13);
  LoryLM model(tiny());
  const std::vector<int64_t> ids = sequence(8);  // T = 4: a one-segment prompt, then one segment generated
  NoGradGuard no_grad;
  InferenceState by_prompt = model.new_inference_state(8, InferenceRouting::prompt);
  InferenceState by_segment = model.new_inference_state(8, InferenceRouting::segment);
  const Tensor prompt = token_ids(std::vector<int64_t>(ids.begin(), ids.begin() + 4));
  CHECK(max_abs_diff(model.forward_cached(prompt, by_prompt), model.forward_cached(prompt, by_segment)) == 0.0);
  for (int64_t t = 4; t < 8; ++t) {
    const Tensor next = token_ids({ids[static_cast<size_t>(t)]});
    CHECK(max_abs_diff(model.forward_cached(next, by_prompt), model.forward_cached(next, by_segment)) < 1e-6);
  }
}
