// Data parallelism (train/zero_optimizer.h, gradient_reducer.h,
// train_checkpoint.h) run for real: every test runs on every rank of an
// `mpirun -np N` job (N = 1, 2, 4 in ctest) and compares the job's training
// with a single-process reference that each rank computes for itself.
//
// A check that fails on one rank must not stop it from calling the
// collectives the other ranks go on to call (they would wait forever), so
// these tests use CHECK, not REQUIRE, wherever more training follows.
//
// The reference sums the same gradients in another order, so weights agree
// to f32 rounding, amplified where Adam divides a ~0 gradient by its own
// size (see "k micro-batches of m sequences" in tests/test_train.cpp): the
// checks are per parameter, relative L2 and per element, as there.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tests/mpi/world.h"
#include "tests/train_fixture.h"
#include "train/memory_plan.h"
#include "train/memory_use.h"
#include "train/mpi_communicator.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

using namespace lory;
using namespace lory::train;
using namespace lory::test;
namespace fs = std::filesystem;

namespace {

// A scratch directory shared by the ranks (rank 0 names it), with the data built once.
const std::string& shared_root() {
  static const std::string root = [] {
    std::string path = (fs::temp_directory_path() / ("lory-test-mpi-" + std::to_string(::getpid()))).string();
    world().broadcast_host(path, 0);
    if (world().is_root()) {
      fs::remove_all(path);
      make_train_data(path + "/data");
    }
    world().barrier();
    return path;
  }();
  return root;
}

const TrainData& data() {
  static const TrainData d = make_train_data(shared_root() + "/data", false);
  return d;
}

// A run directory; `mine`: one per rank (single-process references).
std::string run_dir(const std::string& name, bool mine = false) {
  const std::string p =
      shared_root() + "/runs/" + name + (mine ? "-rank" + std::to_string(world().rank()) : std::string());
  world().barrier();
  if (mine || world().is_root()) fs::remove_all(p);
  world().barrier();
  return p;
}

struct Outcome {
  std::vector<double> losses;
  std::vector<float> master;  // the whole f32 master weights
  std::vector<FlatSlot> slots;
  int64_t flat_size = 0, moments = 0;
  RunEnd end = RunEnd::finished;
  std::string message;
  MemoryPlan held, planned;  // this rank's buffers, and memory_plan.h's plan for them
};

Outcome run_training(const TrainConfig& config, Communicator* comm, int64_t stop_after = -1, bool resume = false) {
  Trainer t(config, resume, true, comm);
  if (stop_after > 0) t.stop_after(stop_after);
  const RunResult r = t.run();
  Outcome o{r.losses, t.optimizer().gather_master().to_vector<float>(), t.flat().slots(), t.flat().size(),
            t.optimizer().adam().exp_avg.numel(), r.end, r.message, held_memory(t.optimizer()), {}};
  MemoryPlanInput in;
  in.world = comm ? comm->world() : 1;
  in.zero = static_cast<int>(config.train.zero);
  in.micro_batch = config.train.micro_batch;
  in.seq_len = t.plan().seq_len;
  in.compute = config.train.precision == "bf16" ? DType::bf16 : DType::f32;
  in.accumulation = t.plan().accum;
  in.bucket_bytes = static_cast<int64_t>(config.train.bucket_mb * 1024 * 1024);
  o.planned = plan_memory(t.model().config, in);
  return o;
}

// Per parameter: relative L2 below `rel`, and each element within rel |w| + `abs`.
void check_close(const Outcome& got, const Outcome& want, double rel, double abs) {
  // (Slots sit at the same offsets at any world size; only the tail padding differs.)
  CHECK(got.slots.size() == want.slots.size());
  if (got.slots.size() != want.slots.size()) return;
  for (const FlatSlot& s : want.slots) {
    CHECK(static_cast<size_t>(s.offset + s.numel) <= got.master.size());
    if (static_cast<size_t>(s.offset + s.numel) > got.master.size()) return;
    INFO(s.name);
    double diff2 = 0, norm2 = 0;
    int64_t off = 0;
    for (int64_t k = s.offset; k < s.offset + s.numel; ++k) {
      const double w = want.master[static_cast<size_t>(k)];
      const double d = static_cast<double>(got.master[static_cast<size_t>(k)]) - w;
      diff2 += d * d, norm2 += w * w;
      if (std::abs(d) > rel * std::abs(w) + abs) ++off;
    }
    CHECK(std::sqrt(diff2 / norm2) < rel);
    CHECK(off == 0);
  }
}

bool bitwise_equal(const Outcome& a, const Outcome& b) { return a.master == b.master && a.losses == b.losses; }

}  // namespace

TEST_CASE("data parallel: N ranks of micro-batch 1 train like one rank of micro-batch N, across the upcycling switch") {
  const int64_t N = world().world();
  // 6 steps of 4 sequences, dense for the first: one rank sees 4 / N per step.
  const TrainConfig reference_config = tiny_train_config(data(), run_dir("reference", true),
                                                         {{"train.micro_batch", "4"}});
  const Outcome reference = run_training(reference_config, nullptr);
  CHECK(reference.losses.size() == 6);
  if (reference.losses.size() == 6) CHECK(reference.losses[5] < reference.losses[0]);
  for (const char* stage : {"0", "1", "2"}) {
    INFO("ZeRO stage ", std::string(stage), ", ", N, " ranks");
    const TrainConfig c = tiny_train_config(data(), run_dir(std::string("dp-zero") + stage),
                                            {{"train.micro_batch", "1"}, {"train.zero", stage}});
    const Outcome got = run_training(c, &world());
    CHECK(got.losses.size() == 6);
    for (size_t s = 0; s < std::min({size_t{6}, got.losses.size(), reference.losses.size()}); ++s)
      CHECK(got.losses[s] == doctest::Approx(reference.losses[s]).epsilon(1e-5));
    check_close(got, reference, 1e-3, 0.05 * 0.003);
  }
}

TEST_CASE("data parallel: ZeRO 0, 1 and 2 give the same weights, with optimizer state 1/N per rank under 1 and 2") {
  const int64_t N = world().world();
  for (const char* precision : {"f32", "bf16"}) {
    INFO(std::string(precision), ", ", N, " ranks");
    std::vector<Outcome> runs;
    for (const char* stage : {"0", "1", "2"})
      runs.push_back(run_training(
          tiny_train_config(data(), run_dir(std::string("zero-stages-") + precision + stage),
                            {{"train.micro_batch", "1"}, {"train.zero", stage}, {"train.precision", precision},
                             {"train.bucket_mb", "0.05"}}),  // several buckets, and pieces of the embeddings
          &world()));
    // Stages 0 and 1 reduce the same sums and update each element alike: the same bits.
    CHECK(bitwise_equal(runs[0], runs[1]));
    // Stage 2 reduces every micro-batch (here 4 / N of them) and adds the
    // results: the same bits with one micro-batch, rounding otherwise.
    if (N == 4)
      CHECK(bitwise_equal(runs[0], runs[2]));
    else
      check_close(runs[2], runs[0], 1e-3, 0.05 * 0.003);
    CHECK(runs[0].moments == runs[0].flat_size);
    for (size_t i : {1, 2}) CHECK(runs[i].moments == runs[i].flat_size / N);
    // What each rank holds is the plan lory_info prints (memory_plan.h).
    for (const Outcome& r : runs) {
      CHECK(r.held.weights == r.planned.weights);
      CHECK(r.held.gradients == r.planned.gradients);
      CHECK(r.held.master == r.planned.master);
      CHECK(r.held.moments == r.planned.moments);
    }
    // Any parameter count works: the flat size is padded to 16 N, and every
    // rank's shard is as large.
    int64_t raw = 0;
    for (const FlatSlot& s : runs[0].slots) raw += s.numel;
    CHECK(runs[1].flat_size % (16 * N) == 0);
    CHECK(runs[1].flat_size >= raw);
  }
}

TEST_CASE("data parallel: a checkpoint written by N ranks resumes on N/2 ranks and one of N/2 on N") {
  const int64_t N = world().world();
  if (N < 2) return;  // needs two world sizes
  const int half_color = world().rank() < N / 2 ? 0 : 1;
  std::unique_ptr<Communicator> half = mpi_split_communicator(world(), half_color);
  auto config = [&](const std::string& dir) {
    return tiny_train_config(data(), dir, {{"train.micro_batch", "1"}, {"train.zero", "1"}});
  };
  const Outcome straight = run_training(config(run_dir("reshard-straight")), &world());

  // N ranks to step 3, then N/2 of them to the end.
  const std::string down = run_dir("reshard-down");
  run_training(config(down), &world(), 3);
  CHECK(read_checkpoint_info(latest_checkpoint(down)).world == N);
  Outcome resumed_down;
  if (half_color == 0) resumed_down = run_training(config(down), half.get(), -1, true);
  world().barrier();

  // N/2 ranks to step 3, then all N.
  const std::string up = run_dir("reshard-up");
  if (half_color == 0) run_training(config(up), half.get(), 3);
  world().barrier();
  const Outcome resumed_up = run_training(config(up), &world(), -1, true);

  if (half_color == 0) {
    REQUIRE(resumed_down.losses.size() == 3);  // steps 4..6
    for (size_t s = 0; s < 3; ++s)
      CHECK(resumed_down.losses[s] == doctest::Approx(straight.losses[s + 3]).epsilon(1e-5));
    check_close(resumed_down, straight, 1e-3, 0.05 * 0.003);
  }
  REQUIRE(resumed_up.losses.size() == 3);
  for (size_t s = 0; s < 3; ++s) CHECK(resumed_up.losses[s] == doctest::Approx(straight.losses[s + 3]).epsilon(1e-5));
  check_close(resumed_up, straight, 1e-3, 0.05 * 0.003);
  // Every tool reads the directory the N ranks wrote (model shards + index).
  if (world().is_root()) {
    const std::string last = latest_checkpoint(up);
    CHECK(fs::exists(last + (N > 1 ? "/model.safetensors.index.json" : "/model.safetensors")));
  }
}

TEST_CASE("data parallel: a resumed run of the same world size is bitwise the run that was not stopped") {
  auto config = [&](const std::string& dir) {
    return tiny_train_config(data(), dir, {{"train.micro_batch", "1"}, {"train.zero", "2"}});
  };
  const Outcome straight = run_training(config(run_dir("exact-straight")), &world());
  // Step 1 is the dense warm-up: resumed from it, the run upcycles under
  // sharding; from step 3 it resumes a Lory checkpoint.
  for (int64_t stop : {1, 3}) {
    INFO("stopped after step ", stop);
    const std::string dir = run_dir("exact-stopped-" + std::to_string(stop));
    run_training(config(dir), &world(), stop);
    CHECK(read_checkpoint_info(latest_checkpoint(dir)).state.lory_phase == (stop > 1));
    const Outcome resumed = run_training(config(dir), &world(), -1, true);
    CHECK(resumed.master == straight.master);
    CHECK(resumed.losses.size() == static_cast<size_t>(6 - stop));
    for (size_t s = 0; s < resumed.losses.size() && s + stop < straight.losses.size(); ++s)
      CHECK(resumed.losses[s] == straight.losses[s + stop]);
  }
}

TEST_CASE("data parallel: a stop signal on one rank, or a NaN, stops every rank at the same step") {
  // The signal reaches rank N - 1 only; all stop after the step and checkpoint it.
  const std::string dir = run_dir("signal");
  Trainer::stop_signal.store(world().rank() == world().world() - 1 ? 15 : 0);
  const Outcome stopped = run_training(tiny_train_config(data(), dir, {{"train.micro_batch", "1"}}), &world());
  Trainer::stop_signal.store(0);
  CHECK(stopped.end == RunEnd::stopped);
  CHECK(stopped.losses.size() == 1);
  CHECK(read_checkpoint_info(latest_checkpoint(dir)).state.step == 1);

  const Outcome nan = run_training(tiny_train_config(data(), run_dir("nan"), {{"train.micro_batch", "1"},
                                                                        {"optim.lr", "1e38"},
                                                                        {"schedule.warmup", "0"}}),
                            &world());
  CHECK(nan.end == RunEnd::non_finite);
  // The same step and message on every rank.
  std::string message = nan.message;
  world().broadcast_host(message, 0);
  CHECK(nan.message == message);
  CHECK(world().max_over_ranks(static_cast<int64_t>(nan.losses.size())) ==
        world().min_over_ranks(static_cast<int64_t>(nan.losses.size())));
}

TEST_CASE("data parallel: on GPUs, NCCL ranks train like MPI ranks on the CPU (skipped without a GPU per rank)") {
  // Every rank must take the same branch: skip unless all of them have a GPU.
  const bool have_gpu = cuda_is_available() && world().local_rank() < cuda_device_count();
  if (world().min_over_ranks(have_gpu ? 1 : 0) == 0) {
    MESSAGE("no GPU for every rank: skipped");
    return;
  }
  auto config = [&](const std::string& name, const char* device) {
    return tiny_train_config(data(), run_dir(name), {{"train.micro_batch", "1"}, {"train.device", device}});
  };
  const Outcome cpu = run_training(config("nccl-vs-mpi-cpu", "cpu"), &world());
  const Outcome gpu = run_training(config("nccl-vs-mpi-gpu", "cuda"), &world());
  REQUIRE(gpu.losses.size() == cpu.losses.size());
  // Other kernels (cuBLAS, the fused CUDA ones) and another reduction order.
  for (size_t s = 0; s < cpu.losses.size(); ++s) CHECK(gpu.losses[s] == doctest::Approx(cpu.losses[s]).epsilon(1e-4));
  check_close(gpu, cpu, 1e-2, 0.1 * 0.003);
}
