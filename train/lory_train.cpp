// lory_train.cpp — the command users run:
//
//   lory_train --config configs/cpu-lory-8e.toml [--section.key=value ...] [--resume]
//
// Exit status: 0 when the schedule finished (or --stop-after was reached),
// 128 + signal after SIGINT/SIGTERM (a checkpoint was written first), 3 when
// a NaN/Inf stopped the run, 2 for a bad command line or config, 1 for any
// other error.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "train/train_config.h"
#include "train/trainer.h"

using namespace lory;
using namespace lory::train;

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: lory_train --config FILE [--section.key=VALUE ...] [options]\n"
               "Pre-trains a dense or Lory model (paper §4.1): dense warm-up, upcycling into experts,\n"
               "AdamW with warm-up and cosine decay, periodic evaluation and checkpoints.\n\n"
               "options:\n"
               "  --config FILE          the run's TOML config (see configs/)\n"
               "  --section.key=VALUE    override one config key, e.g. --optim.lr=3e-4\n"
               "  --resume               continue from the newest checkpoint in checkpoint.dir\n"
               "  --stop-after N         checkpoint and exit after step N (the schedule is unchanged)\n"
               "  --print-config         print the resolved config and exit\n"
               "  --help-config          list every config key with its default and meaning\n"
               "  --quiet                no progress lines\n"
               "  --help                 this text\n");
}

extern "C" void on_stop_signal(int sig) {
  // First signal: finish the step, checkpoint, exit. A second one kills at once.
  Trainer::stop_signal.store(sig);
  std::signal(sig, SIG_DFL);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "lory_train: %s\nrun 'lory_train --help' for usage\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<ConfigOverride> overrides;
  bool resume = false, print_config = false, quiet = false;
  long long stop_after = -1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--help-config") {
      std::printf("config keys (section.key, default, meaning):\n%s", describe_config_keys().c_str());
      return 0;
    }
    if (arg.rfind("--", 0) != 0) usage_error("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) value = name.substr(eq + 1), name = name.substr(0, eq);
    auto take_value = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) usage_error("--" + name + " needs a value");
      return argv[++i];
    };
    if (name == "resume" || name == "print-config" || name == "quiet") {
      if (inline_value) usage_error("--" + name + " takes no value");
      (name == "resume" ? resume : name == "quiet" ? quiet : print_config) = true;
    } else if (name == "config") {
      config_path = take_value();
    } else if (name == "stop-after") {
      const std::string v = take_value();
      char* end = nullptr;
      stop_after = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || stop_after < 1) usage_error("--stop-after must be a step >= 1, got '" + v + "'");
    } else if (name.find('.') != std::string::npos) {
      overrides.push_back({name, take_value()});
    } else {
      usage_error("unknown option --" + name);
    }
  }
  if (config_path.empty()) usage_error("--config FILE is required");

  TrainConfig config;
  try {
    config = load_train_config(config_path, overrides);
  } catch (const Error& e) {
    std::fprintf(stderr, "lory_train: %s\n", e.what());
    return 2;
  }
  if (print_config) {
    std::printf("%s", train_config_to_toml(config).c_str());
    return 0;
  }
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  try {
    Trainer trainer(config, resume, quiet);
    if (stop_after > 0) trainer.stop_after(stop_after);
    const RunResult r = trainer.run();
    switch (r.end) {
      case RunEnd::finished:
        std::printf("done: %lld steps\n", static_cast<long long>(r.step));
        return 0;
      case RunEnd::stopped: {
        const int sig = Trainer::stop_signal.load();
        std::printf("stopped after step %lld%s; continue with --resume\n", static_cast<long long>(r.step),
                    sig ? (std::string(" (") + strsignal(sig) + ")").c_str() : "");
        return sig ? 128 + sig : 0;
      }
      case RunEnd::non_finite:
        std::fprintf(stderr, "lory_train: stopped: %s\n", r.message.c_str());
        return 3;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_train: %s\n", e.what());
    return 1;
  }
  return 1;
}
