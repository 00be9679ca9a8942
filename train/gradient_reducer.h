// gradient_reducer.h — summing the ranks' gradients while backward still runs.
//
// Every rank computes the gradient of its own micro-batches; the optimizer
// needs their sum, and under ZeRO each rank needs only its shard of it
// (flat_parameters.h: rank r owns [r S, (r + 1) S)). A reduce-scatter of the
// whole flat gradient after backward would leave the network idle during
// backward and the processors idle during the reduction. Instead the flat
// space is cut into buckets of whole parameters (train.bucket_mb each),
// in the reverse of the parameters' order, the order backward finishes
// them; the autograd engine reports each parameter whose gradient is final
// (set_leaf_grad_hook, autograd/engine.h), and once every parameter of a
// bucket is, that bucket's reduce-scatter starts, non-blocking:
//
//   bucket [lo, hi) -> rank r receives sum over ranks of grad[lo, hi) ∩ shard r
//
// (most buckets meet one or two shards: the other ranks receive nothing).
// MPI moves a non-blocking collective forward only inside MPI calls, so each
// report also polls the reductions in flight; NCCL runs them on its own
// stream.
//
// When reductions happen, by ZeRO stage:
//   stage 0, 1  the micro-batches' gradients are summed locally first (bf16:
//               into the f32 accumulator, flat.master_grads); only the last
//               micro-batch's backward reduces, bucket by bucket
//   stage 2     there is no whole-buffer f32 accumulator: every micro-batch's
//               backward reduces its buckets (bf16 ones through two f32
//               staging buckets), and each result is added into the shard
//               (so does stage 1 when a step has one micro-batch and bf16
//               compute: there is nothing to accumulate, zero_optimizer.h)
// A bucket is a flat range of at most train.bucket_mb: whole parameters, or
// a piece of one larger parameter (an expert stack); it starts once every
// parameter it meets is final.
// Either way `reduced` ends the step holding this rank's shard of the sum of
// every rank's gradient (f32). For a fixed world size the result is the
// same bits on every run (same buckets, same order, the engines' fixed
// reduction order); stages 0/1 and 2 add in a different order when there
// are several micro-batches, so they agree to rounding, not bitwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "train/communicator.h"
#include "train/flat_parameters.h"

namespace lory::train {

// Communication in one optimizer step.
struct CommStats {
  double reduce_s = 0;         // wall time gradient reductions were in flight (their union)
  double reduce_hidden_s = 0;  // the part of it while backward was still running
  double exposed_s = 0;        // time the step was blocked waiting on communication
  int64_t buckets = 0;         // reductions started
  bool timed = true;           // reduce_s and reduce_hidden_s were measured (not under NCCL)
  double hidden_fraction() const { return reduce_s > 0 ? reduce_hidden_s / reduce_s : 0.0; }
};

class GradientReducer {
 public:
  // `reduced`: f32 [flat.shard_size()], this rank's shard of the summed
  // gradient. overlap = false starts every bucket after backward instead
  // (the same sums; for measuring what the overlap hides).
  GradientReducer(FlatParameters& flat, Communicator& comm, int zero_stage, Tensor reduced, int64_t bucket_bytes,
                  bool overlap);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The micro-batch protocol: begin_step(); then per micro-batch
  // before_backward(last), backward, after_backward(); then finish().
  void begin_step();
  void before_backward(bool last);
  void after_backward();
  void finish();  // waits for every reduction: `reduced` is final
  CommStats take_stats();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t held_bytes() const;  // stage 2's receive shard and staging buckets

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    int64_t begin = 0, end = 0;   // flat range, whole parameters (and their padding)
    int64_t slots = 0, ready = 0; // parameters in it; of which final in this backward
    bool started = false;
    std::vector<int64_t> counts;  // elements each rank receives
    int64_t recv_begin = 0;       // where this rank's part lands in `reduced`
  };
  struct InFlight {
    size_t bucket;
    std::unique_ptr<PendingCollective> work;
    Clock::time_point start, end;
    int staging = -1;  // the staging buffer it uses (stage 2, bf16)
    bool done = false;
  };

  void on_leaf_ready(const TensorImpl& leaf);
  void start(size_t b);
  void poll();
  void complete(InFlight& f);
  void wait_all();
  int acquire_staging();

  FlatParameters& flat_;
  Communicator& comm_;
  int stage_;
  bool overlap_, reducing_ = false;
  bool each_micro_batch_ = false;  // reduce every micro-batch (no whole-buffer f32 accumulator)
  Tensor reduced_, incoming_;  // stage 2 receives into incoming_, then adds into reduced_
  std::vector<Tensor> staging_;
  std::vector<bool> staging_busy_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<size_t>> buckets_of_slot_;
  std::vector<char> slot_ready_;
  std::unordered_map<const TensorImpl*, size_t> slot_of_leaf_;
  std::vector<InFlight> in_flight_;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> intervals_;  // of this step's reductions
  std::vector<std::pair<Clock::time_point, Clock::time_point>> backward_periods_;  // the reducing backwards
  CommStats stats_;
};

}  // namespace lory::train
