// similarity_batching.cpp — see similarity_batching.h.
#include "corpus/similarity_batching.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "io/atomic_file.h"
#include "tensor/error.h"
#include "corpus/hash.h"

namespace lory::corpus {

namespace {

// Hashed features of a document's first tokens: token unigrams and bigrams.
void document_features(const std::vector<int32_t>& tokens, int64_t max_tokens, int64_t buckets,
                       std::vector<uint32_t>& out) {
  out.clear();
  const size_t n = std::min<size_t>(tokens.size(), static_cast<size_t>(max_tokens));
  for (size_t i = 0; i < n; ++i) {
    out.push_back(static_cast<uint32_t>(splitmix64(static_cast<uint64_t>(tokens[i])) % static_cast<uint64_t>(buckets)));
    if (i + 1 < n) {
      const uint64_t pair = (static_cast<uint64_t>(tokens[i]) << 32) | static_cast<uint32_t>(tokens[i + 1]);
      out.push_back(static_cast<uint32_t>(splitmix64(pair ^ 0xB16B00B5ull) % static_cast<uint64_t>(buckets)));
    }
  }
  std::sort(out.begin(), out.end());
}

}  // namespace

// ---- documents ----

DocumentSet::DocumentSet(const std::vector<const ShardReader*>& shards) : shards_(shards) {
  LORY_CHECK(!shards.empty(), "documents: no shards given");
  vocab_size_ = shards[0]->vocab_size();
  for (size_t s = 0; s < shards.size(); ++s) {
    LORY_CHECK(shards[s]->vocab_size() == vocab_size_, "documents: shard ", shards[s]->path(), " has vocab ",
               shards[s]->vocab_size(), ", shard ", shards[0]->path(), " has ", vocab_size_);
    std::vector<int32_t> map;
    for (const auto& name : shards[s]->domains()) {
      auto it = std::find(names_.begin(), names_.end(), name);
      if (it == names_.end()) it = names_.insert(names_.end(), name);
      map.push_back(static_cast<int32_t>(it - names_.begin()));
    }
    shard_domain_to_global_.push_back(map);
    for (int64_t d = 0; d < shards[s]->num_documents(); ++d) {
      shard_of_.push_back(static_cast<int32_t>(s));
      index_in_shard_.push_back(d);
    }
  }
}

int64_t DocumentSet::length(int64_t doc) const { return shards_[shard_of_[doc]]->doc_length(index_in_shard_[doc]); }

std::vector<int32_t> DocumentSet::tokens(int64_t doc) const {
  const ShardReader& s = *shards_[shard_of_[doc]];
  std::vector<int32_t> out(static_cast<size_t>(s.doc_length(index_in_shard_[doc])));
  s.read_tokens(s.doc_start(index_in_shard_[doc]), static_cast<int64_t>(out.size()), out.data());
  return out;
}

int32_t DocumentSet::domain_id(int64_t doc) const {
  const int32_t s = shard_of_[doc];
  return shard_domain_to_global_[s][shards_[s]->doc_domain(index_in_shard_[doc])];
}

const std::string& DocumentSet::domain(int64_t doc) const { return names_[domain_id(doc)]; }
std::vector<std::string> DocumentSet::domain_names() const { return names_; }

// ---- 1. embeddings ----

void normalize_rows(Embeddings& e) {
  for (int64_t i = 0; i < e.n; ++i) {
    float* r = e.data.data() + i * e.dims;
    double ss = 0;
    for (int64_t j = 0; j < e.dims; ++j) ss += static_cast<double>(r[j]) * r[j];
    if (ss > 0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(ss));
      for (int64_t j = 0; j < e.dims; ++j) r[j] *= inv;
    }
  }
}

Embeddings embed_documents(const DocumentSet& docs, const EmbedOptions& o) {
  LORY_CHECK(o.dims > 0 && o.buckets > 0 && o.projections_per_feature > 0, "embed: bad options");
  const int64_t n = docs.size();
  // Pass 1: document frequency of every feature bucket (per-thread counts, then summed: exact and deterministic).
  std::vector<uint32_t> df(static_cast<size_t>(o.buckets), 0);
#pragma omp parallel
  {
    std::vector<uint32_t> local(static_cast<size_t>(o.buckets), 0), f;
#pragma omp for schedule(dynamic, 64)
    for (int64_t d = 0; d < n; ++d) {
      document_features(docs.tokens(d), o.max_tokens, o.buckets, f);
      for (size_t i = 0; i < f.size(); ++i)
        if (i == 0 || f[i] != f[i - 1]) ++local[f[i]];
    }
#pragma omp critical(lory_embed_df)
    for (size_t b = 0; b < local.size(); ++b) df[b] += local[b];
  }
  // Pass 2: TF-IDF weights, projected by signed hashing (each bucket adds
  // +-w to `projections_per_feature` of the dims): a sparse random projection
  // that keeps inner products of the TF-IDF vectors in expectation.
  Embeddings e{n, o.dims, std::vector<float>(static_cast<size_t>(n * o.dims), 0.0f)};
  const double log_n = std::log(static_cast<double>(n) + 1.0);
#pragma omp parallel
  {
    std::vector<uint32_t> f;
#pragma omp for schedule(dynamic, 64)
    for (int64_t d = 0; d < n; ++d) {
      document_features(docs.tokens(d), o.max_tokens, o.buckets, f);
      float* row = e.data.data() + d * o.dims;
      for (size_t i = 0; i < f.size();) {
        size_t j = i;
        while (j < f.size() && f[j] == f[i]) ++j;
        if (df[f[i]] < 2) {  // a feature of one document says nothing about similarity: it only adds noise
          i = j;
          continue;
        }
        const double tf = 1.0 + std::log(static_cast<double>(j - i));
        const double idf = log_n - std::log(static_cast<double>(df[f[i]]) + 1.0) + 1.0;
        const float w = static_cast<float>(tf * idf);
        for (int p = 0; p < o.projections_per_feature; ++p) {
          const uint64_t h = splitmix64((static_cast<uint64_t>(f[i]) << 8) | static_cast<uint64_t>(p));
          row[h % static_cast<uint64_t>(o.dims)] += ((h >> 63) ? w : -w);
        }
        i = j;
      }
    }
  }
  normalize_rows(e);
  return e;
}

// ---- 2. nearest neighbours ----

KnnIndex parse_knn_index(const std::string& name) {
  if (name == "auto") return KnnIndex::automatic;
  if (name == "exact") return KnnIndex::exact;
  if (name == "ivf") return KnnIndex::ivf;
  fail("knn index '", name, "' is not one of auto, exact, ivf");
}

Neighbours nearest_neighbours(const Embeddings& e, int64_t k, KnnIndex kind, int nprobe) {
  LORY_CHECK(k > 0, "knn: k must be > 0, got ", k);
  Neighbours nn{e.n, k, std::vector<int64_t>(static_cast<size_t>(e.n * k), -1),
                std::vector<float>(static_cast<size_t>(e.n * k), 0.0f)};
  if (e.n < 2) return nn;
  const int64_t want = std::min(k + 1, e.n);  // +1: a document finds itself
  std::vector<float> D(static_cast<size_t>(e.n * want));
  std::vector<faiss::Index::idx_t> I(static_cast<size_t>(e.n * want));
  const bool exact = kind == KnnIndex::exact || (kind == KnnIndex::automatic && e.n <= 50'000);
  if (exact) {
    faiss::IndexFlatIP index(static_cast<int>(e.dims));
    index.add(e.n, e.data.data());
    index.search(e.n, e.data.data(), want, D.data(), I.data());
  } else {
    const int64_t nlist = std::max<int64_t>(1, std::min<int64_t>(e.n / 39, static_cast<int64_t>(4 * std::sqrt(e.n))));
    faiss::IndexFlatIP quantizer(static_cast<int>(e.dims));
    faiss::IndexIVFFlat index(&quantizer, static_cast<int>(e.dims), static_cast<size_t>(nlist),
                              faiss::METRIC_INNER_PRODUCT);
    index.cp.seed = 1234;
    index.cp.niter = 10;
    index.cp.max_points_per_centroid = 64;  // k-means on a sample: enough for coarse cells
    index.train(e.n, e.data.data());
    index.add(e.n, e.data.data());
    index.nprobe = static_cast<size_t>(std::min<int64_t>(nprobe, nlist));
    index.search(e.n, e.data.data(), want, D.data(), I.data());
  }
  for (int64_t i = 0; i < e.n; ++i) {
    int64_t out = 0;
    for (int64_t j = 0; j < want && out < k; ++j) {
      const faiss::Index::idx_t id = I[i * want + j];
      if (id < 0 || id == i) continue;
      nn.ids[i * k + out] = id;
      nn.similarity[i * k + out] = D[i * want + j];
      ++out;
    }
  }
  return nn;
}

// ---- 3. the traversal ----

namespace {
// 3-grams of a document's first 1024 tokens, for near-duplicate detection.
// (ICP compares only the first 100 characters; in code, those are the same
// licence header in every file of a project, so we look further.)
std::vector<uint64_t> head_trigrams(const std::vector<int32_t>& t) {
  std::vector<uint64_t> g;
  const size_t n = std::min<size_t>(t.size(), 1024);
  for (size_t i = 0; i + 2 < n; ++i)
    g.push_back(splitmix64((static_cast<uint64_t>(t[i]) << 42) ^ (static_cast<uint64_t>(t[i + 1]) << 21) ^
                           static_cast<uint64_t>(t[i + 2])));
  std::sort(g.begin(), g.end());
  g.erase(std::unique(g.begin(), g.end()), g.end());
  return g;
}
double jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  if (a.empty() && b.empty()) return 1.0;
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j])
      ++common, ++i, ++j;
    else if (a[i] < b[j])
      ++i;
    else
      ++j;
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}
}  // namespace

Traversal similarity_order(const DocumentSet& docs, const Neighbours& nn, const TraversalOptions& o) {
  const int64_t n = nn.n;
  LORY_CHECK(n == docs.size(), "traversal: ", n, " neighbour lists for ", docs.size(), " documents");
  // In-degree: how often a document is someone's neighbour. Starting from
  // the least connected documents leaves the well-connected ones for the
  // middle of chains (ICP's rule).
  std::vector<int64_t> indegree(static_cast<size_t>(n), 0);
  for (int64_t id : nn.ids)
    if (id >= 0) ++indegree[id];
  std::vector<int64_t> starts(static_cast<size_t>(n));
  std::iota(starts.begin(), starts.end(), 0);
  std::stable_sort(starts.begin(), starts.end(), [&](int64_t a, int64_t b) { return indegree[a] < indegree[b]; });

  Traversal t;
  std::vector<bool> visited(static_cast<size_t>(n), false);
  size_t next_start = 0;
  std::vector<uint64_t> previous;  // head 3-grams of the last document kept
  for (;;) {
    while (next_start < starts.size() && visited[starts[next_start]]) ++next_start;
    if (next_start == starts.size()) break;
    int64_t cur = starts[next_start];
    visited[cur] = true;
    ++t.chains;
    t.order.push_back(cur);
    previous = head_trigrams(docs.tokens(cur));
    int64_t chain = 1;
    for (;;) {
      if (o.chain_cap > 0 && chain >= o.chain_cap) break;
      int64_t step = -1;
      for (int64_t j = 0; j < nn.k && step < 0; ++j) {
        const int64_t cand = nn.ids[cur * nn.k + j];
        if (cand >= 0 && !visited[cand]) step = cand;
      }
      if (step < 0) break;  // stuck: jump to a new start
      visited[step] = true;
      cur = step;
      std::vector<uint64_t> grams = head_trigrams(docs.tokens(step));
      if (o.duplicate_jaccard < 1.0 && jaccard(grams, previous) > o.duplicate_jaccard) {
        ++t.dropped_duplicates;  // walk on from it, but do not train on it twice
        continue;
      }
      t.order.push_back(step);
      previous = std::move(grams);
      ++chain;
    }
    ++t.jumps;
  }
  t.jumps = std::max<int64_t>(0, t.jumps - 1);  // the last chain ends the walk, it does not jump
  return t;
}

void shuffle_with_seed(std::vector<int64_t>& v, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = v.size(); i > 1; --i) {
    state = splitmix64(state);
    std::swap(v[i - 1], v[state % i]);
  }
}

std::vector<int64_t> random_order(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  shuffle_with_seed(order, seed);
  return order;
}

// ---- 4. instances ----

Instances pack_instances(const DocumentSet& docs, const std::vector<int64_t>& order, const PackOptions& o) {
  LORY_CHECK(o.instance_tokens >= 2, "pack: instance_tokens must be >= 2, got ", o.instance_tokens);
  const int64_t L = o.instance_tokens;
  const size_t domains = docs.domain_names().size();
  Instances out;
  out.instance_tokens = L;
  std::vector<int32_t> stream_domains;  // domain of each token of the instance being filled
  std::vector<int32_t> current;
  auto finish = [&] {
    std::vector<int64_t> counts(domains, 0);
    for (int32_t d : stream_domains) ++counts[d];
    const auto best = std::max_element(counts.begin(), counts.end());
    out.tokens.insert(out.tokens.end(), current.begin(), current.end());
    out.majority_domain.push_back(static_cast<int32_t>(best - counts.begin()));
    out.purity.push_back(static_cast<float>(static_cast<double>(*best) / static_cast<double>(L)));
    current.clear();
    stream_domains.clear();
  };
  for (int64_t doc : order) {
    std::vector<int32_t> t = docs.tokens(doc);
    t.push_back(o.eos_id);
    const int32_t domain = docs.domain_id(doc);
    for (size_t i = 0; i < t.size();) {
      const size_t take = std::min(t.size() - i, static_cast<size_t>(L) - current.size());
      current.insert(current.end(), t.begin() + static_cast<std::ptrdiff_t>(i),
                     t.begin() + static_cast<std::ptrdiff_t>(i + take));
      stream_domains.insert(stream_domains.end(), take, domain);
      i += take;
      if (static_cast<int64_t>(current.size()) == L) finish();
    }
  }
  out.dropped_tail_tokens = static_cast<int64_t>(current.size());
  // Shuffle whole instances: the order inside an instance is the traversal's.
  std::vector<int64_t> perm(static_cast<size_t>(out.count()));
  std::iota(perm.begin(), perm.end(), 0);
  shuffle_with_seed(perm, o.seed);
  Instances shuffled;
  shuffled.instance_tokens = L;
  shuffled.dropped_tail_tokens = out.dropped_tail_tokens;
  shuffled.tokens.resize(out.tokens.size());
  shuffled.majority_domain.resize(perm.size());
  shuffled.purity.resize(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    std::copy_n(out.tokens.begin() + perm[i] * L, L, shuffled.tokens.begin() + static_cast<int64_t>(i) * L);
    shuffled.majority_domain[i] = out.majority_domain[perm[i]];
    shuffled.purity[i] = out.purity[perm[i]];
  }
  return shuffled;
}

double adjacent_similarity(const Embeddings& e, const std::vector<int64_t>& order) {
  if (order.size() < 2) return 0.0;
  double total = 0;
  for (size_t i = 1; i < order.size(); ++i) {
    const float* a = e.row(order[i - 1]);
    const float* b = e.row(order[i]);
    double dot = 0;
    for (int64_t j = 0; j < e.dims; ++j) dot += static_cast<double>(a[j]) * b[j];
    total += dot;
  }
  return total / static_cast<double>(order.size() - 1);
}

double mean_purity(const Instances& instances) {
  if (instances.purity.empty()) return 0.0;
  double total = 0;
  for (float p : instances.purity) total += p;
  return total / static_cast<double>(instances.purity.size());
}

void write_instances(const std::string& path, const Instances& inst, int64_t vocab_size) {
  const int token_bytes = vocab_size <= 65536 ? 2 : 4;
  io::write_file_atomically(path, [&](std::FILE* f) {
    unsigned char head[64] = {};
    std::memcpy(head, "LORYINST", 8);
    const uint32_t version = 1, tb = static_cast<uint32_t>(token_bytes);
    const uint64_t vocab = static_cast<uint64_t>(vocab_size), len = static_cast<uint64_t>(inst.instance_tokens),
                   count = static_cast<uint64_t>(inst.count());
    std::memcpy(head + 8, &version, 4);
    std::memcpy(head + 12, &tb, 4);
    std::memcpy(head + 16, &vocab, 8);
    std::memcpy(head + 24, &len, 8);
    std::memcpy(head + 32, &count, 8);
    bool ok = std::fwrite(head, 1, 64, f) == 64;
    std::vector<unsigned char> buf(inst.tokens.size() * static_cast<size_t>(token_bytes));
    for (size_t i = 0; i < inst.tokens.size(); ++i) {
      if (token_bytes == 2) {
        const uint16_t t = static_cast<uint16_t>(inst.tokens[i]);
        std::memcpy(buf.data() + 2 * i, &t, 2);
      } else {
        const uint32_t t = static_cast<uint32_t>(inst.tokens[i]);
        std::memcpy(buf.data() + 4 * i, &t, 4);
      }
    }
    ok = ok && (buf.empty() || std::fwrite(buf.data(), 1, buf.size(), f) == buf.size());
    if (!ok) fail(path, ": write failed");
  });
}

}  // namespace lory::corpus
