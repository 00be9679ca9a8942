// The fused merged linear (tensor/ops/merged_linear.cpp, tensor/cpu/merged_linear.cpp)
// against the GEMM formulation it replaces (nn/merge_experts.h), forward and
// backward, in f64, f32 and bf16; gradcheck in f64; the same bits on 1 and 2
// threads; errors that name the shapes.
//
// Shapes are chosen to exercise the tiling: widths that are not multiples of
// a tile (70, 37), enough rows for several tiles, E large enough that a tile
// shrinks to fit the L2 budget, fewer tiles than work items (so the forward
// also splits segments into runs), several blocks of segments, and more
// experts than the row combination takes in one pass.
#include <doctest/doctest.h>

#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/gradcheck.h"
#include "nn/merge_experts.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tests/compare.h"

using namespace lory;
using lory::test::max_abs_diff;
using lory::test::max_abs;

namespace {

struct Case {
  int64_t S, T, E, out, in;
};

// y, dx, dweights, dexperts of sum(y * probe) through `linear`.
std::vector<Tensor> run(const Case& k, DType dtype, bool fused, uint64_t seed) {
  manual_seed(seed);
  Tensor x = randn({k.S, k.T, k.in}).to(dtype).set_requires_grad(true);
  Tensor w = softmax(randn({k.S, k.E}), -1).to(dtype).set_requires_grad(true);
  Tensor W = (randn({k.E, k.out, k.in}) * 0.1).to(dtype).set_requires_grad(true);
  const Tensor probe = randn({k.S, k.T, k.out}).to(dtype);
  const Tensor y = fused ? merged_linear(x, w, W) : nn::merged_linear_gemm(x, w, W);
  sum((y * probe).to(DType::f64)).backward();
  return {y.detach(), x.grad(), w.grad(), W.grad()};
}

const char* kNames[] = {"y", "dx", "dweights", "dexperts"};

}  // namespace

TEST_CASE("merged_linear: the fused kernel equals the GEMM formulation, forward and backward") {
  const Case cases[] = {
      {5, 7, 3, 70, 37},    // odd sizes: partial tiles everywhere
      {6, 16, 8, 200, 96},  // several tiles of rows and of columns
      {3, 64, 32, 24, 40},  // E = 32: tiles shrink; fewer tiles than items
      {19, 3, 4, 130, 20},  // several segment blocks, the last one partial
      {2, 4, 70, 9, 5},     // E = 70: more experts than one pass of the row combination takes
      {1, 1, 1, 1, 1},
  };
  struct Tolerance {
    DType dtype;
    double rel;
  };
  for (const Case& k : cases)
    for (const Tolerance& t : {Tolerance{DType::f64, 1e-12}, Tolerance{DType::f32, 2e-5}, Tolerance{DType::bf16, 2e-2}}) {
      INFO("S " << k.S << " T " << k.T << " E " << k.E << " out " << k.out << " in " << k.in << " "
                << dtype_name(t.dtype));
      const std::vector<Tensor> gemm = run(k, t.dtype, false, 5), fused = run(k, t.dtype, true, 5);
      for (size_t i = 0; i < gemm.size(); ++i) {
        INFO(kNames[i]);
        CHECK(fused[i].dtype() == t.dtype);
        CHECK(fused[i].shape() == gemm[i].shape());
        const double scale = max_abs(gemm[i]);
        CHECK(scale > 1e-3);  // a real value to compare
        // bf16 inputs are the same rounded values on both paths; the paths
        // round intermediates differently (the GEMM one rounds W̄ to bf16).
        CHECK(max_abs_diff(fused[i], gemm[i]) <= t.rel * scale);
      }
    }
}

TEST_CASE("gradcheck: the fused merged_linear in x, the routing weights and the experts (f64)") {
  manual_seed(10);
  for (const Case& k : {Case{3, 2, 2, 5, 4}, Case{2, 3, 3, 9, 10}}) {
    const Tensor x = randn({k.S, k.T, k.in}).to(DType::f64).set_requires_grad(true);
    const Tensor w = softmax(randn({k.S, k.E}).to(DType::f64), -1).detach().set_requires_grad(true);
    const Tensor experts = randn({k.E, k.out, k.in}).to(DType::f64).set_requires_grad(true);
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return merged_linear(in[0], in[1], in[2]); },
                    {x, w, experts}));
  }
}

TEST_CASE("merged_linear: the same bits on one thread and on two") {
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  const Case k{7, 16, 8, 136, 72};
  omp_set_num_threads(1);
  const std::vector<Tensor> one = run(k, DType::f32, true, 6);
  omp_set_num_threads(2);
  const std::vector<Tensor> two = run(k, DType::f32, true, 6);
  omp_set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) {
    INFO(kNames[i]);
    CHECK(max_abs(one[i]) > 0);
    CHECK(max_abs_diff(one[i], two[i]) == 0);
  }
#else
  MESSAGE("built without OpenMP: one thread only");
#endif
}

TEST_CASE("merged_linear: no tokens give an empty output and zero expert gradients") {
  Tensor x = zeros({2, 0, 4}).set_requires_grad(true);
  Tensor w = full({2, 3}, 1.0 / 3).set_requires_grad(true);
  Tensor W = ones({3, 5, 4}).set_requires_grad(true);
  const Tensor y = merged_linear(x, w, W);
  CHECK(y.shape() == Shape{2, 0, 5});
  sum(y).backward();
  CHECK(max_abs(W.grad()) == 0);
  CHECK(max_abs(w.grad()) == 0);
}

TEST_CASE("merged_linear: mismatched shapes are refused with both shapes named") {
  CHECK_THROWS_WITH_AS(merged_linear(zeros({2, 3, 4}), zeros({2, 3}), zeros({3, 5, 6})),
                       doctest::Contains("x is [2, 3, 4]"), Error);
  CHECK_THROWS_WITH_AS(merged_linear(zeros({2, 3, 4}), zeros({2, 2}), zeros({3, 5, 4})),
                       doctest::Contains("weights is [2, 2]"), Error);
  CHECK_THROWS_WITH_AS(merged_linear(zeros({2, 3, 4}), zeros({2, 3}), zeros({3, 5, 4}, {DType::i32})),
                       doctest::Contains("floating"), Error);
}
