// zero_optimizer.cpp — see zero_optimizer.h.
#include "train/zero_optimizer.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "tensor/backend.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace lory::train {

using profiler::Phase;
using profiler::Region;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

double sum_of_squares(const Tensor& x) {
  Tensor total = empty({1}, TensorOptions{DType::f64, x.device(), false});
  backend_for(x.device()).sum_squares(x, total);
  return total.to_vector<double>()[0];
}

ZeroOptimizer::ZeroOptimizer(nn::Module& model, DType compute_dtype, Communicator& comm, ZeroOptions zero,
                             AdamWOptions adam)
    : comm_(comm), zero_(zero) {
  LORY_CHECK(zero.stage >= 0 && zero.stage <= 2, "train.zero = ", zero.stage, ": the ZeRO stage must be 0, 1 or 2");
  const int64_t world = comm.world(), rank = comm.rank();
  const bool sharded = world > 1 && zero.stage >= 1;
  flat_ = std::make_unique<FlatParameters>(
      model, compute_dtype,
      FlatOptions{zero.device, world, rank, sharded,
                  /*full_accumulator=*/world == 1 || zero.stage == 0 || (zero.stage == 1 && zero.accumulation > 1)});
  const FlatRange range = sharded ? FlatRange{flat_->shard_begin(rank), flat_->shard_begin(rank) + flat_->shard_size()}
                                  : FlatRange{0, flat_->size()};
  adam_ = std::make_unique<AdamW>(*flat_, adam, range);
  if (world > 1) {
    reduced_ = zeros({flat_->shard_size()}, TensorOptions{DType::f32, flat_->params.device(), false});
    reducer_ = std::make_unique<GradientReducer>(*flat_, comm, zero.stage, reduced_, zero.bucket_bytes, zero.overlap);
  }
}

void ZeroOptimizer::begin_step() {
  Region timed("zero_grads", Phase::optimizer);
  flat_->zero_grads();
  if (reducer_) reducer_->begin_step();
}

void ZeroOptimizer::before_backward(bool last) {
  if (reducer_) reducer_->before_backward(last);
}

void ZeroOptimizer::after_backward() {
  if (reducer_) {
    // The buckets the backward's hook did not start (or, on a micro-batch
    // that does not reduce, the bf16 gradients added into the f32 sum).
    Region timed("after_backward", Phase::communication);
    reducer_->after_backward();
  } else {
    Region timed("accumulate_grads", Phase::optimizer);
    flat_->accumulate_micro_batch();
  }
}

double ZeroOptimizer::reduce_and_norm() {
  if (!reducer_) {
    Region timed("grad_norm", Phase::optimizer);
    return std::sqrt(sum_of_squares(flat_->master_grads));
  }
  {
    Region timed("reduce_scatter_wait", Phase::communication);
    reducer_->finish();
  }
  const auto t = Clock::now();
  // Each rank's partial sum, added in rank order: the same bits everywhere.
  double total = 0;
  {
    Region timed("grad_norm", Phase::optimizer);
    for (double part : comm_.all_gather_host(sum_of_squares(reduced_))) total += part;
  }
  if (zero_.stage == 0) {
    Region timed("all_gather_grads", Phase::communication);
    // Every rank runs the whole update: it needs the whole summed gradient.
    NoGradGuard no_grad;
    flat_->master_grads.narrow(0, flat_->shard_begin(comm_.rank()), flat_->shard_size()).copy_(reduced_);
    comm_.all_gather(flat_->master_grads);
  }
  stats_.exposed_s += seconds_since(t);
  return std::sqrt(total);
}

// The first slot (in flat order) meeting [begin, begin + values.numel())
// where `values` is not finite, agreed over the ranks ("" if none anywhere).
std::string ZeroOptimizer::agree_first_bad_slot(const Tensor& values, int64_t begin) {
  int64_t first = std::numeric_limits<int64_t>::max();
  if (!std::isfinite(sum_of_squares(values))) {
    const std::vector<float> host = values.to_vector<float>();
    const auto& slots = flat_->slots();
    for (size_t k = 0; k < slots.size() && first == std::numeric_limits<int64_t>::max(); ++k) {
      const int64_t lo = std::max(slots[k].offset, begin);
      const int64_t hi = std::min(slots[k].offset + slots[k].numel, begin + values.numel());
      for (int64_t i = lo; i < hi; ++i)
        if (!std::isfinite(host[static_cast<size_t>(i - begin)])) {
          first = static_cast<int64_t>(k);
          break;
        }
    }
  }
  first = comm_.min_over_ranks(first);
  return first == std::numeric_limits<int64_t>::max() ? "" : flat_->slots()[static_cast<size_t>(first)].name;
}

std::string ZeroOptimizer::first_non_finite_grad() {
  if (!reducer_) return agree_first_bad_slot(flat_->master_grads, 0);
  return agree_first_bad_slot(reduced_, flat_->shard_begin(comm_.rank()));
}

StepReport ZeroOptimizer::step(double lr, double max_norm, double norm) {
  NoGradGuard no_grad;
  StepReport report{norm, AdamW::clip_scale(norm, max_norm)};
  const FlatRange r = range();
  Tensor publish = flat_->has_separate_master() ? flat_->params.narrow(0, r.begin, r.size()) : Tensor();
  const Tensor& grads = (reducer_ && zero_.stage >= 1) ? reduced_ : flat_->master_grads;
  {
    Region timed("adamw_step", Phase::optimizer);
    adam_->update(*flat_, flat_->master, grads, publish.defined() ? &publish : nullptr, lr, report.clip_scale);
  }
  if (reducer_ && zero_.stage >= 1) {
    Region timed("all_gather_weights", Phase::communication);
    const auto t = Clock::now();
    comm_.all_gather(flat_->params);  // every rank's updated shard, to every rank
    stats_.exposed_s += seconds_since(t);
  }
  return report;
}

std::string ZeroOptimizer::first_non_finite_param() {
  Region timed("check_weights_finite", Phase::optimizer);
  return agree_first_bad_slot(flat_->master, flat_->master_begin());
}

Tensor ZeroOptimizer::gather(const Tensor& part) {
  const FlatRange r = range();
  if (r.begin == 0 && r.end == flat_->size()) return part;
  NoGradGuard no_grad;
  Tensor whole = zeros({flat_->size()}, TensorOptions{DType::f32, part.device(), false});
  whole.narrow(0, r.begin, r.size()).copy_(part);
  comm_.all_gather(whole);
  return whole;
}

Tensor ZeroOptimizer::gather_master() { return gather(flat_->master); }

std::pair<Tensor, Tensor> ZeroOptimizer::gather_moments() {
  return {gather(adam_->exp_avg), gather(adam_->exp_avg_sq)};
}

CommStats ZeroOptimizer::take_stats() {
  CommStats out = reducer_ ? reducer_->take_stats() : CommStats{};
  out.exposed_s += stats_.exposed_s;
  stats_ = CommStats{};
  return out;
}

}  // namespace lory::train
