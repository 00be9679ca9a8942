// similarity_batching.h — the paper's second technique (§3.2, App. C): build
// training instances from documents ordered so that neighbours are similar,
// so that consecutive segments share a topic and the router has something
// to specialise on (after In-Context Pretraining, Shi et al. 2024).
//
//   1. embed every document (embed_documents: TF-IDF of hashed token
//      unigrams and bigrams, signed-hashed to a dense unit vector; or any
//      embeddings a user brings as .npy)
//   2. k nearest neighbours by cosine (nearest_neighbours: FAISS, exact or IVF)
//   3. greedy traversal (similarity_order): start at an unvisited document of
//      minimum in-degree, always step to the most similar unvisited
//      neighbour, jump to a new start when stuck (or after a chain cap);
//      near-duplicates of the previous document are dropped on the way
//   4. concatenate in that order with EOS between documents, cut into
//      instances of a fixed length, shuffle the instances (pack_instances)
// random_order is the baseline (documents shuffled), behind the same
// interface, so the ablation is one flag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "corpus/token_shard.h"

namespace lory::corpus {

// Documents across shards, addressed by a global index.
class DocumentSet {
 public:
  explicit DocumentSet(const std::vector<const ShardReader*>& shards);
  int64_t size() const { return static_cast<int64_t>(shard_of_.size()); }
  int64_t length(int64_t doc) const;
  std::vector<int32_t> tokens(int64_t doc) const;
  const std::string& domain(int64_t doc) const;
  int64_t vocab_size() const { return vocab_size_; }
  std::vector<std::string> domain_names() const;
  int32_t domain_id(int64_t doc) const;  // an id over all shards' domain names

 private:
  std::vector<const ShardReader*> shards_;
  std::vector<int32_t> shard_of_;
  std::vector<int64_t> index_in_shard_;
  std::vector<std::string> names_;
  std::vector<std::vector<int32_t>> shard_domain_to_global_;
  int64_t vocab_size_ = 0;
};

// Row-major [n, dims] unit vectors.
struct Embeddings {
  int64_t n = 0, dims = 0;
  std::vector<float> data;
  const float* row(int64_t i) const { return data.data() + i * dims; }
};

struct EmbedOptions {
  int64_t dims = 256;
  int64_t buckets = 1 << 20;        // hashed feature space for document frequencies
  int64_t max_tokens = 2048;        // features from the first tokens of a document (they say what it is about)
  int projections_per_feature = 4;  // signed hash entries per feature (a sparse random projection)
};
Embeddings embed_documents(const DocumentSet& docs, const EmbedOptions& options = {});
// L2-normalises every row in place (rows of zeros stay zero).
void normalize_rows(Embeddings& e);

struct Neighbours {
  int64_t n = 0, k = 0;
  std::vector<int64_t> ids;       // [n, k], most similar first; -1 where fewer exist
  std::vector<float> similarity;  // [n, k], cosine
};
enum class KnnIndex { automatic, exact, ivf };
KnnIndex parse_knn_index(const std::string& name);
// Each document's k most similar others (itself excluded). automatic: exact
// search up to 50,000 documents, an IVF index (nlist ~ 4 sqrt(n), nprobe 16) beyond.
Neighbours nearest_neighbours(const Embeddings& e, int64_t k, KnnIndex index = KnnIndex::automatic, int nprobe = 16);

struct TraversalOptions {
  int64_t chain_cap = 0;  // 0: no cap; ICP uses 21
  double duplicate_jaccard =
      0.85;  // drop a document whose first 100 tokens' 3-grams overlap the previous one's this much
};
struct Traversal {
  std::vector<int64_t> order;  // documents in path order, each at most once
  int64_t chains = 0, jumps = 0, dropped_duplicates = 0;
};
Traversal similarity_order(const DocumentSet& docs, const Neighbours& nn, const TraversalOptions& options = {});
std::vector<int64_t> random_order(int64_t n, uint64_t seed);

struct PackOptions {
  int64_t instance_tokens = 4097;  // context + 1: inputs and next-token targets of one training sequence
  int32_t eos_id = 2;              // between documents
  uint64_t seed = 0;               // instance shuffle
};
struct Instances {
  int64_t instance_tokens = 0;
  std::vector<int32_t> tokens;           // [count, instance_tokens], shuffled
  std::vector<int32_t> majority_domain;  // per instance
  std::vector<float> purity;             // per instance: share of its tokens from its majority domain
  int64_t count() const { return instance_tokens ? static_cast<int64_t>(tokens.size()) / instance_tokens : 0; }
  int64_t dropped_tail_tokens = 0;
};
Instances pack_instances(const DocumentSet& docs, const std::vector<int64_t>& order, const PackOptions& options);

// Mean cosine similarity of consecutive documents of an order.
double adjacent_similarity(const Embeddings& e, const std::vector<int64_t>& order);
double mean_purity(const Instances& instances);

// Instances on disk: header (magic "LORYINST", version, token bytes, vocab,
// instance tokens, count) then the tokens; read by the training data loader.
void write_instances(const std::string& path, const Instances& instances, int64_t vocab_size);

// Deterministic shuffle (Fisher-Yates with splitmix64): the same on every
// platform, unlike std::shuffle.
void shuffle_with_seed(std::vector<int64_t>& v, uint64_t seed);

}  // namespace lory::corpus
