// corpus.cpp — see corpus.h. The recipes come first: they are the part a
// reader most wants to see (what text, from where, cut how).
#include "corpus/corpus.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "tensor/error.h"
#include "corpus/deb_archive.h"
#include "corpus/jsonl.h"
#include "corpus/text_extract.h"

namespace lory::corpus {

namespace {

std::function<bool(const std::string&)> suffixes(std::vector<std::string> list) {
  return [list](const std::string& path) {
    for (const auto& s : list)
      if (path.ends_with(s)) return true;
    return false;
  };
}

// One document per file, the text as it is (source code, TeX, reST, POD).
Extractor whole_files() {
  return [](const std::string& package, std::map<std::string, std::string>& files, std::vector<Document>& out) {
    for (auto& [path, bytes] : files) {
      const std::string source = package + ":" + path;
      out.push_back({std::move(bytes), source, source});
    }
  };
}

Extractor html_pages() {
  return [](const std::string& package, std::map<std::string, std::string>& files, std::vector<Document>& out) {
    for (auto& [path, bytes] : files) {
      const std::string source = package + ":" + path;
      out.push_back({html_to_text(bytes), source, source});
    }
  };
}

// dictd dictionaries: consecutive entries grouped into pages of >= 2 KB, so
// a document is an alphabetical run of definitions (a page of a reference
// work) rather than a one-line gloss.
Extractor dictionary_pages() {
  return [](const std::string& package, std::map<std::string, std::string>& files, std::vector<Document>& out) {
    for (const auto& [path, index] : files) {
      if (!path.ends_with(".index")) continue;
      const std::string dict_path = path.substr(0, path.size() - 6) + ".dict.dz";
      const auto it = files.find(dict_path);
      if (it == files.end()) continue;
      const std::string dict = decompress(it->second, package + ":" + dict_path);
      std::string page, first;
      auto flush = [&](const std::string& last) {
        if (page.empty()) return;
        const std::string source = package + ":" + path + "#" + first + ".." + last;
        out.push_back({page, source, source});
        page.clear();
      };
      std::string previous;
      for (const auto& [word, definition] : dictd_entries(index, dict)) {
        if (page.empty()) first = word;
        page += definition;
        page += "\n";
        previous = word;
        if (page.size() >= 2048) flush(word);
      }
      flush(previous);
    }
  };
}

// SWORD zText Bibles (BlockType=BOOK): module/{ot,nt}.bzs lists the blocks
// of {ot,nt}.bzz as (offset, size, uncompressed size) u32 triples, each
// block a zlib stream holding one book in OSIS markup; {ot,nt}.bzv lists
// every verse as (block, offset, size) with u32, u32, u16 fields. A document
// is a book, a verse per line; its split key is the book's OSIS id, so a
// book lands in one split in every translation.
Extractor sword_books() {
  return [](const std::string& package, std::map<std::string, std::string>& files, std::vector<Document>& out) {
    for (const auto& [path, bzs] : files) {
      if (!path.ends_with(".bzs")) continue;
      const std::string stem = path.substr(0, path.size() - 4);
      const auto it = files.find(stem + ".bzz");
      if (it == files.end()) continue;
      const std::string& bzz = it->second;
      const auto bzv_it = files.find(stem + ".bzv");
      const std::string bzv = bzv_it == files.end() ? std::string() : bzv_it->second;
      auto u32 = [](const std::string& f, size_t at) {
        uint32_t v;
        std::memcpy(&v, f.data() + at, 4);  // little-endian, as SWORD writes it
        return v;
      };
      std::map<uint32_t, std::vector<std::pair<uint32_t, uint32_t>>> verses;  // block -> (offset, size)
      for (size_t v = 0; v + 10 <= bzv.size(); v += 10) {
        uint16_t size;
        std::memcpy(&size, bzv.data() + v + 8, 2);
        if (size > 0) verses[u32(bzv, v)].emplace_back(u32(bzv, v + 4), size);
      }
      for (size_t b = 0; b + 12 <= bzs.size(); b += 12) {
        const uint32_t offset = u32(bzs, b), size = u32(bzs, b + 4), usize = u32(bzs, b + 8);
        LORY_CHECK(uint64_t{offset} + size <= bzz.size(), package, ":", stem, ".bzz: block ", b / 12,
                   " lies outside the file");
        std::string block(usize, '\0');
        uLongf got = usize;
        const int rc = uncompress(reinterpret_cast<Bytef*>(block.data()), &got,
                                  reinterpret_cast<const Bytef*>(bzz.data() + offset), size);
        LORY_CHECK(rc == Z_OK && got == usize, package, ":", stem, ".bzz: block ", b / 12,
                   " does not decompress (zlib ", rc, ")");
        std::string book = "block" + std::to_string(b / 12);  // no OSIS book id: a key of its own
        const size_t id = block.find("osisID=\"");
        const size_t type = block.find("type=\"book\"");
        if (id != std::string::npos && type != std::string::npos) {
          const size_t end = block.find('"', id + 8);
          book = block.substr(id + 8, end - id - 8);
        }
        const std::string source = package + ":" + stem + "#" + std::to_string(b / 12) + ":" + book;
        std::string text;
        const auto vs = verses.find(static_cast<uint32_t>(b / 12));
        if (vs == verses.end()) {
          text = strip_markup(block);
        } else {
          for (const auto& [start, length] : vs->second) {
            if (uint64_t{start} + length > block.size()) continue;
            const std::string verse = strip_markup(block.substr(start, length));
            if (!verse.empty()) text += verse + "\n";
          }
        }
        out.push_back({std::move(text), source, "bible:" + book});
      }
    }
  };
}

}  // namespace

const std::vector<DomainRecipe>& corpus_recipes() {
  static const std::vector<DomainRecipe> recipes = {
      {"books", "Books", {"sword-text-kjv", "sword-text-web"}, suffixes({".bzs", ".bzz", ".bzv"}), sword_books()},
      {"reference",
       "Wikipedia",
       {"dict-foldoc", "dict-jargon", "dict-gcide", "dict-wn"},
       suffixes({".index", ".dict.dz"}),
       dictionary_pages()},
      {"latex",
       "arXiv",
       {"pari-doc", "texlive-latex-base-doc", "texlive-latex-recommended-doc"},
       suffixes({".tex"}),
       whole_files()},
      {"code-python", "Python", {"libpython3.11-stdlib", "libpython3.11-testsuite"}, suffixes({".py"}), whole_files()},
      {"code-c",
       "GitHub C",
       {"glibc-source"},
       [](const std::string& p) { return p.rfind("usr/src/glibc/glibc-", 0) == 0 && p.ends_with(".c"); },
       whole_files(),
       [](const std::string& p) { return p.rfind("usr/src/glibc/glibc-", 0) == 0; }},
      {"code-cpp", "GitHub C++", {"libboost1.74-dev"}, suffixes({".hpp", ".ipp"}), whole_files()},
      {"manuals", "technical manuals", {"python3.11-doc", "perl-doc"}, suffixes({".rst.txt", ".pod"}), whole_files()},
      {"web", "C4", {"postgresql-doc-15", "sqlite3-doc", "debian-reference-en"}, suffixes({".html"}), html_pages()},
  };
  return recipes;
}

std::vector<std::string> corpus_packages() {
  std::vector<std::string> all;
  for (const auto& r : corpus_recipes()) all.insert(all.end(), r.packages.begin(), r.packages.end());
  return all;
}

std::string corpus_jsonl_line(const CorpusLine& line) {
  const nlohmann::ordered_json j{{"text", line.text}, {"domain", line.domain}, {"source", line.source}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

namespace {

std::string find_deb(const std::string& dir, const std::string& package) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(package + "_", 0) == 0 && name.ends_with(".deb")) found.push_back(entry.path().string());
  }
  LORY_CHECK(!found.empty(), "corpus: package ", package, " is not in ", dir,
             " (fetch the packages with: bash tools/build-corpus.sh, or apt-get download ", package, ")");
  std::sort(found.begin(), found.end());
  return found.back();  // the highest version string, if several
}

const char* const kSplits[] = {"train", "valid", "test"};

}  // namespace

std::map<std::string, int> split_by_bytes(const std::map<std::string, int64_t>& key_bytes, int64_t domain_bytes,
                                          double valid_fraction, double test_fraction, int64_t heldout_min_bytes) {
  std::vector<std::string> keys;
  for (const auto& [key, bytes] : key_bytes) keys.push_back(key);
  // Hash order: a sample spread over the domain, the same on every machine.
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) {
    const uint64_t ha = fnv1a("split:" + a), hb = fnv1a("split:" + b);
    return ha != hb ? ha < hb : a < b;
  });
  // A target in bytes, not in keys: a domain of a few large files (code,
  // LaTeX) would otherwise hold out a few hundred tokens, too few to measure on.
  auto target_for = [&](double fraction) -> int64_t {
    if (fraction <= 0 || keys.size() < 3) return 0;
    const auto share = static_cast<int64_t>(fraction * static_cast<double>(domain_bytes));
    return std::max(share, std::min(heldout_min_bytes, domain_bytes / 10));
  };
  const int64_t targets[3] = {0, target_for(valid_fraction), target_for(test_fraction)};
  int64_t filled[3] = {0, 0, 0};
  std::map<std::string, int> split_of;
  int split = 1;  // valid first, then test, then train
  for (size_t k = 0; k < keys.size(); ++k) {
    // The last key always trains.
    while (split < 3 && (filled[split] >= targets[split] || k + 1 == keys.size())) ++split;
    const int s = split < 3 ? split : 0;
    split_of[keys[k]] = s;
    filled[s] += key_bytes.at(keys[k]);
  }
  return split_of;
}

std::map<std::string, DomainStats> build_corpus(const CorpusOptions& o) {
  LORY_CHECK(o.valid_fraction >= 0 && o.test_fraction >= 0 && o.valid_fraction + o.test_fraction < 1,
             "corpus: valid and test fractions must be >= 0 and sum to less than 1");
  std::set<std::string> wanted(o.domains.begin(), o.domains.end());
  for (const auto& d : wanted) {
    bool known = false;
    for (const auto& r : corpus_recipes()) known = known || r.domain == d;
    std::string all;
    for (const auto& r : corpus_recipes()) all += (all.empty() ? "" : ", ") + r.domain;
    LORY_CHECK(known, "corpus: unknown domain '", d, "'; domains are: ", all);
  }
  std::filesystem::create_directories(o.out_dir);
  std::string lines[3];  // the JSONL text of each split
  std::map<std::string, DomainStats> stats;

  for (const DomainRecipe& recipe : corpus_recipes()) {
    if (!wanted.empty() && !wanted.count(recipe.domain)) continue;
    DomainStats& st = stats[recipe.domain];
    std::vector<Document> docs;
    for (const std::string& package : recipe.packages) {
      const std::string deb = find_deb(o.debs_dir, package);
      std::map<std::string, std::string> files;
      read_deb(deb, {recipe.want, [&](const std::string& path, std::string&& bytes) { files[path] = std::move(bytes); },
                     recipe.descend});
      const size_t before = docs.size();
      recipe.extract(package, files, docs);
      o.log(recipe.domain + ": " + package + ": " + std::to_string(docs.size() - before) + " documents");
    }
    // Clean, filter, deduplicate.
    std::vector<Document> kept;
    std::set<uint64_t> seen;
    for (Document& d : docs) {
      d.text = clean_text(d.text);
      if (static_cast<int64_t>(d.text.size()) < o.min_doc_bytes) {
        ++st.dropped_short;
      } else if (o.max_doc_bytes > 0 && static_cast<int64_t>(d.text.size()) > o.max_doc_bytes) {
        ++st.dropped_long_docs;
      } else if (static_cast<int64_t>(longest_line(d.text)) > o.max_line_bytes) {
        ++st.dropped_long_lines;
      } else if (!seen.insert(fnv1a(d.text)).second) {
        ++st.dropped_duplicates;
      } else {
        kept.push_back(std::move(d));
      }
    }
    // Documents in hash order: any prefix is a sample spread over the domain.
    std::sort(kept.begin(), kept.end(), [](const Document& a, const Document& b) {
      const uint64_t ha = fnv1a(a.source), hb = fnv1a(b.source);
      return ha != hb ? ha < hb : a.source < b.source;
    });
    // Held-out first, over everything the packages hold, by split key (whole
    // documents; split_by_bytes). A held-out document keeps at most its first
    // heldout_doc_bytes (cut at a line end), so that a domain of long
    // documents (a book of the Bible, an 80 kB manual) is still evaluated on
    // several documents, not one; the rest of it is dropped, not trained on.
    auto heldout_size = [&](const Document& d) {
      const auto n = static_cast<int64_t>(d.text.size());
      return o.heldout_doc_bytes > 0 ? std::min(n, o.heldout_doc_bytes) : n;
    };
    std::map<std::string, int64_t> key_bytes;
    for (const Document& d : kept) key_bytes[d.split_key] += heldout_size(d);
    // Held-out shares of the training budget, or of the whole domain when it is smaller.
    int64_t available = 0;
    for (const auto& [key, bytes] : key_bytes) available += bytes;
    const std::map<std::string, int> split_of = split_by_bytes(
        key_bytes, std::min(o.bytes_per_domain, available), o.valid_fraction, o.test_fraction, o.heldout_min_bytes);
    // Then the training text: the other documents, in hash order, up to the budget.
    int64_t budget = o.bytes_per_domain;
    for (Document& d : kept) {
      const int split = split_of.at(d.split_key);
      if (split == 0) {
        if (budget <= 0) {
          ++st.over_budget;
          continue;
        }
        budget -= static_cast<int64_t>(d.text.size());
      } else if (static_cast<int64_t>(d.text.size()) > heldout_size(d)) {
        const size_t cut = d.text.rfind('\n', static_cast<size_t>(heldout_size(d)) - 1);
        d.text.resize(cut == std::string::npos || cut == 0 ? static_cast<size_t>(heldout_size(d)) : cut + 1);
        ++st.heldout_truncated;
      }
      lines[split] += corpus_jsonl_line({d.text, recipe.domain, d.source});
      st.documents[split] += 1;
      st.bytes[split] += static_cast<int64_t>(d.text.size());
    }
    o.log(recipe.domain + ": kept " + std::to_string(st.documents[0] + st.documents[1] + st.documents[2]) +
          " documents, " + std::to_string(st.bytes[0] + st.bytes[1] + st.bytes[2]) + " bytes");
  }

  for (int s = 0; s < 3; ++s) io::write_file_atomically(o.out_dir + "/" + kSplits[s] + ".jsonl", lines[s]);
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  for (const auto& [domain, st] : stats) {
    nlohmann::ordered_json& d = json[domain];
    for (int s = 0; s < 3; ++s) {
      d[std::string(kSplits[s]) + "_documents"] = st.documents[s];
      d[std::string(kSplits[s]) + "_bytes"] = st.bytes[s];
    }
    d["dropped_short"] = st.dropped_short;
    d["dropped_long_docs"] = st.dropped_long_docs;
    d["dropped_long_lines"] = st.dropped_long_lines;
    d["dropped_duplicates"] = st.dropped_duplicates;
    d["over_budget"] = st.over_budget;
    d["heldout_truncated"] = st.heldout_truncated;
  }
  io::write_file_atomically(o.out_dir + "/stats.json", json.dump(2) + "\n");
  return stats;
}

std::vector<CorpusLine> read_corpus_jsonl(const std::string& path) {
  JsonlReader reader(path);
  std::vector<CorpusLine> lines;
  for (CorpusLine line; reader.next(line);) lines.push_back(line);
  return lines;
}

}  // namespace lory::corpus
