// lory_batch — builds training instances from token shards by similarity
// (paper §3.2) or at random (the baseline), and reports how similar
// neighbouring documents and how pure instances are under both orders.
//
//   lory_batch --shards data/shards/train-00000.bin --mode similarity --seq-len 4096
//              --out data/instances/train-sim.bin --report data/instances/report.json
//
// Stages (each timed in the report): embed (TF-IDF of hashed token unigrams
// and bigrams, or --embeddings E.npy computed elsewhere, [documents, dims]),
// kNN (FAISS; --index auto|exact|ivf), traverse (greedy, min-degree starts,
// --chain-cap, near-duplicate drop), pack (EOS between documents, instances
// of seq-len + 1 tokens, shuffled with --seed) and write.
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <memory>

#include "io/npy.h"
#include "tensor/ops.h"
#include "tools/cli.h"
#include "corpus/similarity_batching.h"

using namespace lory;
using namespace lory::corpus;

int main(int argc, char** argv) {
  tools::Cli cli("lory_batch", "Orders documents by similarity (or at random) and packs them into training instances.");
  cli.option("shards", "A.bin,B.bin", "token shards (lory_tokenize encode)");
  cli.option("mode", "similarity|random", "document order", "similarity");
  cli.option("seq-len", "L", "context length; instances hold L + 1 tokens", "4096");
  cli.option("out", "FILE", "the instances file to write");
  cli.option("report", "FILE", "write the report as JSON here too");
  cli.option("k", "K", "neighbours per document", "10");
  cli.option("index", "auto|exact|ivf", "FAISS index (auto: exact up to 50,000 documents)", "auto");
  cli.option("chain-cap", "N", "longest chain before a jump (0: none; ICP uses 21)", "0");
  cli.option("dims", "D", "embedding dimensions", "256");
  cli.option("embeddings", "E.npy", "document embeddings computed elsewhere, [documents, dims] f32");
  cli.option("eos-id", "ID", "token between documents", "2");
  cli.option("seed", "S", "seed of the instance shuffle and of the random order", "0");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string mode = cli.get("mode");
  if (mode != "similarity" && mode != "random") cli.fatal("--mode must be similarity or random, got '" + mode + "'");
  const std::string out = cli.require("out");
  try {
    const auto readers = open_shards(cli.require("shards"));
    DocumentSet docs(pointers(readers));
    const auto clock = [] { return std::chrono::steady_clock::now(); };
    const auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    auto t0 = clock();

    Embeddings e;
    if (cli.has("embeddings")) {
      const Tensor t = io::read_npy(cli.get("embeddings")).to(DType::f32).contiguous();
      LORY_CHECK(t.dim() == 2 && t.size(0) == docs.size(), cli.get("embeddings"), ": expected [", docs.size(),
                 ", dims] embeddings for the shards' documents, got ", t.describe());
      e.n = t.size(0), e.dims = t.size(1);
      e.data = t.to_vector<float>();
      normalize_rows(e);
    } else {
      EmbedOptions eo;
      eo.dims = cli.get_int("dims");
      e = embed_documents(docs, eo);
    }
    auto t1 = clock();
    const Neighbours nn = nearest_neighbours(e, cli.get_int("k"), parse_knn_index(cli.get("index")));
    auto t2 = clock();
    const Traversal sim = similarity_order(docs, nn, {cli.get_int("chain-cap"), 0.85});
    const std::vector<int64_t> rnd = random_order(docs.size(), static_cast<uint64_t>(cli.get_int("seed")));
    auto t3 = clock();
    const PackOptions po{cli.get_int("seq-len") + 1, static_cast<int32_t>(cli.get_int("eos-id")),
                         static_cast<uint64_t>(cli.get_int("seed"))};
    const Instances i_sim = pack_instances(docs, sim.order, po), i_rnd = pack_instances(docs, rnd, po);
    auto t4 = clock();
    const Instances& chosen = mode == "similarity" ? i_sim : i_rnd;
    write_instances(out, chosen, docs.vocab_size());
    auto t5 = clock();

    const double s_sim = adjacent_similarity(e, sim.order), s_rnd = adjacent_similarity(e, rnd);
    char report[2048];
    std::snprintf(
        report, sizeof report,
        "{\n  \"documents\": %lld,\n  \"mode\": \"%s\",\n  \"instances\": %lld,\n  \"instance_tokens\": %lld,\n"
        "  \"adjacent_cosine\": {\"similarity\": %.4f, \"random\": %.4f},\n"
        "  \"instance_purity\": {\"similarity\": %.4f, \"random\": %.4f},\n"
        "  \"traversal\": {\"chains\": %lld, \"jumps\": %lld, \"dropped_duplicates\": %lld},\n"
        "  \"seconds\": {\"embed\": %.2f, \"knn\": %.2f, \"traverse\": %.2f, \"pack\": %.2f, \"write\": %.2f}\n}\n",
        static_cast<long long>(docs.size()), mode.c_str(), static_cast<long long>(chosen.count()),
        static_cast<long long>(po.instance_tokens), s_sim, s_rnd, mean_purity(i_sim), mean_purity(i_rnd),
        static_cast<long long>(sim.chains), static_cast<long long>(sim.jumps),
        static_cast<long long>(sim.dropped_duplicates), secs(t0, t1), secs(t1, t2), secs(t2, t3), secs(t3, t4),
        secs(t4, t5));
    std::printf("%s", report);
    std::printf("wrote %s: %lld instances of %lld tokens (%s order)\n", out.c_str(),
                static_cast<long long>(chosen.count()), static_cast<long long>(po.instance_tokens), mode.c_str());
    if (cli.has("report")) {
      std::ofstream(cli.get("report")) << report;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_batch: %s\n", e.what());
    return 1;
  }
  return 0;
}
