// lory_forward — one forward (and optionally backward) pass of a checkpoint
// on given token ids: how an external reference (a PyTorch implementation,
// another engine) checks our numerics.
//
//   lory_forward --ckpt DIR --tokens ids.npy [--routing causal_segment|prefix|prompt]
//                [--logits logits.npy] [--grads grads.safetensors] [--dtype f32|f64]
//
// ids.npy: an integer array [B, L+1]. The model reads ids[:, :L] and is scored
// on ids[:, 1:]: it prints the mean next-token cross-entropy over all B*L
// targets (the same number LoryLM::loss returns), and can write
//   logits.npy          the f32 logits [B, L, V]
//   grads.safetensors   d(loss)/d(parameter) for every parameter, under the
//                       parameter's name, in the compute dtype
// Weights are converted to --dtype (f32 by default) after loading.
#include <cstdio>
#include <exception>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "io/npy.h"
#include "tensor/ops.h"
#include "tools/cli.h"

using namespace lory;
using namespace lory::nn;

int main(int argc, char** argv) {
  tools::App app("lory_forward", "Runs a checkpoint on [B, L+1] token ids; prints the loss, writes logits and grads.");
  std::string ckpt, tokens_path, routing_arg, logits_path, grads_path, dtype = "f32";
  app.add_option("--ckpt", ckpt, "a model directory (config.json + model.safetensors)")->type_name("DIR")->required();
  app.add_option("--tokens", tokens_path, "integer token ids [B, L+1]")->type_name("IDS.npy")->required();
  app.add_option("--routing", routing_arg, "causal_segment, prefix or prompt (default: the config's)")
      ->type_name("MODE");
  app.add_option("--logits", logits_path, "write the logits [B, L, V] as f32")->type_name("OUT.npy");
  app.add_option("--grads", grads_path, "write the gradient of the loss for every parameter")
      ->type_name("OUT.safetensors");
  app.add_option("--dtype", dtype, "compute dtype")->type_name("f32|f64");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    auto model = load_pretrained(ckpt);
    model->to(dtype_from_name(dtype));
    ForwardOptions options{model->config.routing};
    if (!routing_arg.empty()) options.routing = parse_forward_routing(routing_arg, "--routing");
    const Tensor tokens = io::read_npy(tokens_path);
    LORY_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2 && !is_floating(tokens.dtype()), tokens_path,
               ": expected integer token ids [B, L+1] with L >= 1, got ", tokens.describe());
    const int64_t B = tokens.size(0), L = tokens.size(1) - 1, V = model->config.vocab_size;
    const Tensor ids = tokens.to(DType::i64);
    LORY_CHECK(amin(ids).item() >= 0 && amax(ids).item() < static_cast<double>(V), tokens_path,
               ": token ids must lie in [0, ", V, "), found ", amin(ids).item(), " to ", amax(ids).item());

    const bool want_grads = !grads_path.empty();
    std::unique_ptr<NoGradGuard> no_grad;
    if (!want_grads) no_grad = std::make_unique<NoGradGuard>();
    const Tensor logits = model->forward(ids.narrow(1, 0, L), options);  // [B, L, V]
    const Tensor loss = cross_entropy(logits.reshape({B * L, V}), ids.narrow(1, 1, L).reshape({B * L}));
    std::printf("loss %.9g  (mean next-token cross-entropy over %lld x %lld targets, routing %s)\n", loss.item(),
                static_cast<long long>(B), static_cast<long long>(L), routing_name(options.routing));
    if (!logits_path.empty()) {
      io::write_npy(logits_path, logits.detach().to(DType::f32));
      std::printf("wrote %s: logits [%lld, %lld, %lld] f32\n", logits_path.c_str(), static_cast<long long>(B),
                  static_cast<long long>(L), static_cast<long long>(V));
    }
    if (want_grads) {
      loss.backward();
      io::NamedTensors grads;
      for (auto& [name, slot] : model->named_parameters())
        grads.emplace_back(name, slot->grad().defined() ? slot->grad() : zeros_like(*slot));
      io::save_safetensors(grads_path, grads);
      std::printf("wrote %s: %zu gradients\n", grads_path.c_str(), grads.size());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_forward: %s\n", e.what());
    return 1;
  }
  return 0;
}
