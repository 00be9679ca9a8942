// lory_plot — PNG plots of training runs, from the files the trainer writes.
//
//   lory_plot loss --runs runs/dense/metrics.jsonl=dense,runs/lory/metrics.jsonl --out loss.png --smooth 10
//   lory_plot routing --eval runs/lory/eval.json --layers 0,2,3 --out routing.png
//
// `loss` draws the training loss of each run against step (or tokens) as a
// line and its eval loss as markers of the same colour. `routing` draws, for
// chosen layers, the average routing weight of each expert on each domain's
// tokens as heatmaps on one colour scale: Fig. 6 of the Lory paper, where
// experts that specialise show up as bright cells in one domain's row.
//
// metrics.jsonl holds one JSON object per line: {"type":"train","step":..,
// "tokens":..,"loss":..}, {"type":"eval","step":..,"tokens":..,"loss":..}, and
// other types, which are ignored, as are unknown keys. A run resumed from a
// checkpoint logs some steps again; a record at a step at or below an earlier
// one replaces the earlier records from that step on (for a train record,
// the eval records too).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tools/cli.h"
#include "tools/plot/charts.h"
#include "tools/plot/png.h"

using namespace lory;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// ---- loss -------------------------------------------------------------------

// One curve of a run: parallel vectors, one entry per record.
struct Curve {
  std::vector<double> step, tokens, loss;
  // Drops the records at step s and later.
  void truncate(double s) {
    while (!step.empty() && step.back() >= s) step.pop_back(), tokens.pop_back(), loss.pop_back();
  }
  void add(double s, double t, double l) {
    truncate(s);
    step.push_back(s), tokens.push_back(t), loss.push_back(l);
  }
};

struct Run {
  std::string path, label;
  Curve train, eval;
};

// A number field of a record; "loss" may be null, which is how JSON writers
// spell NaN (the loss of a diverged step), and reads as NaN.
double number_field(const json& record, const char* key, const std::string& where, bool null_is_nan = false) {
  const auto it = record.find(key);
  LORY_CHECK(it != record.end(), where, ": the ", record.value("type", std::string()), " record has no \"", key, "\"");
  if (null_is_nan && it->is_null()) return NAN;
  LORY_CHECK(it->is_number(), where, ": \"", key, "\" must be a number, got ", it->dump());
  return it->get<double>();
}

Run read_metrics(const std::string& path, const std::string& label) {
  std::ifstream in(path);
  LORY_CHECK(in, "cannot open ", path);
  Run run{path, label, {}, {}};
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    json record;
    try {
      record = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, ": not valid JSON: ", e.what());
    }
    LORY_CHECK(record.is_object(), where, ": not a JSON object");
    const auto type = record.find("type");
    LORY_CHECK(type != record.end() && type->is_string(), where, ": the record has no string \"type\"");
    const bool is_train = *type == "train", is_eval = *type == "eval";
    if (!is_train && !is_eval) continue;
    const double step = number_field(record, "step", where);
    const double tokens = record.contains("tokens") ? number_field(record, "tokens", where) : NAN;
    const double loss = number_field(record, "loss", where, true);
    // A train step logged again means the run resumed from an earlier
    // checkpoint: evals from that step on belong to the abandoned attempt.
    if (is_train && !run.train.step.empty() && step <= run.train.step.back()) run.eval.truncate(step);
    (is_train ? run.train : run.eval).add(step, tokens, loss);
  }
  LORY_CHECK(!in.bad(), "cannot read ", path);
  LORY_CHECK(!run.train.step.empty() || !run.eval.step.empty(), path, " has no train or eval records");
  return run;
}

// Trailing moving average over the last `window` values, NaN ones left out.
std::vector<double> moving_average(const std::vector<double>& y, int window) {
  std::vector<double> out(y.size());
  double sum = 0;
  int count = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isfinite(y[i])) sum += y[i], ++count;
    if (i >= static_cast<size_t>(window) && std::isfinite(y[i - window])) sum -= y[i - window], --count;
    out[i] = count > 0 ? sum / count : NAN;
  }
  return out;
}

// "a.jsonl=label,b.jsonl" -> (path, label) pairs; the label defaults to the
// name of the run directory holding the file.
std::vector<std::pair<std::string, std::string>> parse_runs(const std::string& list) {
  std::vector<std::pair<std::string, std::string>> runs;
  for (const std::string& item : tools::split_commas(list)) {
    const size_t eq = item.rfind('=');
    std::string path = item.substr(0, eq), label = eq == std::string::npos ? "" : item.substr(eq + 1);
    LORY_CHECK(!path.empty(), "--runs: '", item, "' has no file before '='");
    if (label.empty()) {
      label = std::filesystem::absolute(path).lexically_normal().parent_path().filename().string();
      if (label.empty()) label = std::filesystem::path(path).stem().string();
    }
    runs.emplace_back(path, label);
  }
  return runs;
}

int plot_loss(int argc, char** argv) {
  tools::Cli cli("lory_plot loss", "Plots training loss (lines) and eval loss (markers) of runs against step.");
  cli.option("runs", "LIST", "metrics.jsonl files, comma-separated, each optionally =LABEL (default: its directory)");
  cli.option("metrics", "LIST", "the same as --runs (both may be given)");
  cli.option("out", "PNG", "the image to write");
  cli.option("x", "AXIS", "step or tokens", "step");
  cli.option("smooth", "N", "moving average of the last N train points (1: none)", "1");
  cli.option("title", "TEXT", "the chart's title", "Training loss");
  cli.flag("log-y", "logarithmic loss axis");
  cli.option("width", "PX", "image width", "1000");
  cli.option("height", "PX", "image height", "600");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string out = cli.require("out");
  const std::string list = cli.get("runs") + "," + cli.get("metrics");
  const std::string x_axis = cli.get("x");
  if (x_axis != "step" && x_axis != "tokens") cli.fatal("--x must be step or tokens, got '" + x_axis + "'");
  const long long smooth = cli.get_int("smooth"), width = cli.get_int("width"), height = cli.get_int("height");
  if (smooth < 1 || smooth > 1000000) cli.fatal("--smooth must be between 1 and 1000000");
  if (width < 1 || height < 1 || width > 16384 || height > 16384) cli.fatal("--width and --height must be 1..16384");
  const auto specs = parse_runs(list);
  if (specs.empty()) cli.fatal("give at least one metrics.jsonl with --runs");

  std::vector<plot::Series> series;
  size_t points = 0;
  for (size_t r = 0; r < specs.size(); ++r) {
    const Run run = read_metrics(specs[r].first, specs[r].second);
    const plot::Rgb colour = plot::palette(r);
    const bool tokens = x_axis == "tokens";
    auto xs = [&](const Curve& c) {
      if (tokens)
        for (size_t i = 0; i < c.tokens.size(); ++i)
          LORY_CHECK(!std::isnan(c.tokens[i]), run.path, ": a record at step ", c.step[i],
                     " has no \"tokens\" (needed by --x tokens)");
      return tokens ? c.tokens : c.step;
    };
    if (!run.train.step.empty()) {
      if (smooth > 1) {
        // The raw curve faintly behind its average, as TensorBoard does, so the noise stays visible.
        series.push_back(
            {"", xs(run.train), run.train.loss, plot::SeriesStyle::line, plot::mix(colour, plot::kWhite, 0.75)});
        series.push_back({run.label + " (mean of " + std::to_string(smooth) + ")", xs(run.train),
                          moving_average(run.train.loss, static_cast<int>(smooth)), plot::SeriesStyle::line, colour});
      } else {
        series.push_back({run.label, xs(run.train), run.train.loss, plot::SeriesStyle::line, colour});
      }
      points += run.train.step.size();
    }
    if (!run.eval.step.empty()) {
      series.push_back({run.label + " eval", xs(run.eval), run.eval.loss, plot::SeriesStyle::markers, colour});
      points += run.eval.step.size();
    }
  }
  plot::LineChartOptions options;
  options.title = cli.get("title");
  options.x_label = x_axis == "tokens" ? "tokens" : "step";
  options.y_label = "loss (nats/token)";
  options.width = static_cast<int>(width), options.height = static_cast<int>(height);
  options.log_y = cli.has("log-y");
  plot::write_png(plot::line_chart(series, options), out);
  std::printf("lory_plot: wrote %s (%zu run%s, %zu points)\n", out.c_str(), specs.size(), specs.size() == 1 ? "" : "s",
              points);
  return 0;
}

// ---- routing ----------------------------------------------------------------

int plot_routing(int argc, char** argv) {
  tools::Cli cli("lory_plot routing",
                 "Plots the mean routing weight of each expert on each domain, for chosen layers (Lory Fig. 6).");
  cli.option("eval", "JSON", "an eval.json written by lory_eval or the trainer");
  cli.option("out", "PNG", "the image to write");
  cli.option("layers", "LIST", "comma-separated layer indices (default: first, middle, last)");
  cli.option("title", "TEXT", "the chart's title (default: names the checkpoint)");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  const std::string path = cli.require("eval"), out = cli.require("out");

  std::ifstream in(path);
  LORY_CHECK(in, "cannot open ", path);
  ordered_json doc;  // ordered: the heatmap's rows keep the file's order of domains
  try {
    doc = ordered_json::parse(in);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  LORY_CHECK(doc.is_object(), path, ": not a JSON object");
  const auto weights = doc.find("routing_weights");
  const auto experts = doc.find("num_experts");
  const bool dense = (experts != doc.end() && experts->is_number() && experts->get<double>() == 0) ||
                     weights == doc.end() || weights->is_null() || weights->empty();
  LORY_CHECK(!dense, path, " is from a dense model: no routing weights to plot");
  LORY_CHECK(weights->is_object(), path, ": \"routing_weights\" must be an object of domain -> [layer][expert]");

  // weights[domain][layer][expert]; every domain must have the same shape.
  std::vector<std::string> domains;
  std::vector<std::vector<std::vector<double>>> w;
  for (const auto& [domain, layers] : weights->items()) {
    const std::string where = path + ": routing_weights[\"" + domain + "\"]";
    LORY_CHECK(layers.is_array() && !layers.empty(), where, " must be a non-empty array of layers");
    std::vector<std::vector<double>> per_layer;
    for (size_t l = 0; l < layers.size(); ++l) {
      LORY_CHECK(layers[l].is_array() && !layers[l].empty(), where, "[", l, "] must be a non-empty array of experts");
      std::vector<double> row;
      for (const ordered_json& v : layers[l]) {
        LORY_CHECK(v.is_number() || v.is_null(), where, "[", l, "] holds ", v.dump(), ", not a number");
        row.push_back(v.is_null() ? NAN : v.get<double>());
      }
      if (!w.empty() || !per_layer.empty()) {
        const size_t experts = per_layer.empty() ? w[0][0].size() : per_layer[0].size();
        LORY_CHECK(row.size() == experts, where, "[", l, "] has ", row.size(), " experts, expected ", experts);
      }
      per_layer.push_back(std::move(row));
    }
    if (!w.empty())
      LORY_CHECK(per_layer.size() == w[0].size(), where, " has ", per_layer.size(), " layers but routing_weights[\"",
                 domains[0], "\"] has ", w[0].size());
    domains.push_back(domain);
    w.push_back(std::move(per_layer));
  }
  const long long num_layers = static_cast<long long>(w[0].size());
  const size_t num_experts = w[0][0].size();

  std::vector<long long> layers;
  if (cli.has("layers")) {
    layers = cli.get_int_list("layers");
    for (long long l : layers)
      if (l < 0 || l >= num_layers)
        cli.fatal("--layers: layer " + std::to_string(l) + " is out of range: the model has " +
                  std::to_string(num_layers) + " layers (0.." + std::to_string(num_layers - 1) + ")");
  } else {
    layers = {0, num_layers / 2, num_layers - 1};
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  }

  std::vector<plot::HeatmapPanel> panels;
  for (long long l : layers) {
    plot::HeatmapPanel p;
    p.title = "layer " + std::to_string(l);
    p.row_labels = domains;
    for (size_t d = 0; d < domains.size(); ++d) p.values.push_back(w[d][static_cast<size_t>(l)]);
    panels.push_back(std::move(p));
  }
  plot::HeatmapOptions options;
  const std::string checkpoint = doc.value("checkpoint", std::string());
  options.title = cli.has("title")     ? cli.get("title")
                  : checkpoint.empty() ? "Mean routing weight of each expert, by domain"
                                       : "Mean routing weight of each expert, by domain: " + checkpoint;
  options.x_label = "expert";
  options.colour_label = "routing weight";
  plot::write_png(plot::heatmap_panels(panels, options), out);
  std::printf("lory_plot: wrote %s (%zu layer%s, %zu domain%s, %zu experts)\n", out.c_str(), layers.size(),
              layers.size() == 1 ? "" : "s", domains.size(), domains.size() == 1 ? "" : "s", num_experts);
  return 0;
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: lory_plot loss --runs FILE[=LABEL][,FILE[=LABEL]...] --out PNG [options]\n"
               "       lory_plot routing --eval eval.json --out PNG [--layers 0,2,3] [options]\n"
               "PNG plots of training runs: loss curves from metrics.jsonl, routing heatmaps from eval.json.\n"
               "run 'lory_plot loss --help' or 'lory_plot routing --help' for the options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    usage(stdout);
    return 0;
  }
  try {
    // The subcommand takes argv[0]'s place, so Cli sees only the options.
    if (command == "loss") return plot_loss(argc - 1, argv + 1);
    if (command == "routing") return plot_routing(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lory_plot: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "lory_plot: unknown command '%s'\n\n", command.c_str());
  usage(stderr);
  return 2;
}
