// corpus.h — a multi-domain corpus of real text from Debian packages.
//
// The paper evaluates on arXiv, Books, Wikipedia, C4 and Python; none of
// those can be downloaded here, but Debian's archive holds real text of the
// same kinds (see shared/docs/corpus-sources.md). Each domain below is a
// recipe: which packages, which files in them, and how a file becomes
// documents. build_corpus reads the packages directly (corpus/
// deb_archive.h), cleans and filters the documents, samples each domain up
// to a byte budget, splits by document into train/valid/test, and writes
// JSONL lines {"text", "domain", "source"}.
//
// The output is a pure function of the packages and the options: documents
// are ordered by a hash of their source, not by the order files are read,
// and the split of a document is decided by a hash of its split key (for the
// two Bibles the book, so a book is in the same split in both translations).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "corpus/hash.h"

namespace lory::corpus {

struct Document {
  std::string text;
  std::string source;     // "package:path[#part]"
  std::string split_key;  // documents with one key land in one split
};

// How the wanted files of one package become documents.
using Extractor = std::function<void(const std::string& package, std::map<std::string, std::string>& files,
                                     std::vector<Document>& out)>;

struct DomainRecipe {
  std::string domain;                 // "books", "code-python", ...
  std::string paper_analogue;         // the paper's evaluation domain it stands in for
  std::vector<std::string> packages;  // Debian package names
  std::function<bool(const std::string& path)> want;
  Extractor extract;
  std::function<bool(const std::string& path)> descend = [](const std::string&) { return false; };
};

// The eight domains, in output order.
const std::vector<DomainRecipe>& corpus_recipes();
// Every package the recipes read (what tools/build-corpus.sh downloads).
std::vector<std::string> corpus_packages();

struct CorpusOptions {
  std::string debs_dir;                   // holds <package>_<version>_<arch>.deb
  std::string out_dir;                    // gets train.jsonl, valid.jsonl, test.jsonl, stats.json
  int64_t bytes_per_domain = 25'000'000;  // training text per domain (held-out text comes on top)
  // Held-out text per domain, by bytes: each of valid and test gets at least
  // this fraction of bytes_per_domain and at least heldout_min_bytes (capped
  // at 10% of bytes_per_domain, for tiny corpora): about 20k+ tokens of every
  // domain to evaluate on, whatever its document sizes. Each held-out
  // document keeps at most its first heldout_doc_bytes (0: all), so the
  // held-out text of every domain spans several documents.
  double valid_fraction = 0.01, test_fraction = 0.01;
  int64_t heldout_min_bytes = 80'000;
  int64_t heldout_doc_bytes = 16'000;
  std::vector<std::string> domains;  // empty: all
  int64_t min_doc_bytes = 200;       // shorter documents are dropped
  int64_t max_doc_bytes = 0;         // longer documents are dropped (0: no limit)
  int64_t max_line_bytes = 1000;     // documents with a longer line (minified, generated) are dropped
  std::function<void(const std::string&)> log = [](const std::string&) {};
};

struct DomainStats {
  int64_t documents[3] = {0, 0, 0};  // train, valid, test
  int64_t bytes[3] = {0, 0, 0};
  int64_t dropped_short = 0, dropped_long_docs = 0, dropped_long_lines = 0, dropped_duplicates = 0;
  int64_t over_budget = 0;        // training documents beyond bytes_per_domain
  int64_t heldout_truncated = 0;  // held-out documents cut to heldout_doc_bytes
};

// The split of every split key (0 train, 1 valid, 2 test), given the bytes
// of held-out text under each key in one domain: keys in hash order go to
// valid until it holds max(valid_fraction x domain_bytes, min(heldout_min_bytes,
// domain_bytes / 10)), then to test the same way, the rest (always at least
// one key) to train. Held-out sets of whole documents, stratified by domain.
std::map<std::string, int> split_by_bytes(const std::map<std::string, int64_t>& key_bytes, int64_t domain_bytes,
                                          double valid_fraction, double test_fraction, int64_t heldout_min_bytes);

// Builds the corpus; returns per-domain statistics (also written to stats.json).
std::map<std::string, DomainStats> build_corpus(const CorpusOptions& options);

// One line of a corpus file.
struct CorpusLine {
  std::string text, domain, source;
};
// Reads a corpus JSONL file (plain or compressed: .gz, .xz, .zst); a line
// that is not an object with string "text" and "domain" is an error naming
// the file and the line number.
std::vector<CorpusLine> read_corpus_jsonl(const std::string& path);

// One line of a corpus JSONL file, newline included: {"text": ..., "domain":
// ..., "source": ...} in that order, written by nlohmann_json (a byte that is
// not UTF-8 becomes U+FFFD, so the line is always valid JSON).
std::string corpus_jsonl_line(const CorpusLine& line);

}  // namespace lory::corpus
