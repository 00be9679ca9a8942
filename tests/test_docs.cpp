// Docs that name files keep naming files that exist.
//
// Every path that starts with a project folder (tensor/, cuda/, nn/, ...) and
// appears in a Markdown page or in a comment or string of the sources must
// exist: a renamed or deleted file leaves no stale pointer behind for the
// reader who follows it. A path is a word that starts with a project folder
// and ends in a source, script, doc or config extension, or in '/'. Globs (`tensor/ops/*.cpp`), placeholders
// (`tensor/ops/<family>.cpp`) and what programs write at run time (`runs/`,
// `data/`, `build/`) are not paths to check.
#include <doctest/doctest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = LORY_SOURCE_DIR;

// The folders of the project whose files the docs point into.
const char* const kFolders[] = {"tensor", "autograd", "cuda", "io", "nn", "corpus", "train",
                                "tools", "tests", "docs", "configs", ".ci"};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The files whose text is checked: Markdown anywhere in the project, and the
// sources and scripts of every folder.
std::vector<fs::path> documents() {
  std::vector<fs::path> out;
  for (const fs::path& top : {kRoot / "README.md", kRoot / "CMakeLists.txt", kRoot / "Makefile"}) out.push_back(top);
  for (const char* folder : kFolders) {
    if (!fs::exists(kRoot / folder)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(kRoot / folder)) {
      if (!entry.is_regular_file()) continue;
      const std::string ext = entry.path().extension().string();
      if (entry.path().string().find("/tests/data/") != std::string::npos) continue;  // fixtures
      if (ext == ".md" || ext == ".h" || ext == ".cpp" || ext == ".cu" || ext == ".cuh" || ext == ".sh" ||
          ext == ".py" || ext == ".toml" || entry.path().filename() == "run")
        out.push_back(entry.path());
    }
  }
  return out;
}

// Path-like words: a project folder, a slash, then path characters.
std::vector<std::string> named_paths(const std::string& text) {
  static const std::regex path_re(
      R"((?:^|[^A-Za-z0-9_./-])((?:tensor|autograd|cuda|io|nn|corpus|train|tools|tests|docs|configs|\.ci)/[A-Za-z0-9_./<>*{}-]*))");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), path_re); it != std::sregex_iterator(); ++it) {
    std::string p = (*it)[1].str();
    while (!p.empty() && (p.back() == '.' || p.back() == '-')) p.pop_back();  // sentence punctuation
    if (p.find_first_of("*<>{}") != std::string::npos) continue;               // globs and placeholders
    const std::string stem = fs::path(p).stem().string();
    if (stem.size() == 1 && std::isupper(static_cast<unsigned char>(stem[0]))) continue;  // "cuda/X.cu"
    // A file of the project ("nn/config.h") or a folder ("tensor/cpu/"); words
    // such as "train/valid/test" and data files named relative to a fixture
    // folder ("corpus/test.jsonl.gz") are neither.
    static const std::set<std::string> kExtensions = {".h", ".cpp", ".cu", ".cuh", ".md", ".sh", ".py", ".toml"};
    if (p.back() != '/' && !kExtensions.count(fs::path(p).extension().string())) continue;
    out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_CASE("every file path named in the docs and comments exists") {
  std::set<std::string> missing;
  int checked = 0;
  for (const fs::path& doc : documents()) {
    if (!fs::exists(doc)) continue;
    for (const std::string& p : named_paths(read_text(doc))) {
      ++checked;
      // "tensor/cpu/" names a folder; "nn/" alone names a layer.
      if (!fs::exists(kRoot / p)) missing.insert(fs::relative(doc, kRoot).string() + " names " + p);
    }
  }
  CHECK(checked > 200);  // the scan found the paths the docs are full of
  std::string report;
  for (const std::string& m : missing) report += "\n  " + m;
  INFO("paths that do not exist:", report);
  CHECK(missing.empty());
}
