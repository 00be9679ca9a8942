// bench_matmul_overhead — what the Tensor wrapper costs on a 1024x1024 matmul.
//
// Baseline: Eigen's GEMM called directly on row-major matrices. Ours:
// lory::matmul on tensors of the same layout (shape checks, output
// allocation, dispatch to the CPU backend, which calls the same Eigen GEMM).
// Both run in this process on the same data, interleaved, best of several
// rounds; the ratio is the wrapper's overhead. The target is < 10%.
//
//   bench_matmul_overhead [--n 1024] [--reps 20] [--rounds 5]
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tools/cli.h"

using Clock = std::chrono::steady_clock;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename F>
double best_seconds_per_call(F&& fn, int reps, int rounds) {
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / reps);
  }
  return best;
}

int main(int argc, char** argv) {
  lory::tools::App app("bench_matmul_overhead",
                       "Times lory::matmul against Eigen's GEMM on the same N x N f32 matrices.");
  int64_t n = 1024;
  int reps = 20, rounds = 5;
  app.add_option("--n", n, "matrix size")->type_name("N")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "calls per timing")->type_name("R")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "timings, interleaved (the best is kept)")
      ->type_name("K")
      ->check(CLI::PositiveNumber);
  if (!app.parse_command_line(argc, argv)) return app.exit_code();

  lory::NoGradGuard no_grad;
  lory::manual_seed(0);
  const lory::Tensor a = lory::randn({n, n}), b = lory::randn({n, n});
  // Eigen sees the very same numbers.
  RowMatrix ea(n, n), eb(n, n), ec(n, n);
  std::memcpy(ea.data(), a.data_ptr(), a.nbytes());
  std::memcpy(eb.data(), b.data_ptr(), b.nbytes());

  auto eigen_call = [&] { ec.noalias() = ea * eb; };
  auto lory_call = [&] { lory::Tensor c = lory::matmul(a, b); };
  eigen_call();  // warm-up: thread pool, page faults
  lory_call();
  double t_eigen = 1e30, t_lory = 1e30;
  for (int r = 0; r < rounds; ++r) {  // interleave so drift hits both alike
    t_eigen = std::min(t_eigen, best_seconds_per_call(eigen_call, reps, 1));
    t_lory = std::min(t_lory, best_seconds_per_call(lory_call, reps, 1));
  }

  // Correctness guard: the two results must agree.
  const lory::Tensor c = lory::matmul(a, b);
  const float* pc = static_cast<const float*>(c.data_ptr());
  double max_diff = 0;
  for (int64_t i = 0; i < n * n; ++i) max_diff = std::max(max_diff, double(std::abs(pc[i] - ec.data()[i])));

  const double flops = 2.0 * n * n * n;
  std::printf("%-22s %12s %12s\n", "impl", "ms/call", "GFLOP/s");
  std::printf("%-22s %12.3f %12.1f\n", "eigen (baseline)", t_eigen * 1e3, flops / t_eigen * 1e-9);
  std::printf("%-22s %12.3f %12.1f\n", "lory::matmul", t_lory * 1e3, flops / t_lory * 1e-9);
  const double overhead = (t_lory / t_eigen - 1.0) * 100.0;
  std::printf("ratio lory/eigen: %.3f (overhead %+.1f%%, target < 10%%), max |diff| %.2e\n", t_lory / t_eigen, overhead,
              max_diff);
  return max_diff < 1e-2 ? 0 : 1;
}
