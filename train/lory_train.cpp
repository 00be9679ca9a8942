// lory_train.cpp — the command users run:
//
//   lory_train --config configs/cpu-lory-8e.toml [--section.key=value ...] [--resume] [--profile[=N]]
//
// The command line is CLI11's, as every tool's (tools/cli.h), plus config
// overrides: any `--section.key=VALUE` or `--section.key VALUE` overrides one
// key of the TOML config. CLI11 knows the fixed options and leaves every
// other argument over (allow_extras); read_overrides takes the left-overs, in
// order, as ConfigOverrides, and load_train_config checks them against the
// key table (an unknown key stops the run, naming it and its section's keys).
//
// Data parallelism: `mpirun -np N lory_train ...` (or srun) starts N ranks
// (train/job.h); every rank runs this same main, rank 0 prints.
//
// Exit status: 0 when the schedule finished (or --stop-after was reached),
// 128 + signal after SIGINT/SIGTERM/SIGUSR1 (a checkpoint was written
// first), 3 when a NaN/Inf stopped the run, 2 for a bad command line or
// config, 1 for any other error (on any rank: the whole job ends).
#include <CLI/CLI.hpp>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "train/job.h"
#include "train/train_config.h"
#include "train/trainer.h"

using namespace lory;
using namespace lory::train;

namespace {

extern "C" void on_stop_signal(int sig) {
  // First signal: finish the step, checkpoint, exit. A second one kills at once.
  Trainer::stop_signal.store(sig);
  std::signal(sig, SIG_DFL);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "lory_train: %s\nrun 'lory_train --help' for usage\n", message.c_str());
  std::exit(2);
}

// The arguments CLI11 did not know, in order: `--section.key=VALUE`, or
// `--section.key` and VALUE as two arguments. Anything else is a usage error.
std::vector<ConfigOverride> read_overrides(const std::vector<std::string>& extras) {
  std::vector<ConfigOverride> overrides;
  for (size_t i = 0; i < extras.size(); ++i) {
    const std::string& arg = extras[i];
    if (arg.rfind("--", 0) != 0) usage_error("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    if (eq != std::string::npos) value = name.substr(eq + 1), name.resize(eq);
    if (name.find('.') == std::string::npos) usage_error("unknown option --" + name);
    if (eq == std::string::npos) {
      if (i + 1 >= extras.size()) usage_error("--" + name + " needs a value");
      value = extras[++i];
    }
    overrides.push_back({name, value});
  }
  return overrides;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Pre-trains a dense or Lory model (paper §4.1): dense warm-up, upcycling, AdamW, evaluation, checkpoints.",
      "lory_train");
  app.set_help_flag("-h,--help", "print this help and exit");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.allow_extras();  // the config overrides, read below
  std::string config_path;
  bool resume = false, print_config = false, quiet = false;
  long long stop_after = -1, profile_steps = 0;
  app.add_option("--config", config_path, "the run's TOML config (see configs/)")->type_name("FILE")->required();
  app.add_flag("--resume", resume, "continue from the newest checkpoint in checkpoint.dir");
  app.add_option("--stop-after", stop_after, "checkpoint and exit after step N (the schedule is unchanged)")
      ->type_name("N")
      ->check([](const std::string& v) {
        long long x = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        return ec == std::errc() && end == v.data() + v.size() && x >= 1 ? std::string()
                                                                         : "must be a step >= 1, got '" + v + "'";
      });
  app.add_option("--profile", profile_steps,
                 "time every op, backward node and optimizer stage of N steps (3 when N is left out) after a "
                 "warm-up step; print the table (tensor/profiler.h) and write profile.json next to metrics.jsonl")
      ->expected(0, 1)
      ->default_str("3")
      ->type_name("N")
      ->check(CLI::Range(1LL, 1000000LL));
  app.add_flag("--print-config", print_config, "print the resolved config and exit");
  app.add_flag_callback(
      "--help-config",
      [] {
        std::printf("config keys (section.key, default, meaning):\n%s", describe_config_keys().c_str());
        throw CLI::Success();
      },
      "list every config key with its default and meaning, and exit");
  app.add_flag("--quiet", quiet, "no progress lines");
  app.footer(
      "Config overrides:\n"
      "  --section.key=VALUE         override one key of the config, e.g. --optim.lr=3e-4 or\n"
      "  --section.key VALUE         --optim.lr 3e-4; given twice, the last one counts;\n"
      "                              --help-config lists every key");

  std::vector<ConfigOverride> overrides;
  try {
    app.parse(argc, argv);
    overrides = read_overrides(app.remaining());
  } catch (const CLI::RequiredError& e) {
    read_overrides(app.remaining());  // an unknown option is reported before a missing --config
    usage_error(e.what());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != static_cast<int>(CLI::ExitCodes::Success)) usage_error(e.what());
    return app.exit(e);  // --help (the usage on stdout) or --help-config (printed already)
  }

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
  // SIGUSR1 too: mpirun forwards it to every rank at once, while a SIGTERM
  // to mpirun reaches the ranks only after odls_base_sigkill_timeout and is
  // followed by SIGKILL as soon again (README, "Training on many machines").
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) std::signal(sig, on_stop_signal);
  return run_job(&argc, &argv, "lory_train", [&](Communicator& comm) {
    std::unique_ptr<Trainer> trainer;
    RunResult r;
    try {
      trainer = std::make_unique<Trainer>(config, resume, quiet, &comm);
      if (stop_after > 0) trainer->stop_after(stop_after);
      if (profile_steps > 0) trainer->profile(profile_steps);
      r = trainer->run();
    } catch (...) {
      // With other ranks, run_job ends the job at once (MPI_Abort); the
      // trainer is not destroyed first, because its destructors wait for
      // collectives in flight that the other ranks may never finish.
      if (comm.world() > 1) (void)trainer.release();
      throw;
    }
    const bool root = comm.is_root();
    switch (r.end) {
      case RunEnd::finished:
        if (root) std::printf("done: %lld steps\n", static_cast<long long>(r.step));
        return 0;
      case RunEnd::stopped: {
        const int sig = Trainer::stop_signal.load();
        if (root)
          std::printf("stopped after step %lld%s; continue with --resume\n", static_cast<long long>(r.step),
                      sig ? (std::string(" (") + strsignal(sig) + ")").c_str() : "");
        return sig ? 128 + sig : 0;
      }
      case RunEnd::non_finite:
        if (root) std::fprintf(stderr, "lory_train: stopped: %s\n", r.message.c_str());
        return 3;
    }
    return 1;
  });
}
