// Expert Choice MoE (nn/expert_choice_ffn.h, paper §5.3) and the two ops it
// adds (topk_indices, index_add): forward against plain loops in f64,
// gradients against finite differences, capacity, upcycling, configs and the
// refusals (token-by-token decoding, dense export).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "autograd/gradcheck.h"
#include "nn/checkpoint.h"
#include "nn/lory_lm.h"
#include "nn/swiglu_ffn.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tests/compare.h"
#include "tests/errors.h"

using namespace lory;
using namespace lory::nn;
using lory::test::error_of;
using lory::test::max_abs;
using lory::test::max_abs_diff;

namespace {

// A row-major f64 copy of t.
std::vector<double> values(const Tensor& t) { return t.detach().to(DType::f64).contiguous().to_vector<double>(); }

// The positions of row's k largest values, largest first, ties in position order.
std::vector<int64_t> naive_topk(const std::vector<double>& row, int64_t k) {
  std::vector<int64_t> order(row.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return static_cast<float>(row[static_cast<size_t>(a)]) > static_cast<float>(row[static_cast<size_t>(b)]);
  });
  order.resize(static_cast<size_t>(k));
  return order;
}

LoryConfig ec_config(MoEType type, double capacity = 1.0) {
  LoryConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.intermediate_size = 6;
  c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 2;
  c.max_position_embeddings = 16;
  c.num_experts = 4;
  c.segment_length = 3;
  c.moe_type = type;
  c.capacity_factor = capacity;
  c.router_init_std = 0.5;  // scores far apart, so finite differences never flip a choice
  c.initializer_range = 0.3;
  return c;
}

// Expert Choice with loops over units, experts and channels, in f64: the
// equations of expert_choice_ffn.h. units: n vectors of m*d values (m tokens
// of d), scores: n x E. Returns n x m*d.
std::vector<double> naive_expert_choice(const ExpertChoiceFFN& ffn, const std::vector<double>& units, int64_t n,
                                        int64_t m, const std::vector<double>& scores) {
  const int64_t E = ffn.num_experts, d = ffn.gate_experts.size(2), f = ffn.gate_experts.size(1);
  const std::vector<double> gate = values(ffn.gate_experts), up = values(ffn.up_experts),
                            down = values(ffn.down_experts);
  const int64_t k = ffn.capacity(n);
  std::vector<double> out(static_cast<size_t>(n * m * d), 0.0);
  for (int64_t e = 0; e < E; ++e) {
    std::vector<double> column(static_cast<size_t>(n));
    for (int64_t u = 0; u < n; ++u) column[static_cast<size_t>(u)] = scores[static_cast<size_t>(u * E + e)];
    for (int64_t u : naive_topk(column, k)) {
      const double g = column[static_cast<size_t>(u)];
      for (int64_t t = 0; t < m; ++t) {
        const double* x = units.data() + (u * m + t) * d;
        std::vector<double> h(static_cast<size_t>(f));
        for (int64_t i = 0; i < f; ++i) {
          double a = 0, b = 0;
          for (int64_t j = 0; j < d; ++j) {
            a += gate[static_cast<size_t>((e * f + i) * d + j)] * x[j];
            b += up[static_cast<size_t>((e * f + i) * d + j)] * x[j];
          }
          h[static_cast<size_t>(i)] = a / (1 + std::exp(-a)) * b;
        }
        for (int64_t j = 0; j < d; ++j) {
          double y = 0;
          for (int64_t i = 0; i < f; ++i) y += down[static_cast<size_t>((e * d + j) * f + i)] * h[static_cast<size_t>(i)];
          out[static_cast<size_t>((u * m + t) * d + j)] += g * y;
        }
      }
    }
  }
  return out;
}

// softmax(W v) for each of the rows vectors v of d values.
std::vector<double> naive_scores(const ExpertChoiceFFN& ffn, const std::vector<double>& rows, int64_t n) {
  const int64_t E = ffn.num_experts, d = ffn.gate_experts.size(2);
  const std::vector<double> w = values(ffn.router.weight);
  std::vector<double> s(static_cast<size_t>(n * E));
  for (int64_t u = 0; u < n; ++u) {
    double z = 0;
    for (int64_t e = 0; e < E; ++e) {
      double a = 0;
      for (int64_t j = 0; j < d; ++j) a += w[static_cast<size_t>(e * d + j)] * rows[static_cast<size_t>(u * d + j)];
      s[static_cast<size_t>(u * E + e)] = std::exp(a);
      z += std::exp(a);
    }
    for (int64_t e = 0; e < E; ++e) s[static_cast<size_t>(u * E + e)] /= z;
  }
  return s;
}

}  // namespace

TEST_CASE("topk_indices: each row's k largest, largest first, ties in position order, any leading shape") {
  manual_seed(3);
  const Tensor x = randn({3, 5, 17}, {DType::f64});
  const Tensor got = topk_indices(x, 6);
  CHECK(got.shape() == Shape{3, 5, 6});
  CHECK(got.dtype() == DType::i64);
  const std::vector<double> xs = values(x);
  const std::vector<int64_t> gs = got.to_vector<int64_t>();
  for (int64_t r = 0; r < 15; ++r) {
    const std::vector<double> row(xs.begin() + r * 17, xs.begin() + (r + 1) * 17);
    const std::vector<int64_t> want = naive_topk(row, 6);
    CHECK(std::vector<int64_t>(gs.begin() + r * 6, gs.begin() + (r + 1) * 6) == want);
  }
  // Ties: equal values keep position order; -0 equals +0; bf16 ranks its own values.
  const Tensor tied = from_vector(std::vector<double>{1, 3, 3, -0.0, 0.0, 3, -1}, {7}, {DType::f64});
  CHECK(topk_indices(tied, 5).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 5, 0, 3});
  CHECK(topk_indices(tied.to(DType::bf16), 7).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 5, 0, 3, 4, 6});
  CHECK(topk_indices(tied, 7).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 5, 0, 3, 4, 6});
  // Bad input names what was wrong.
  CHECK(error_of([&] { topk_indices(tied, 0); }).find("k must be in [1, 7]") != std::string::npos);
  CHECK(error_of([&] { topk_indices(tied, 8); }).find("k must be in [1, 7]") != std::string::npos);
  CHECK(error_of([&] { topk_indices(tied.to(DType::i64), 2); }).find("must be floating") != std::string::npos);
}

TEST_CASE("index_add: repeated indices accumulate, x is left alone, and its gradient is (g, g[index])") {
  const Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, {DType::f64});
  const Tensor src = from_vector(std::vector<double>{10, 20, 30, 40, 50, 60}, {3, 2}, {DType::f64});
  const Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2}, {3}, {DType::i64});
  CHECK(index_add(x, 0, idx, src).to_vector<double>() == std::vector<double>{31, 42, 3, 4, 65, 86});
  CHECK(x.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});
  // Along dim 1.
  const Tensor cols = from_vector(std::vector<int64_t>{1, 1}, {2}, {DType::i64});
  CHECK(index_add(x, 1, cols, src.narrow(1, 0, 2).narrow(0, 0, 3)).to_vector<double>() ==
        std::vector<double>{1, 32, 3, 74, 5, 116});
  CHECK(error_of([&] { index_add(x, 0, idx, src.narrow(0, 0, 2)); }).find("src must be [3, 2]") != std::string::npos);
  manual_seed(4);
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return index_add(in[0], 0, idx, in[1]); },
                  {randn({3, 2}, {DType::f64}), randn({3, 2}, {DType::f64})}));
}

TEST_CASE("expert choice, token level: the forward is the equations' loops, and each expert takes k tokens") {
  for (const double capacity : {1.0, 0.5, 2.0}) {
    INFO("capacity factor " << capacity);
    manual_seed(5);
    const LoryConfig c = ec_config(MoEType::expert_choice_token, capacity);
    ExpertChoiceFFN ffn(c, InitOptions{0.3, DType::f64});
    const Tensor x = randn({2, 7, 8}, {DType::f64});  // 14 tokens, E = 4
    NoGradGuard no_grad;
    const Tensor y = ffn.forward(x);
    const int64_t k = std::llround(capacity * 14 / 4.0);
    CHECK(ffn.capacity(14) == k);
    CHECK(ffn.last_choice().shape() == Shape{4, k});
    CHECK(ffn.last_routing_weights().shape() == Shape{2, 7, 4});
    const std::vector<double> xs = values(x);
    const std::vector<double> want = naive_expert_choice(ffn, xs, 14, 1, naive_scores(ffn, xs, 14));
    CHECK(max_abs_diff(y, from_vector(want, {2, 7, 8}, {DType::f64})) < 1e-12);
    // A token no expert took has an output of exactly 0 (its residual carries it).
    const std::vector<int64_t> chosen = ffn.last_choice().to_vector<int64_t>();
    const std::vector<double> ys = values(y);
    for (int64_t u = 0; u < 14; ++u)
      if (std::find(chosen.begin(), chosen.end(), u) == chosen.end())
        for (int64_t j = 0; j < 8; ++j) CHECK(ys[static_cast<size_t>(u * 8 + j)] == 0.0);
    if (capacity < 1) CHECK(std::set<int64_t>(chosen.begin(), chosen.end()).size() < 14);
  }
}

TEST_CASE("expert choice, segment level: units are whole segments scored by the previous segment's mean") {
  manual_seed(6);
  const LoryConfig c = ec_config(MoEType::expert_choice_segment);  // T = 3
  ExpertChoiceFFN ffn(c, InitOptions{0.3, DType::f64});
  const int64_t B = 2, L = 8, d = 8, T = 3, N = 3, E = 4;  // the last segment has 2 tokens
  const Tensor x = randn({B, L, d}, {DType::f64});
  NoGradGuard no_grad;
  const Tensor y = ffn.forward(x);
  CHECK(ffn.last_routing_weights().shape() == Shape{B, N, E});
  const std::vector<double> xs = values(x);
  // Segment means over real tokens, their distributions, then eq. (3)'s shift.
  std::vector<double> means(static_cast<size_t>(B * N * d), 0.0), units(static_cast<size_t>(B * N * T * d), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < N; ++s) {
      const int64_t t0 = s * T, t1 = std::min(L, t0 + T);
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t j = 0; j < d; ++j) {
          const double v = xs[static_cast<size_t>((b * L + t) * d + j)];
          means[static_cast<size_t>((b * N + s) * d + j)] += v / static_cast<double>(t1 - t0);
          units[static_cast<size_t>(((b * N + s) * T + (t - t0)) * d + j)] = v;
        }
    }
  const std::vector<double> own = naive_scores(ffn, means, B * N);
  std::vector<double> scores(own.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < N; ++s)
      for (int64_t e = 0; e < E; ++e)
        scores[static_cast<size_t>((b * N + s) * E + e)] = own[static_cast<size_t>((b * N + std::max<int64_t>(s - 1, 0)) * E + e)];
  CHECK(max_abs_diff(ffn.last_routing_weights(), from_vector(scores, {B, N, E}, {DType::f64})) < 1e-14);
  const std::vector<double> out = naive_expert_choice(ffn, units, B * N, T, scores);  // 6 units, k = 2
  std::vector<double> want(static_cast<size_t>(B * L * d));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t j = 0; j < d; ++j)
        want[static_cast<size_t>((b * L + t) * d + j)] =
            out[static_cast<size_t>(((b * N + t / T) * T + t % T) * d + j)];
  CHECK(ffn.capacity(B * N) == 2);
  CHECK(max_abs_diff(y, from_vector(want, {B, L, d}, {DType::f64})) < 1e-12);
}

TEST_CASE("expert choice, gates softmax_times_experts: the same choice, every output times E") {
  for (MoEType type : {MoEType::expert_choice_token, MoEType::expert_choice_segment}) {
    INFO(moe_type_name(type));
    manual_seed(9);
    LoryConfig c = ec_config(type);
    ExpertChoiceFFN softmax_gates(c, InitOptions{0.3, DType::f64});
    c.expert_choice_gates = ExpertChoiceGates::softmax_times_experts;
    ExpertChoiceFFN scaled(c, InitOptions{0.3, DType::f64});
    const auto from = softmax_gates.named_parameters(), to = scaled.named_parameters();
    for (size_t i = 0; i < from.size(); ++i) *to[i].second = from[i].second->detach();
    const Tensor x = randn({2, 7, 8}, {DType::f64});
    NoGradGuard no_grad;
    const Tensor y = softmax_gates.forward(x), y_scaled = scaled.forward(x);
    CHECK(max_abs(y) > 0.0);
    CHECK(max_abs_diff(y_scaled, y * 4.0) < 1e-12);  // E = 4
    CHECK(max_abs_diff(scaled.last_choice().to(DType::f64), softmax_gates.last_choice().to(DType::f64)) == 0.0);
  }
  // Upcycled (every expert the dense FFN) with a near-uniform router, S ~ 1/E
  // and G = E S ~ 1: a token that c experts took gets ~ c * FFN(x), and with
  // capacity 1 tokens are taken once on average (E k = n), so the layer keeps
  // the dense FFN's output scale, as Lory's merge (weights summing to 1) does.
  manual_seed(10);
  LoryConfig c = ec_config(MoEType::expert_choice_token);
  c.expert_choice_gates = ExpertChoiceGates::softmax_times_experts;
  ExpertChoiceFFN ffn(c, InitOptions{0.3, DType::f64});
  SwiGLU dense(8, 6, InitOptions{0.3, DType::f64});
  NoGradGuard no_grad;
  for (int64_t e = 0; e < 4; ++e) {
    ffn.gate_experts.select(0, e).copy_(dense.gate_proj.weight);
    ffn.up_experts.select(0, e).copy_(dense.up_proj.weight);
    ffn.down_experts.select(0, e).copy_(dense.down_proj.weight);
  }
  ffn.router.weight.copy_(randn({4, 8}, {DType::f64}) * 1e-7);
  const Tensor x = randn({2, 6, 8}, {DType::f64});  // 12 tokens, k = 3
  const std::vector<double> y = values(ffn.forward(x)), want = values(dense.forward(x));
  std::vector<double> taken(12, 0.0);
  for (int64_t u : ffn.last_choice().to_vector<int64_t>()) taken[static_cast<size_t>(u)] += 1;
  double worst = 0;
  for (size_t u = 0; u < 12; ++u)
    for (size_t j = 0; j < 8; ++j) worst = std::max(worst, std::abs(y[u * 8 + j] - taken[u] * want[u * 8 + j]));
  CHECK(worst < 1e-5);
}

TEST_CASE("expert choice: gradients of input, experts and router against finite differences (f64)") {
  for (MoEType type : {MoEType::expert_choice_token, MoEType::expert_choice_segment})
  for (ExpertChoiceGates gates : {ExpertChoiceGates::softmax, ExpertChoiceGates::softmax_times_experts}) {
    INFO(moe_type_name(type) << ", gates " << expert_choice_gates_name(gates));
    manual_seed(7);
    LoryConfig c = ec_config(type);
    c.expert_choice_gates = gates;
    c.first_segment = FirstSegment::uniform;  // segment 1's stop-gradient is not the forward's derivative
    ExpertChoiceFFN ffn(c, InitOptions{0.3, DType::f64});
    std::vector<Tensor*> slots{&ffn.gate_experts, &ffn.up_experts, &ffn.down_experts, &ffn.router.weight};
    std::vector<Tensor> inputs{randn({2, 7, 8}, {DType::f64})};
    for (Tensor* s : slots) inputs.push_back(*s);
    CHECK(gradcheck(
        [&](const std::vector<Tensor>& in) {
          for (size_t i = 0; i < slots.size(); ++i) *slots[i] = in[i + 1];
          return ffn.forward(in[0]);
        },
        inputs, GradcheckOptions{1e-6, 1e-7, 1e-5}));
  }
}

TEST_CASE("expert choice in a LoryLM: Lory's parameter names, upcycling from dense, a training step, refusals") {
  manual_seed(8);
  const LoryConfig c = ec_config(MoEType::expert_choice_token);
  LoryLM ec(c);
  LoryConfig lory_config = c;
  lory_config.moe_type = MoEType::lory;
  LoryLM lory(lory_config);
  std::vector<std::string> ec_names, lory_names;
  for (auto& [name, slot] : ec.named_parameters()) ec_names.push_back(name);
  for (auto& [name, slot] : lory.named_parameters()) lory_names.push_back(name);
  CHECK(ec_names == lory_names);
  CHECK(ec.model.layers[0]->expert_choice_mlp != nullptr);
  CHECK(ec.model.layers[0]->lory_mlp == nullptr);

  // The config round-trips through config.json with its Expert Choice keys.
  const LoryConfig back = parse_config(config_to_json(c), "test");
  CHECK(back.moe_type == MoEType::expert_choice_token);
  CHECK(back.capacity_factor == 1.0);
  CHECK(back.expert_choice_gates == ExpertChoiceGates::softmax);
  LoryConfig scaled_gates = c;
  scaled_gates.expert_choice_gates = ExpertChoiceGates::softmax_times_experts;
  CHECK(parse_config(config_to_json(scaled_gates), "test").expert_choice_gates ==
        ExpertChoiceGates::softmax_times_experts);
  CHECK(error_of([&] { parse_config(R"({"num_experts": 4, "expert_choice_gates": "sigmoid"})", "cfg.json"); })
            .find("'sigmoid' is not one of softmax, softmax_times_experts") != std::string::npos);
  CHECK(error_of([&] { parse_config(R"({"num_experts": 4, "moe_type": "switch"})", "cfg.json"); })
            .find("'switch' is not one of lory, expert_choice_segment, expert_choice_token") != std::string::npos);
  // A Lory model's config.json has no Expert Choice keys, and setting them on one is refused.
  CHECK(config_to_json(lory_config).find("capacity_factor") == std::string::npos);
  CHECK(config_to_json(lory_config).find("expert_choice_gates") == std::string::npos);
  LoryConfig lory_with_gates = lory_config;
  lory_with_gates.expert_choice_gates = ExpertChoiceGates::softmax_times_experts;
  CHECK(error_of([&] { lory_with_gates.validate("cfg"); })
            .find("capacity_factor and expert_choice_gates are for moe_type expert_choice_segment or "
                  "expert_choice_token; this is moe_type lory") != std::string::npos);
  LoryConfig too_much = c;
  too_much.capacity_factor = 5;
  CHECK(error_of([&] { too_much.validate("cfg"); }).find("capacity_factor must be in (0, num_experts = 4]") !=
        std::string::npos);
  // No merge; the router runs per token.
  const FlopsPerToken flops = flops_per_token(c, 16), lory_flops = flops_per_token(lory_config, 16);
  CHECK(flops.merge == 0);
  CHECK(flops.router == doctest::Approx(2.0 * 2 * 8 * 4));
  CHECK(flops.matmul == doctest::Approx(lory_flops.matmul));

  // Upcycling fills every expert with the dense FFN, as for Lory (paper §4.1).
  LoryConfig dense_config = c;
  dense_config.num_experts = 0;
  LoryLM dense(dense_config);
  const std::unique_ptr<LoryLM> up = upcycle(dense, 4);
  REQUIRE(up->model.layers[1]->expert_choice_mlp != nullptr);
  const ExpertChoiceFFN& ffn = *up->model.layers[1]->expert_choice_mlp;
  for (int64_t e = 0; e < 4; ++e)
    CHECK(max_abs_diff(ffn.down_experts.select(0, e), dense.model.layers[1]->dense_mlp->down_proj.weight) == 0.0);

  // A training step reaches the experts and the routers (through the gates).
  const Tensor tokens = from_vector(std::vector<int64_t>{1, 5, 3, 9, 2, 2, 7, 10, 4, 6, 0, 3, 8, 1}, {2, 7}, {DType::i64});
  ec.loss(tokens).backward();
  for (auto& layer : ec.model.layers) {
    CHECK(max_abs(layer->expert_choice_mlp->router.weight.grad()) > 0.0);
    CHECK(max_abs(layer->expert_choice_mlp->gate_experts.grad()) > 0.0);
  }
  CHECK(ec.routing_weights().size() == 2);
  CHECK(ec.routing_weights()[0].shape() == Shape{2, 6, 4});

  // What Expert Choice cannot do is refused, saying why.
  InferenceState state = ec.new_inference_state(8, InferenceRouting::prompt);
  CHECK(error_of([&] { ec.forward_cached(tokens.narrow(0, 0, 1), state); })
            .find("cannot decode token by token") != std::string::npos);
  CHECK(error_of([&] { export_dense(ec, tokens.narrow(0, 0, 1)); }).find("only a Lory model merges") !=
        std::string::npos);
}
