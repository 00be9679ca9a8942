// A composite test of the whole stack: a 2-layer MLP trained with plain SGD
// (forward ops, backward sweep, in-place updates under NoGradGuard) fits XOR.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

using namespace lory;

namespace {

struct Mlp {
  Tensor w1, b1, w2, b2;  // [2, H], [H], [H, out], [out]
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
};

Tensor param(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

Mlp init_mlp(uint64_t seed, int64_t hidden, int64_t out) {
  manual_seed(seed);
  return Mlp{param(normal({2, hidden}, 0.0, 1.0)), param(zeros({hidden})),
             param(normal({hidden, out}, 0.0, 1.0 / std::sqrt(static_cast<double>(hidden)))), param(zeros({out}))};
}

// p -= lr * grad, then forget the gradient.
void sgd_step(const Mlp& m, double lr) {
  NoGradGuard no_grad;
  for (Tensor p : m.params()) {
    REQUIRE(p.grad().defined());
    p.copy_(p - p.grad() * lr);
    p.set_grad(Tensor());
  }
}

const Tensor& xor_inputs() {
  static const Tensor x = from_vector(std::vector<float>{0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  return x;
}

// Full-batch SGD on XOR with an MSE loss and a tanh hidden layer; returns the loss per step.
std::vector<double> train_xor_mse(uint64_t seed, int steps, double lr) {
  const Tensor y = from_vector(std::vector<float>{0, 1, 1, 0}, {4, 1});
  const Mlp m = init_mlp(seed, 16, 1);
  std::vector<double> history;
  for (int step = 0; step < steps; ++step) {
    const Tensor h = tanh(matmul(xor_inputs(), m.w1) + m.b1);
    const Tensor pred = matmul(h, m.w2) + m.b2;
    const Tensor loss = mean(pow(pred - y, 2.0));
    history.push_back(loss.item());
    loss.backward();
    sgd_step(m, lr);
  }
  return history;
}

}  // namespace

TEST_CASE("mlp: a 2-layer tanh MLP trained with SGD fits XOR to MSE < 0.01") {
  const std::vector<double> h = train_xor_mse(7, 300, 0.1);
  CAPTURE(h.front());
  CAPTURE(h.back());
  CHECK(h.front() > 0.1);
  CHECK(h.back() < 0.01);
  CHECK(h.back() < h.front() / 20);
  // The loss goes down over training, not just at the end.
  CHECK(h[h.size() / 2] < h.front());
  CHECK(h.back() <= h[h.size() / 2]);
  int nonfinite = 0;
  for (double l : h) nonfinite += std::isfinite(l) ? 0 : 1;
  CHECK(nonfinite == 0);
}

TEST_CASE("mlp: training is deterministic for a fixed seed") {
  const std::vector<double> a = train_xor_mse(11, 50, 0.1);
  const std::vector<double> b = train_xor_mse(11, 50, 0.1);
  const std::vector<double> c = train_xor_mse(12, 50, 0.1);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("mlp: a silu MLP trained with cross_entropy classifies XOR") {
  const Mlp m = init_mlp(3, 16, 2);
  const Tensor labels = from_vector(std::vector<int64_t>{0, 1, 1, 0}, {4}, {DType::i64});
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    const Tensor logits = matmul(silu(matmul(xor_inputs(), m.w1) + m.b1), m.w2) + m.b2;
    const Tensor loss = cross_entropy(logits, labels);
    if (step == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    sgd_step(m, 0.5);
  }
  CAPTURE(first);
  CAPTURE(last);
  CHECK(first > 0.3);
  CHECK(last < 0.05);
  // Every point is classified correctly with margin.
  NoGradGuard no_grad;
  const std::vector<double> p =
      softmax(matmul(silu(matmul(xor_inputs(), m.w1) + m.b1), m.w2) + m.b2, 1).to_vector<double>();
  const int want[4] = {0, 1, 1, 0};
  for (int i = 0; i < 4; ++i) CHECK(p[i * 2 + want[i]] > 0.9);
}
