// lory_embed — document embeddings from a checkpoint of our own model, for
// similarity-based batching (lory_batch --embeddings): the mean of the final
// hidden states over each document's first tokens, as the paper embeds
// documents with a pretrained encoder (Contriever, mean-pooled).
//
//   lory_embed --ckpt runs/dense-warmup --shards data/shards/train-00000.bin --out data/embeddings.npy
#include <cstdio>
#include <exception>
#include <memory>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "io/npy.h"
#include "tensor/ops.h"
#include "tools/cli.h"
#include "corpus/similarity_batching.h"

using namespace lory;

int main(int argc, char** argv) {
  tools::App app("lory_embed", "Embeds every document of token shards with a checkpoint (mean final hidden state).");
  std::string ckpt, shards, out;
  int64_t max_tokens_arg = 512;
  app.add_option("--ckpt", ckpt, "a model directory")->type_name("DIR")->required();
  app.add_option("--shards", shards, "token shards (their documents, in order, are the rows)")
      ->type_name("A.bin,B.bin")
      ->required();
  app.add_option("--out", out, "the embeddings [documents, hidden_size] as f32")->type_name("E.npy")->required();
  app.add_option("--max-tokens", max_tokens_arg, "tokens of each document to read (capped at max_position_embeddings)")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    auto model = nn::load_pretrained(ckpt);
    model->eval();
    const auto readers = corpus::open_shards(shards, model->config.vocab_size);
    corpus::DocumentSet docs(corpus::pointers(readers));
    const int64_t max_tokens = std::min<int64_t>(max_tokens_arg, model->config.max_position_embeddings);
    const int64_t d = model->config.hidden_size;
    Tensor embeddings = zeros({docs.size(), d});
    NoGradGuard no_grad;
    for (int64_t i = 0; i < docs.size(); ++i) {
      std::vector<int32_t> t = docs.tokens(i);
      if (static_cast<int64_t>(t.size()) > max_tokens) t.resize(static_cast<size_t>(max_tokens));
      if (t.empty()) continue;
      const Tensor ids =
          from_vector(std::vector<int64_t>(t.begin(), t.end()), {1, static_cast<int64_t>(t.size())}, {DType::i64});
      embeddings.select(0, i).copy_(mean(model->hidden_states(ids, {nn::TrainingRouting::causal_segment}), {0, 1}));
      if ((i + 1) % 1000 == 0)
        std::fprintf(stderr, "  %lld / %lld documents\n", static_cast<long long>(i + 1),
                     static_cast<long long>(docs.size()));
    }
    io::write_npy(out, embeddings);
    std::printf("wrote %s: [%lld, %lld] f32\n", out.c_str(), static_cast<long long>(docs.size()),
                static_cast<long long>(d));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
