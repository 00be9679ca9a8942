// zero_optimizer.h — the optimizer step of one rank in a data-parallel job,
// with the optimizer state sharded the ZeRO way (Rajbhandari et al. 2020).
//
// Every rank holds the whole model in the compute dtype. What else a rank
// keeps, per train.zero (Ψ = flat.size(), S = Ψ / N for N ranks):
//
//   stage   f32 master weights   Adam m, v    reduced gradient
//   0       Ψ (bf16; f32: none)  2 Ψ          Ψ (all-gathered)
//   1       S                    2 S          S
//   2       S                    2 S          S, and no Ψ-sized f32 accumulator
// (bf16 compute sums its micro-batches in an f32 accumulator of Ψ; stage 1
// does without it when a step has one micro-batch, as at scale: 64 ranks x
// 4 sequences is the paper's whole batch.)
//
// One step, as the trainer drives it:
//   begin_step()                                   gradients to zero
//   per micro-batch: before_backward(last), loss.backward(), after_backward()
//                                                  (gradient_reducer.h: bucketed reduce-scatter
//                                                   overlapping backward)
//   reduce_and_norm()    this rank's shard of the summed gradient is final; the
//                        global L2 norm: each rank's f64 sum of squares of its
//                        shard, all-gathered and added in rank order, so every
//                        rank gets the same bits
//   step(lr, clip)       AdamW (the fused kernel, train/adamw.h) on this rank's
//                        range; stage 1/2 then all-gather the updated weights
//                        (bf16 or f32) so every rank holds the whole model again
// Stage 0 all-gathers the reduced gradient instead and every rank runs the
// whole update (what DDP does); its all-reduce is the same reduce-scatter
// plus an all-gather, so stages 0, 1 and 2 compute the same bits (2: to
// rounding, with several micro-batches; gradient_reducer.h says why).
//
// With one rank there is no communication at all: this is the single-process
// step of before (flat buffers, AdamW over all of them).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "nn/module.h"
#include "train/adamw.h"
#include "train/communicator.h"
#include "train/flat_parameters.h"
#include "train/gradient_reducer.h"

namespace lory::train {

struct ZeroOptions {
  std::optional<Device> device;  // where the flat buffers and the state live (default: the model's device)
  int stage = 1;
  int64_t bucket_bytes = int64_t{25} << 20;
  bool overlap = true;
  int64_t accumulation = 1;  // micro-batches per step: with 1, stage 1 needs no f32 accumulator
};

class ZeroOptimizer {
 public:
  // Makes `model`'s parameters views of new flat buffers (cut for
  // comm.world()) and builds this rank's optimizer state.
  ZeroOptimizer(nn::Module& model, DType compute_dtype, Communicator& comm, ZeroOptions zero, AdamWOptions adam);

  FlatParameters& flat() { return *flat_; }
  const FlatParameters& flat() const { return *flat_; }
  AdamW& adam() { return *adam_; }
  const AdamW& adam() const { return *adam_; }
  Communicator& comm() { return comm_; }
  int stage() const { return zero_.stage; }
  // The part of the flat space this rank updates: all of it (one rank, or
  // stage 0) or its shard. flat().master and adam()'s moments cover it.
  FlatRange range() const { return adam_->range; }

  void begin_step();
  void before_backward(bool last);
  void after_backward();
  double reduce_and_norm();
  // After a non-finite norm: the first parameter whose summed gradient holds
  // a NaN/Inf (the same name on every rank).
  std::string first_non_finite_grad();
  StepReport step(double lr, double max_norm, double norm);
  // After step(): the first parameter the update made NaN/Inf ("" if none;
  // the same on every rank). Checks a sum of squares on the device; only a
  // bad value brings the weights to the host, to name the parameter.
  std::string first_non_finite_param();

  // The whole f32 master [Ψ] on every rank (gathered when sharded): for
  // upcycling and checks. Costs 4 Ψ bytes for as long as it is kept.
  Tensor gather_master();
  // The whole Adam moments [Ψ], likewise (upcycling a dense model).
  std::pair<Tensor, Tensor> gather_moments();

  CommStats take_stats();  // this step's communication
  int64_t buckets() const { return reducer_ ? reducer_->bucket_count() : 0; }
  // Bytes of the reduced-gradient shard and the reducer's buffers (several ranks).
  int64_t reducer_bytes() const {
    return reducer_ ? static_cast<int64_t>(reduced_.nbytes()) + reducer_->held_bytes() : 0;
  }

 private:
  Tensor gather(const Tensor& part);  // [range] -> [Ψ]
  std::string agree_first_bad_slot(const Tensor& values, int64_t begin);

  Communicator& comm_;
  ZeroOptions zero_;
  std::unique_ptr<FlatParameters> flat_;
  std::unique_ptr<AdamW> adam_;
  Tensor reduced_;  // several ranks: f32 [S], this rank's shard of the summed gradient
  std::unique_ptr<GradientReducer> reducer_;
  CommStats stats_;
};

// Σ x² of an f32 buffer in f64 (fixed order; on x's device), copied to the host.
double sum_of_squares(const Tensor& x);

}  // namespace lory::train
