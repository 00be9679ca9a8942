// memory_plan.h — how many bytes one rank needs to train a model: the weights,
// the gradients, the f32 master weights and Adam moments (each as the
// data-parallel engine lays them out for a ZeRO stage), and an estimate of
// the activations of one micro-batch. `lory_info --ranks N --zero S
// --micro-batch B --seq L` prints it; tests/test_memory_plan.cpp checks the
// state against what FlatParameters and AdamW allocate, and the activations
// against a measured forward and backward.
//
// ---- parameter state (exact, bytes per rank) ----
// Ψ is the flat parameter size the engine allocates: every parameter's numel
// rounded up to FlatParameters::kAlign (16) elements, summed, then rounded up
// to a multiple of 16·world so that each rank owns one contiguous shard of
// S = Ψ / world elements. c is the compute dtype's size (bf16 2, f32 4).
//
//   weights      c·Ψ on every rank, every stage (the model's parameters are
//                views of one flat buffer; no stage here shards them)
//   gradients    c·Ψ, autograd's flat gradient buffer, plus
//                  bf16, stage 0/1: an f32 accumulator, 4Ψ (f32 compute
//                                   accumulates in the autograd buffer itself)
//                  bf16, stage 2:   f32 staging for 2 buckets in flight,
//                                   min(2·bucket_bytes, 4Ψ)
//                  world > 1:       the reduced gradient shard, f32, 4S
//   master       f32 weights: bf16 compute 4Ψ (stage 0) or 4S (stages 1, 2);
//                f32 compute 0 (the weights are the master)
//   moments      Adam m and v, f32: 8Ψ (stage 0) or 8S (stages 1, 2)
//
// For world 1 these are exactly FlatParameters + AdamW's buffers (params,
// grads, master, master_grads, exp_avg, exp_avg_sq).
//
// ---- activations (an estimate, from what the forward keeps) ----
// The bytes the graph holds at the end of one micro-batch's forward, and the
// peak over its forward and backward, above everything that was allocated
// before (weights, gradients, optimizer state). Derived from what each op in
// tensor/ops/ saves for its backward (train/memory_plan.cpp lists them per
// op); the sizes are tensor bytes, as a CUDA allocator would be asked for
// them (its rounding is part of the headroom lory_info adds). Not counted:
// kernel scratch (cuBLAS workspace, Eigen's GEMM blocks), tensors smaller
// than [B, N, E] or [d] (loss scalars, norm-weight gradients), the data
// loader's token batch, and the CUDA context.
#pragma once

#include <cstdint>
#include <string>

#include "nn/config.h"
#include "tensor/dtype.h"

namespace lory::train {

struct MemoryPlanInput {
  int64_t world = 1;                         // data-parallel ranks
  int zero = 1;                              // ZeRO stage: 0, 1 or 2
  int64_t micro_batch = 1;                   // B, sequences per micro-batch
  int64_t seq_len = 4096;                    // L, tokens per sequence
  DType compute = DType::bf16;               // bf16 or f32 (train.precision)
  bool recompute_blocks = false;             // train.recompute = "blocks"
  nn::MergeKernel merge_kernel = nn::MergeKernel::fused;  // train.merge_kernel
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient bucket (stage 2 staging)
  int64_t accumulation = 1;                  // micro-batches per step on each rank
};

// The activation estimate, in bytes, with its parts.
struct ActivationEstimate {
  int64_t layer_input = 0;  // one [B, L, d] tensor: what a recomputed layer keeps
  int64_t layer_saved = 0;  // what one decoder layer's ops save, besides its input
  int64_t head_saved = 0;   // final norm, lm_head, cross-entropy, token copies
  int64_t saved = 0;        // live when the forward ends
  int64_t peak = 0;         // the most live at once, forward and backward
  std::string peak_at;      // the moment of the peak ("cross-entropy backward", ...)
};

struct MemoryPlan {
  int64_t flat_elements = 0;                                    // Ψ
  int64_t shard_elements = 0;                                   // S = Ψ / world
  int64_t weights = 0, gradients = 0, master = 0, moments = 0;  // bytes per rank
  ActivationEstimate activations;
  int64_t total() const { return weights + gradients + master + moments + activations.peak; }
};

// Ψ for `world` ranks: Σ round_up(numel, 16) over the model's parameters,
// rounded up to a multiple of 16·world. For world 1 it equals
// FlatParameters(model).size().
int64_t flat_parameter_elements(const nn::LoryConfig& model, int64_t world = 1);

// The activation estimate alone (the part of the plan that depends on B and L).
ActivationEstimate estimate_activations(const nn::LoryConfig& model, const MemoryPlanInput& in);

// The whole plan. Throws naming the field for a world < 1, a stage other
// than 0-2, B or L < 1, L over max_position_embeddings, or a compute dtype
// other than bf16/f32.
MemoryPlan plan_memory(const nn::LoryConfig& model, const MemoryPlanInput& in);

}  // namespace lory::train
