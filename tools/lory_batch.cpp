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
  tools::App app("lory_batch", "Orders documents by similarity (or at random) and packs them into training instances.");
  std::string shards, mode = "similarity", out, report_path, index = "auto", embeddings_path;
  int64_t seq_len = 4096, k = 10, chain_cap = 0, dims = 256, eos_id = 2, seed = 0;
  app.add_option("--shards", shards, "token shards (lory_tokenize encode), comma-separated")
      ->type_name("A.bin,B.bin")
      ->required();
  app.add_option("--mode", mode, "document order")->type_name("MODE")->check(CLI::IsMember({"similarity", "random"}));
  app.add_option("--seq-len", seq_len, "context length; instances hold L + 1 tokens")
      ->type_name("L")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", out, "the instances file to write")->type_name("FILE")->required();
  app.add_option("--report", report_path, "write the report as JSON here too")->type_name("FILE");
  app.add_option("--k", k, "neighbours per document")->type_name("K")->check(CLI::PositiveNumber);
  app.add_option("--index", index, "FAISS index (auto: exact up to 50,000 documents)")
      ->type_name("INDEX")
      ->check(CLI::IsMember({"auto", "exact", "ivf"}));
  app.add_option("--chain-cap", chain_cap, "longest chain before a jump (0: none; ICP uses 21)")->type_name("N");
  app.add_option("--dims", dims, "embedding dimensions")->type_name("D")->check(CLI::PositiveNumber);
  app.add_option("--embeddings", embeddings_path, "document embeddings computed elsewhere, [documents, dims] f32")
      ->type_name("E.npy");
  app.add_option("--eos-id", eos_id, "token between documents")->type_name("ID");
  app.add_option("--seed", seed, "seed of the instance shuffle and of the random order")->type_name("S");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  try {
    const auto readers = open_shards(shards);
    DocumentSet docs(pointers(readers));
    const auto clock = [] { return std::chrono::steady_clock::now(); };
    const auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    auto t0 = clock();

    Embeddings e;
    if (!embeddings_path.empty()) {
      const Tensor t = io::read_npy(embeddings_path).to(DType::f32).contiguous();
      LORY_CHECK(t.dim() == 2 && t.size(0) == docs.size(), embeddings_path, ": expected [", docs.size(),
                 ", dims] embeddings for the shards' documents, got ", t.describe());
      e.n = t.size(0), e.dims = t.size(1);
      e.data = t.to_vector<float>();
      normalize_rows(e);
    } else {
      EmbedOptions eo;
      eo.dims = dims;
      e = embed_documents(docs, eo);
    }
    auto t1 = clock();
    const Neighbours nn = nearest_neighbours(e, k, parse_knn_index(index));
    auto t2 = clock();
    const Traversal sim = similarity_order(docs, nn, {chain_cap, 0.85});
    const std::vector<int64_t> rnd = random_order(docs.size(), static_cast<uint64_t>(seed));
    auto t3 = clock();
    const PackOptions po{seq_len + 1, static_cast<int32_t>(eos_id), static_cast<uint64_t>(seed)};
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
    if (!report_path.empty()) {
      std::ofstream(report_path) << report;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_batch: %s\n", e.what());
    return 1;
  }
  return 0;
}
