// Similarity-based batching (corpus/similarity_batching.h) on a
// synthetic clustered corpus: documents of 6 topics, each topic drawing most
// tokens from its own slice of the vocabulary, stored in shuffled order.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "corpus/hash.h"
#include "corpus/similarity_batching.h"
#include "corpus/token_shard.h"

using namespace lory;
using namespace lory::corpus;

namespace {

// 600 documents, 6 topics ("t0".."t5"), lengths 60..220 tokens, vocab 1000:
// 80% of a document's tokens come from its topic's 100-token slice.
std::string clustered_shard(const std::string& name, int64_t docs = 600) {
  const auto path = (std::filesystem::temp_directory_path() / name).string();
  ShardWriter w(path, 1000);
  uint64_t s = 42;
  for (int64_t d = 0; d < docs; ++d) {
    const int topic = static_cast<int>((s = splitmix64(s)) % 6);
    const int64_t len = 60 + static_cast<int64_t>((s = splitmix64(s)) % 160);
    std::vector<int32_t> t;
    for (int64_t i = 0; i < len; ++i) {
      s = splitmix64(s);
      t.push_back((s % 10) < 8 ? 400 + topic * 100 + static_cast<int32_t>((s >> 8) % 100)
                               : 3 + static_cast<int32_t>((s >> 8) % 397));
    }
    w.add(t, "t" + std::to_string(topic));
  }
  w.close();
  return path;
}

}  // namespace

TEST_CASE("batching: the traversal visits every document exactly once, and neighbours are found by cosine") {
  ShardReader shard(clustered_shard("lory_batch_a.bin"));
  DocumentSet docs({&shard});
  const Embeddings e = embed_documents(docs);
  CHECK(e.n == 600);
  for (int64_t i = 0; i < e.n; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < e.dims; ++j) ss += e.row(i)[j] * e.row(i)[j];
    CHECK(ss == doctest::Approx(1.0).epsilon(1e-5));
  }
  const Neighbours nn = nearest_neighbours(e, 10, KnnIndex::exact);
  // Most neighbours share the topic; similarities are sorted and not self.
  int64_t same = 0;
  for (int64_t i = 0; i < nn.n; ++i) {
    for (int64_t j = 0; j < nn.k; ++j) {
      const int64_t id = nn.ids[i * nn.k + j];
      REQUIRE(id >= 0);
      CHECK(id != i);
      same += docs.domain(id) == docs.domain(i);
      if (j > 0) CHECK(nn.similarity[i * nn.k + j] <= nn.similarity[i * nn.k + j - 1] + 1e-6f);
    }
  }
  CHECK(same > 0.95 * nn.n * nn.k);
  // IVF finds nearly the same neighbours.
  const Neighbours ivf = nearest_neighbours(e, 10, KnnIndex::ivf, 8);
  int64_t agree = 0;
  for (int64_t i = 0; i < nn.n; ++i)
    for (int64_t j = 0; j < nn.k; ++j)
      agree += std::count(ivf.ids.begin() + i * 10, ivf.ids.begin() + i * 10 + 10, nn.ids[i * 10 + j]);
  CHECK(agree > 0.8 * nn.n * nn.k);

  for (int64_t cap : {int64_t{0}, int64_t{21}}) {
    const Traversal t = similarity_order(docs, nn, {cap, 1.0});
    std::vector<int64_t> sorted = t.order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted.size() == 600);
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    CHECK(sorted.front() == 0);
    CHECK(sorted.back() == 599);
    CHECK(t.chains == t.jumps + 1);
    if (cap) CHECK(t.chains >= 600 / 21);
  }
}

TEST_CASE("batching: similarity order beats random order on adjacent similarity and instance purity") {
  ShardReader shard(clustered_shard("lory_batch_b.bin"));
  DocumentSet docs({&shard});
  const Embeddings e = embed_documents(docs);
  const Traversal sim = similarity_order(docs, nearest_neighbours(e, 10), {});
  const std::vector<int64_t> rnd = random_order(docs.size(), 7);
  const double s_sim = adjacent_similarity(e, sim.order), s_rnd = adjacent_similarity(e, rnd);
  const PackOptions pack{256, 2, 3};
  const Instances i_sim = pack_instances(docs, sim.order, pack), i_rnd = pack_instances(docs, rnd, pack);
  MESSAGE("adjacent cosine: similarity ", s_sim, ", random ", s_rnd, "; purity: similarity ", mean_purity(i_sim),
          ", random ", mean_purity(i_rnd));
  CHECK(s_sim > 0.2);
  CHECK(s_sim > 4 * s_rnd);
  CHECK(mean_purity(i_sim) > mean_purity(i_rnd) + 0.2);
}

TEST_CASE("batching: instances have exactly the requested length, EOS between documents, and nothing lost") {
  ShardReader shard(clustered_shard("lory_batch_c.bin", 50));
  DocumentSet docs({&shard});
  const std::vector<int64_t> order = random_order(docs.size(), 1);
  int64_t total = 0;
  for (int64_t d = 0; d < docs.size(); ++d) total += docs.length(d) + 1;  // + EOS
  const Instances inst = pack_instances(docs, order, {100, 2, 9});
  CHECK(inst.count() == total / 100);
  CHECK(inst.dropped_tail_tokens == total % 100);
  CHECK(static_cast<int64_t>(inst.tokens.size()) == inst.count() * 100);
  CHECK(std::count(inst.tokens.begin(), inst.tokens.end(), 2) >= docs.size() - 2);
  // Unshuffled, the stream is the documents in order with EOS after each.
  std::vector<int32_t> stream;
  for (int64_t d : order) {
    const auto t = docs.tokens(d);
    stream.insert(stream.end(), t.begin(), t.end());
    stream.push_back(2);
  }
  std::multiset<std::vector<int32_t>> want, got;
  for (int64_t i = 0; i < inst.count(); ++i) {
    want.insert(std::vector<int32_t>(stream.begin() + i * 100, stream.begin() + (i + 1) * 100));
    got.insert(std::vector<int32_t>(inst.tokens.begin() + i * 100, inst.tokens.begin() + (i + 1) * 100));
  }
  CHECK(want == got);  // the same instances, shuffled
  // The shuffle depends on the seed only.
  CHECK(pack_instances(docs, order, {100, 2, 9}).tokens == inst.tokens);
  CHECK(pack_instances(docs, order, {100, 2, 10}).tokens != inst.tokens);
}
