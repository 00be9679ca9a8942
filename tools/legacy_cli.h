// legacy_cli.h — TEMPORARY: the hand-written parser that every tool used
// before tools/cli.h moved them to CLI11. Only lory_plot.cpp, which is being
// replaced by a matplotlib script, still uses it (CMake defines
// LORY_LEGACY_CLI for that target alone, and tools/cli.h includes this file
// then). Delete this file, and the #ifdef at the end of tools/cli.h, together
// with tools/lory_plot.cpp.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace lory::tools {

class Cli {
 public:
  Cli(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  void option(const std::string& name, const std::string& metavar, const std::string& help,
              const std::string& default_value = "") {
    specs_.push_back({name, metavar, help, default_value, false});
  }
  void flag(const std::string& name, const std::string& help) { specs_.push_back({name, "", help, "", true}); }

  // False when the program should exit now with exit_code().
  bool parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(stdout);
        code_ = 0;
        return false;
      }
      if (arg.rfind("--", 0) != 0) return error("unexpected argument '" + arg + "'");
      std::string name = arg.substr(2), value;
      const auto eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) value = name.substr(eq + 1), name = name.substr(0, eq);
      const Spec* spec = find(name);
      if (!spec) return error("unknown option --" + name);
      if (spec->is_flag) {
        if (inline_value) return error("--" + name + " takes no value");
        values_[name] = std::string(1, '1');  // not = "1": GCC 12 -O3 false -Wrestrict (PR 105651)
        continue;
      }
      if (!inline_value) {
        if (i + 1 >= argc) return error("--" + name + " needs a value (" + spec->metavar + ")");
        value = argv[++i];
      }
      values_[name] = value;
    }
    return true;
  }
  int exit_code() const { return code_; }

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name) const {
    const auto it = values_.find(name);
    if (it != values_.end()) return it->second;
    const Spec* spec = find(name);
    return spec ? spec->default_value : "";
  }
  // Exits with a usage error when the option is absent.
  std::string require(const std::string& name) const {
    if (!has(name)) fatal("--" + name + " is required");
    return get(name);
  }
  long long get_int(const std::string& name) const {
    const std::string v = get(name);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end) fatal("--" + name + " must be an integer, got '" + v + "'");
    return x;
  }
  // A comma-separated list of integers ("1,2,3"), such as a prompt's token ids.
  std::vector<long long> get_int_list(const std::string& name) const {
    std::vector<long long> out;
    const std::string v = get(name);
    size_t start = 0;
    while (start <= v.size()) {
      const size_t comma = std::min(v.find(',', start), v.size());
      const std::string item = v.substr(start, comma - start);
      char* end = nullptr;
      const long long x = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end) fatal("--" + name + ": '" + item + "' is not an integer");
      out.push_back(x);
      start = comma + 1;
    }
    return out;
  }
  double get_double(const std::string& name) const {
    const std::string v = get(name);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end) fatal("--" + name + " must be a number, got '" + v + "'");
    return x;
  }

  [[noreturn]] void fatal(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), message.c_str());
    std::fprintf(stderr, "run '%s --help' for usage\n", program_.c_str());
    std::exit(2);
  }

  void usage(std::FILE* out) const {
    std::fprintf(out, "usage: %s [options]\n%s\n\noptions:\n", program_.c_str(), summary_.c_str());
    for (const Spec& s : specs_) {
      const std::string left = "  --" + s.name + (s.is_flag ? "" : " " + s.metavar);
      std::fprintf(out, "%-28s %s%s\n", left.c_str(), s.help.c_str(),
                   s.default_value.empty() ? "" : (" (default " + s.default_value + ")").c_str());
    }
    std::fprintf(out, "  %-26s %s\n", "--help", "print this help and exit");
  }

 private:
  struct Spec {
    std::string name, metavar, help, default_value;
    bool is_flag;
  };
  const Spec* find(const std::string& name) const {
    for (const Spec& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }
  bool error(const std::string& message) {
    std::fprintf(stderr, "%s: %s\n\n", program_.c_str(), message.c_str());
    usage(stderr);
    code_ = 2;
    return false;
  }

  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::map<std::string, std::string> values_;
  int code_ = 0;
};

}  // namespace lory::tools
