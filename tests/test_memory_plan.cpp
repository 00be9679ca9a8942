// The per-rank training memory plan (train/memory_plan.h): the parameter
// state byte for byte, by hand and against what FlatParameters and AdamW
// allocate; the activation estimate against a forward and backward on the
// CPU, measured with the host memory counters (tensor/memory_stats.h).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "nn/lory_lm.h"
#include "tensor/memory_stats.h"
#include "tensor/ops.h"
#include "train/adamw.h"
#include "train/flat_parameters.h"
#include "train/memory_plan.h"

using namespace lory;
using namespace lory::train;

namespace {

// A one-layer Lory model whose parameter sizes are not all multiples of 16,
// so the per-parameter padding shows.
nn::LoryConfig odd_config() {
  nn::LoryConfig c = nn::preset("tiny");
  c.vocab_size = 50;
  c.hidden_size = 20;
  c.num_attention_heads = c.num_key_value_heads = 2;
  c.intermediate_size = 36;
  c.num_hidden_layers = 1;
  c.num_experts = 3;
  return c;
}

// Big enough that activations, not parameters, dominate the measured peak.
nn::LoryConfig measured_config(int64_t experts) {
  nn::LoryConfig c = nn::preset("tiny");
  c.hidden_size = 64;
  c.num_attention_heads = c.num_key_value_heads = 4;
  c.intermediate_size = 128;
  c.vocab_size = 256;
  c.num_hidden_layers = 3;
  c.num_experts = experts;
  c.segment_length = 16;
  c.max_position_embeddings = 128;
  return c;
}

struct Measured {
  int64_t saved = 0;  // live after model.loss, above what was live before
  int64_t peak = 0;   // the peak over loss and backward, above the same
};

// One micro-batch as the trainer runs it: gradients are views of the flat
// buffer (allocated before), so the measurement holds activations only.
Measured measure(const nn::LoryConfig& config, const MemoryPlanInput& in) {
  manual_seed(3);
  nn::LoryLM model(config);
  model.recompute_activations = in.recompute_blocks;
  model.set_merge_kernel(in.merge_kernel);
  FlatParameters flat(model, in.compute);
  // Token ids uniform in [0, vocab): [B, L + 1].
  const Tensor tokens =
      (rand({in.micro_batch, in.seq_len + 1}) * static_cast<double>(config.vocab_size)).to(DType::i64);
  const int64_t before = host_memory_stats().live_bytes;
  reset_host_memory_peak();
  Measured m;
  {
    const Tensor loss = model.loss(tokens);
    m.saved = host_memory_stats().live_bytes - before;
    loss.backward();
  }
  m.peak = host_memory_stats().peak_bytes - before;
  return m;
}

}  // namespace

TEST_CASE("memory plan: exact bytes per rank in each ZeRO stage, computed by hand") {
  // Parameters of odd_config(), each rounded up to 16 elements:
  //   embed_tokens 50*20 = 1000 -> 1008   input_layernorm 20 -> 32   q, k, v, o 4 * 400 = 1600
  //   post_attention_layernorm 20 -> 32   experts 3 * (3*36*20 = 2160) = 6480   router 3*20 = 60 -> 64
  //   norm 20 -> 32   lm_head 1000 -> 1008                          sum: 10256 = 641 * 16
  const nn::LoryConfig c = odd_config();
  CHECK(flat_parameter_elements(c, 1) == 10256);
  CHECK(flat_parameter_elements(c, 3) == 10272);  // 214 * 48
  CHECK(flat_parameter_elements(c, 4) == 10304);  // 161 * 64

  MemoryPlanInput in;
  in.world = 4;  // Ψ = 10304, S = 2576
  in.micro_batch = 1;
  in.seq_len = 8;
  in.bucket_bytes = 1000;
  struct Case {
    DType compute;
    int zero;
    int64_t accumulation, weights, gradients, master, moments;
  };
  const Case cases[] = {
      // bf16, stage 0: grads 2Ψ + f32 accumulator 4Ψ + reduced shard 4S; master 4Ψ; moments 8Ψ
      {DType::bf16, 0, 1, 2 * 10304, 2 * 10304 + 4 * 10304 + 4 * 2576, 4 * 10304, 8 * 10304},
      // bf16, stage 1, accumulating 2 micro-batches: master and moments sharded
      {DType::bf16, 1, 2, 20608, 72128, 4 * 2576, 8 * 2576},
      // bf16, stage 1, one micro-batch a step: nothing to accumulate; two staging buckets of 1000 bytes (240
      // elements: whole 16-element blocks) and the shard each reduction lands in
      {DType::bf16, 1, 1, 20608, 20608 + 2 * 960 + 2 * 4 * 2576, 4 * 2576, 8 * 2576},
      // bf16, stage 2: the same, however many micro-batches
      {DType::bf16, 2, 4, 20608, 20608 + 2 * 960 + 2 * 4 * 2576, 10304, 20608},
      // f32, stage 1: no accumulator, no master (the weights are the master)
      {DType::f32, 1, 2, 4 * 10304, 4 * 10304 + 4 * 2576, 0, 8 * 2576},
      // f32, stage 2: f32 compute has nothing to stage (the reduced shard, and the one reductions land in)
      {DType::f32, 2, 1, 41216, 41216 + 2 * 4 * 2576, 0, 20608},
  };
  for (const Case& k : cases) {
    INFO(std::string(dtype_name(k.compute)) << " ZeRO-" << k.zero << ", accumulation " << k.accumulation);
    in.compute = k.compute;
    in.zero = k.zero;
    in.accumulation = k.accumulation;
    const MemoryPlan p = plan_memory(c, in);
    CHECK(p.flat_elements == 10304);
    CHECK(p.shard_elements == 2576);
    CHECK(p.weights == k.weights);
    CHECK(p.gradients == k.gradients);
    CHECK(p.master == k.master);
    CHECK(p.moments == k.moments);
    CHECK(p.total() == k.weights + k.gradients + k.master + k.moments + p.activations.peak);
  }
  // Stage-2 staging is capped at two copies of the whole flat buffer.
  in.compute = DType::bf16;
  in.zero = 2;
  in.bucket_bytes = int64_t{25} << 20;
  CHECK(plan_memory(c, in).gradients == 20608 + 2 * 4 * 10304 + 2 * 4 * 2576);
  // One rank: no reduced shard.
  in.world = 1;
  in.zero = 0;
  CHECK(plan_memory(c, in).gradients == 2 * 10256 + 4 * 10256);
}

TEST_CASE("memory plan: one rank's state is what FlatParameters and AdamW allocate") {
  // Dense, Lory, and Lory with grouped-query attention and tied embeddings.
  for (const auto& [experts, gqa_tied] : {std::pair{0, false}, std::pair{3, false}, std::pair{3, true}}) {
    for (DType compute : {DType::f32, DType::bf16}) {
      INFO("experts " << experts << (gqa_tied ? ", GQA, tied" : "") << ", " << std::string(dtype_name(compute)));
      nn::LoryConfig c = odd_config();
      c.num_experts = experts;
      if (gqa_tied) c.num_key_value_heads = 1, c.tie_word_embeddings = true;
      manual_seed(1);
      nn::LoryLM model(c);
      int64_t original = 0;  // the f32 parameters FlatParameters replaces (and frees)
      for (const auto& [name, p] : model.named_parameters()) original += p->nbytes();
      const int64_t live_before = host_memory_stats().live_bytes;
      FlatParameters flat(model, compute);
      AdamW adam(flat, {});
      const int64_t allocated = host_memory_stats().live_bytes - live_before + original;

      MemoryPlanInput in;
      in.world = 1;
      in.zero = 0;
      in.compute = compute;
      in.micro_batch = 1;
      in.seq_len = 8;
      const MemoryPlan plan = plan_memory(c, in);
      CHECK(plan.flat_elements == flat.size());
      CHECK(plan.weights == flat.params.nbytes());
      const bool separate = flat.has_separate_master();
      CHECK(separate == (compute == DType::bf16));
      // f32 compute: master == params and master_grads == grads, one buffer each.
      CHECK(plan.gradients == flat.grads.nbytes() + (separate ? flat.master_grads.nbytes() : 0));
      CHECK(plan.master == (separate ? flat.master.nbytes() : 0));
      CHECK(plan.moments == adam.exp_avg.nbytes() + adam.exp_avg_sq.nbytes());
      // ... and nothing else: the counters saw exactly these buffers appear.
      CHECK(allocated == plan.weights + plan.gradients + plan.master + plan.moments);
      // ZeRO stages change nothing on one rank but stage 2's staging.
      in.zero = 1;
      CHECK(plan_memory(c, in).master + plan_memory(c, in).moments == plan.master + plan.moments);
    }
  }
}

TEST_CASE("memory plan: sharding over N ranks divides master weights and moments by N, not weights") {
  const nn::LoryConfig c = nn::preset("0.3b-32e");
  MemoryPlanInput in;
  in.world = 64;
  in.zero = 0;
  in.accumulation = 2;  // (with one micro-batch a step, stage 1 drops the accumulator too)
  const MemoryPlan unsharded = plan_memory(c, in);
  in.zero = 1;
  const MemoryPlan stage1 = plan_memory(c, in);
  in.zero = 2;
  const MemoryPlan stage2 = plan_memory(c, in);
  const double ratio = static_cast<double>(stage1.master + stage1.moments) / (unsharded.master + unsharded.moments);
  CHECK(ratio == doctest::Approx(1.0 / 64).epsilon(1e-9));
  CHECK(stage1.weights == unsharded.weights);
  CHECK(stage2.weights == unsharded.weights);
  CHECK(stage1.gradients == unsharded.gradients);
  // Stage 2 drops the f32 accumulator (4Ψ) for two 25 MiB buckets of staging
  // and the shard reductions land in (4S).
  CHECK(stage1.gradients - stage2.gradients ==
        4 * stage1.flat_elements - 2 * (int64_t{25} << 20) - 4 * stage1.shard_elements);
  CHECK(stage2.activations.peak == stage1.activations.peak);
}

TEST_CASE("memory plan: the activation estimate matches a CPU forward and backward (saved 2%, peak 5%)") {
  struct Case {
    const char* what;
    int64_t experts, B, L;
    DType compute;
    bool blocks, gemm;  // recompute blocks; the gemm merge kernel (else fused)
    bool gqa = false;   // 1 key/value head for the 4 query heads, and tied embeddings
  };
  const Case cases[] = {
      {"dense f32", 0, 2, 64, DType::f32, false, false},
      {"dense bf16, recompute blocks", 0, 2, 64, DType::bf16, true, false},
      {"Lory bf16", 4, 2, 64, DType::bf16, false, false},
      {"Lory bf16, recompute blocks", 4, 2, 64, DType::bf16, true, false},
      {"Lory f32, gemm merge (W̄ stored), padded last segment, B = 1", 4, 1, 120, DType::f32, false, true},
      {"Lory f32, fused merge, padded last segment, B = 1", 4, 1, 120, DType::f32, false, false},
      {"Lory f32, gemm merge and recompute blocks, padded", 4, 2, 120, DType::f32, true, true},
      {"Lory f32, grouped-query attention, tied embeddings", 4, 2, 64, DType::f32, false, false, true},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    nn::LoryConfig c = measured_config(k.experts);
    if (k.gqa) c.num_key_value_heads = 1, c.tie_word_embeddings = true;
    MemoryPlanInput in;
    in.micro_batch = k.B;
    in.seq_len = k.L;
    in.compute = k.compute;
    in.recompute_blocks = k.blocks;
    in.merge_kernel = k.gemm ? nn::MergeKernel::gemm : nn::MergeKernel::fused;
    const ActivationEstimate estimate = estimate_activations(c, in);
    const Measured measured = measure(c, in);
    INFO("saved: estimate " << estimate.saved << ", measured " << measured.saved);
    INFO("peak: estimate " << estimate.peak << ", measured " << measured.peak << " (at the " << estimate.peak_at
                           << ")");
    CHECK(std::abs(static_cast<double>(estimate.saved) / measured.saved - 1) < 0.02);
    CHECK(std::abs(static_cast<double>(estimate.peak) / measured.peak - 1) < 0.05);
    CHECK(estimate.peak >= estimate.saved);
  }
}

TEST_CASE("memory plan: recomputing blocks keeps one layer input per layer instead of the whole layer") {
  const nn::LoryConfig c = nn::preset("1.5b-32e");
  MemoryPlanInput in;
  in.micro_batch = 4;
  in.seq_len = 4096;
  const ActivationEstimate none = estimate_activations(c, in);
  in.recompute_blocks = true;
  const ActivationEstimate blocks = estimate_activations(c, in);
  const int64_t tok_d = 2 * 4 * 4096 * 1536;  // one [B, L, d] bf16 tensor
  CHECK(blocks.layer_input == tok_d);
  // Without recomputation each layer keeps its saved set; with it, its input
  // and its [B, N, E] routing weights (2 * 4 * 16 * 32 bytes).
  CHECK(none.saved - blocks.saved == 48 * (none.layer_saved - 2 * 4 * 16 * 32));
  CHECK(blocks.peak < none.peak / 8);
}

TEST_CASE("memory plan: impossible inputs are refused naming the field") {
  const nn::LoryConfig c = nn::preset("tiny");
  MemoryPlanInput in;
  in.seq_len = 16;
  in.zero = 3;
  CHECK_THROWS_WITH_AS(plan_memory(c, in), doctest::Contains("ZeRO stage must be 0, 1 or 2, got 3"), Error);
  in.zero = 1;
  in.world = 0;
  CHECK_THROWS_WITH_AS(plan_memory(c, in), doctest::Contains("world (ranks) must be >= 1"), Error);
  in.world = 2;
  in.seq_len = 65;
  CHECK_THROWS_WITH_AS(plan_memory(c, in), doctest::Contains("seq_len must be in [1, 64]"), Error);
  in.seq_len = 16;
  in.compute = DType::f16;
  CHECK_THROWS_WITH_AS(plan_memory(c, in), doctest::Contains("bf16 or f32"), Error);
}
