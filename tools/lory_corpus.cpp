// lory_corpus — builds the multi-domain corpus (corpus/corpus.h) from
// Debian packages already downloaded into a folder. tools/build-corpus.sh
// downloads them and runs this.
//
//   lory_corpus --debs ~/.cache/lory/debs --out data/corpus [--mb-per-domain 25]
//               [--domains books,web] [--valid 0.01] [--test 0.01]
#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>

#include "tools/cli.h"
#include "corpus/corpus.h"

using namespace lory;
using namespace lory::corpus;

int main(int argc, char** argv) {
  tools::Cli cli("lory_corpus",
                 "Builds train/valid/test JSONL ({\"text\", \"domain\", \"source\"}) from Debian packages.");
  cli.option("debs", "DIR", "folder with the downloaded .deb files");
  cli.option("out", "DIR", "output folder: train.jsonl, valid.jsonl, test.jsonl, stats.json");
  cli.option("mb-per-domain", "MB", "training text per domain (held-out text comes on top)", "25");
  cli.option("domains", "A,B", "only these domains (default: all)");
  cli.option("valid", "FRACTION", "held out in valid, as a share of --mb-per-domain (whole documents)", "0.01");
  cli.option("test", "FRACTION", "held out in test, as a share of --mb-per-domain (whole documents)", "0.01");
  cli.option("heldout-min-kb", "KB", "at least this much of each domain in valid and in test (at most 10% of --mb-per-domain)",
             "80");
  cli.option("heldout-doc-kb", "KB", "a held-out document keeps at most its first KB (0: all)", "16");
  cli.option("max-doc-kb", "KB", "drop documents longer than this (0: no limit)", "0");
  cli.flag("list-packages", "print the packages the recipes read, one per line, and exit");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  if (cli.has("list-packages")) {
    for (const auto& p : corpus_packages()) std::printf("%s\n", p.c_str());
    return 0;
  }
  CorpusOptions o;
  o.debs_dir = cli.require("debs");
  o.out_dir = cli.require("out");
  o.bytes_per_domain = static_cast<int64_t>(cli.get_double("mb-per-domain") * 1e6);
  o.valid_fraction = cli.get_double("valid");
  o.test_fraction = cli.get_double("test");
  o.heldout_min_bytes = static_cast<int64_t>(cli.get_double("heldout-min-kb") * 1000);
  o.heldout_doc_bytes = static_cast<int64_t>(cli.get_double("heldout-doc-kb") * 1000);
  o.max_doc_bytes = static_cast<int64_t>(cli.get_double("max-doc-kb") * 1000);
  if (cli.has("domains")) {
    std::stringstream ss(cli.get("domains"));
    for (std::string d; std::getline(ss, d, ',');) o.domains.push_back(d);
  }
  const auto start = std::chrono::steady_clock::now();
  o.log = [&](const std::string& line) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "[%6.1fs] %s\n", s, line.c_str());
  };
  try {
    const auto stats = build_corpus(o);
    std::printf("%-12s %10s %12s %8s %8s\n", "domain", "documents", "bytes", "valid", "test");
    int64_t docs = 0, bytes = 0;
    for (const auto& [domain, st] : stats) {
      const int64_t d = st.documents[0] + st.documents[1] + st.documents[2];
      const int64_t b = st.bytes[0] + st.bytes[1] + st.bytes[2];
      docs += d, bytes += b;
      std::printf("%-12s %10lld %12lld %8lld %8lld\n", domain.c_str(), static_cast<long long>(d),
                  static_cast<long long>(b), static_cast<long long>(st.documents[1]),
                  static_cast<long long>(st.documents[2]));
    }
    std::printf("%-12s %10lld %12lld\nwrote %s/{train,valid,test}.jsonl and stats.json\n", "total",
                static_cast<long long>(docs), static_cast<long long>(bytes), o.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
