// lory_corpus — builds the multi-domain corpus (corpus/corpus.h) from
// Debian packages already downloaded into a folder. tools/build-corpus.sh
// downloads them and runs this.
//
//   lory_corpus --debs ~/.cache/lory/debs --out data/corpus [--mb-per-domain 25]
//               [--domains books,web] [--valid 0.01] [--test 0.01]
#include <chrono>
#include <cstdio>
#include <exception>

#include "tools/cli.h"
#include "corpus/corpus.h"

using namespace lory;
using namespace lory::corpus;

int main(int argc, char** argv) {
  tools::App app("lory_corpus",
                 "Builds train/valid/test JSONL ({\"text\", \"domain\", \"source\"}) from Debian packages.");
  CorpusOptions o;
  double mb_per_domain = 25, heldout_min_kb = 80, heldout_doc_kb = 16, max_doc_kb = 0;
  std::string domains;
  app.add_option("--debs", o.debs_dir, "folder with the downloaded .deb files")->type_name("DIR")->required();
  app.add_option("--out", o.out_dir, "output folder: train.jsonl, valid.jsonl, test.jsonl, stats.json")
      ->type_name("DIR")
      ->required();
  app.add_option("--mb-per-domain", mb_per_domain, "training text per domain (held-out text comes on top)")
      ->type_name("MB");
  app.add_option("--domains", domains, "only these domains (default: all)")->type_name("A,B");
  app.add_option("--valid", o.valid_fraction, "held out in valid, as a share of --mb-per-domain (whole documents)")
      ->type_name("FRACTION");
  app.add_option("--test", o.test_fraction, "held out in test, as a share of --mb-per-domain (whole documents)")
      ->type_name("FRACTION");
  app.add_option("--heldout-min-kb", heldout_min_kb,
                 "at least this much of each domain in valid and in test (at most 10% of --mb-per-domain)")
      ->type_name("KB");
  app.add_option("--heldout-doc-kb", heldout_doc_kb, "a held-out document keeps at most its first KB (0: all)")
      ->type_name("KB");
  app.add_option("--max-doc-kb", max_doc_kb, "drop documents longer than this (0: no limit)")->type_name("KB");
  app.add_flag_callback(
      "--list-packages",
      [] {
        for (const auto& p : corpus_packages()) std::printf("%s\n", p.c_str());
        throw CLI::Success();  // exit 0 now: --debs and --out are not needed
      },
      "print the packages the recipes read, one per line, and exit");
  if (!app.parse_command_line(argc, argv)) return app.exit_code();
  o.bytes_per_domain = static_cast<int64_t>(mb_per_domain * 1e6);
  o.heldout_min_bytes = static_cast<int64_t>(heldout_min_kb * 1000);
  o.heldout_doc_bytes = static_cast<int64_t>(heldout_doc_kb * 1000);
  o.max_doc_bytes = static_cast<int64_t>(max_doc_kb * 1000);
  o.domains = tools::split_commas(domains);
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
