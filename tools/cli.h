// cli.h — the command line of every lory_* tool and benchmark: a CLI11 App
// (Debian package libcli11-dev) with the conventions they share.
//
//   tools::App app("lory_info", "Prints parameter counts, FLOPs per token and training memory of a model.");
//   std::string config;
//   auto* config_opt = app.add_option("--config", config, "a config.json")->type_name("FILE");
//   int64_t context = 0;
//   app.add_option("--context", context, "sequence length")->type_name("L");
//   if (!app.parse_command_line(argc, argv)) return app.exit_code();  // --help, or a usage error
//   if (config_opt->count() == 0) app.usage_error("give --config");
//
// Options are written --name VALUE or --name=VALUE; given twice, the last one
// counts. --help (-h) prints the usage, every option with its default, and
// exits 0. An unknown option, a missing value, a value that does not convert
// (or fails its check), a missing required option: one line naming the
// option, then exit code 2. usage_error() does the same for the checks a tool
// makes itself.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace lory::tools {

// "a,b,,c" -> {"a", "b", "c"}: the items of a comma-separated list, empty ones dropped.
inline std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) items.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

// "1,2,3" -> {1, 2, 3}, such as a prompt's token ids. Throws
// CLI::ValidationError naming the item that is not an integer; an option
// checked with IntList (below) never does.
inline std::vector<int64_t> int_list(const std::string& list) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    int64_t x = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size())
      throw CLI::ValidationError("'" + item + "' is not an integer (expected a comma-separated list like 1,2,3)");
    out.push_back(x);
    start = comma + 1;
  }
  return out;
}

// ->check(tools::IntList): the value must be a comma-separated list of integers.
inline const CLI::Validator IntList(
    [](std::string& value) {
      try {
        int_list(value);
        return std::string();
      } catch (const CLI::ValidationError& e) {
        return std::string(e.what());
      }
    },
    "");

// A tool's command line (see the top of this file).
class App : public CLI::App {
 public:
  App(std::string name, std::string description) : CLI::App(std::move(description), std::move(name)) {
    option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    set_help_flag("-h,--help", "print this help and exit");
  }

  // False when the program should exit now with exit_code(): after --help
  // (the usage is printed), or after a usage error (the message is printed).
  bool parse_command_line(int argc, char** argv) {
    try {
      parse(argc, argv);
      return true;
    } catch (const CLI::RequiredError& e) {
      // CLI11 checks required options before unknown ones; an unknown option
      // (often a misspelt required one) is the more useful message.
      if (remaining_size(true) > 0) return report(CLI::ExtrasError(get_name(), remaining(true)));
      return report(e);
    } catch (const CLI::ParseError& e) {
      return report(e);
    }
  }
  int exit_code() const { return exit_code_; }

  // A usage error found after parsing: "<tool>: <message>", exit code 2.
  [[noreturn]] void usage_error(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\nrun '%s --help' for usage\n", get_name().c_str(), message.c_str(),
                 get_name().c_str());
    std::exit(2);
  }

 private:
  bool report(const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      exit_code_ = exit(e);  // --help: the usage (of the subcommand, when one was given) on stdout
    } else {
      std::fprintf(stderr, "%s: %s\nrun '%s --help' for usage\n", get_name().c_str(), e.what(), get_name().c_str());
      exit_code_ = 2;
    }
    return false;
  }

  int exit_code_ = 0;
};

}  // namespace lory::tools

