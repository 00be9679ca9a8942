// charts.h — the two charts of a training run: a line chart (loss against
// step or tokens, several runs, eval points as markers) and heatmap panels
// (the average routing weight of each expert for each domain, one panel per
// layer, as in Fig. 6 of the Lory paper). Both return an Image; write it with
// write_png (png.h).
//
//   Series train{"lory-8e", steps, losses};
//   Series eval{"lory-8e eval", eval_steps, eval_losses, SeriesStyle::markers, palette(0)};
//   write_png(line_chart({train, eval}, {.title = "Training loss", .x_label = "step", .y_label = "loss"}), "loss.png");
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/plot/canvas.h"
#include "tools/plot/png.h"

namespace lory::plot {

// ---- ticks ----------------------------------------------------------------

// Ticks on a linear axis: multiples of a 1-2-5 step (1, 2 or 5 times a power
// of ten), from the multiple at or below lo to the one at or above hi, using
// the smallest such step that gives at most max_ticks ticks. nice_ticks(0, 1, 6)
// is {0, 0.2, 0.4, 0.6, 0.8, 1}. Tick i is computed as i * step in one
// rounding, so 0.3 is the double nearest 0.3, not 0.1 + 0.1 + 0.1. Throws
// unless lo < hi are finite and max_ticks >= 2.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

// Ticks for a logarithmic axis over [lo, hi] (0 < lo < hi), all inside it:
// 1, 2, 5 x 10^k when that gives 3 to max_ticks ticks, else powers of ten
// (every one, or every 2nd, 5th, ... decade) when that gives at least 2, else
// (a range of less than a decade) the linear nice_ticks that fall inside.
std::vector<double> log_ticks(double lo, double hi, int max_ticks);

// A compact tick label for `value` on an axis whose ticks are `step` apart:
// as many decimals as the step needs and no trailing zeros ("2.5", "3"),
// thousands as k, M, B, T ("1.2k", "40M"), and below 0.001 scientific
// ("3e-4"). Values within step * 1e-9 of zero are "0".
std::string format_tick(double value, double step);
// `value` to `significant` digits, compactly: "0.125", "3.2e-5", "1.23e6".
std::string format_value(double value, int significant = 3);

// ---- line chart -----------------------------------------------------------

enum class SeriesStyle { line, markers };

struct Series {
  std::string name;  // the legend label; a series with no name is left out of the legend
  std::vector<double> x, y;
  SeriesStyle style = SeriesStyle::line;
  std::optional<Rgb> colour;  // default: palette(i) for the i-th series

  Series() = default;
  Series(std::string name, std::vector<double> x, std::vector<double> y, SeriesStyle style = SeriesStyle::line,
         std::optional<Rgb> colour = std::nullopt)
      : name(std::move(name)), x(std::move(x)), y(std::move(y)), style(style), colour(colour) {}
};

struct LineChartOptions {
  std::string title, x_label, y_label;
  int width = 1000, height = 600;
  bool log_y = false;  // points with y <= 0 are then skipped like NaN
};

// Where the chart puts things; line_chart draws with exactly this layout.
struct LineChartLayout {
  Rect plot;  // the plot area inside the frame
  int text_scale = 1;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // the axes' ranges, in data units
  bool log_y = false;
  std::vector<double> x_ticks, y_ticks;
  std::vector<std::string> x_labels, y_labels;
  // The centre of the pixel a data point falls in (unclipped).
  Point to_pixel(double x, double y) const;
};

// Throws, naming the series, when there is no series, a series has no points
// or x and y of different lengths, no point at all is finite (and positive,
// with log_y), or the image is too small for its labels.
LineChartLayout line_chart_layout(const std::vector<Series>& series, const LineChartOptions& options);

// Each series as a line (or markers) in its colour; non-finite points are
// skipped (the line joins their neighbours). Series may cover different x
// ranges. The legend goes in the corner of the plot area that covers the
// fewest drawn pixels.
Image line_chart(const std::vector<Series>& series, const LineChartOptions& options);

// ---- heatmap panels -------------------------------------------------------

struct HeatmapPanel {
  std::string title;                        // above the panel, e.g. "layer 3"
  std::vector<std::string> row_labels;      // one per row, e.g. domain names
  std::vector<std::string> col_labels;      // one per column; empty means "0", "1", ...
  std::vector<std::vector<double>> values;  // values[row][col]
};

struct HeatmapOptions {
  std::string title;
  std::string x_label;       // under each panel, e.g. "expert"
  std::string colour_label;  // beside the colour bar, e.g. "mean routing weight"
  bool annotate = true;      // write each value in its cell where it fits
};

struct HeatmapLayout {
  int width = 0, height = 0;
  int text_scale = 1;
  std::vector<Rect> grids;             // per panel: the rectangle of all its cells
  std::vector<bool> row_labels_shown;  // per panel: false when they repeat the previous panel's
  int cell_w = 0, cell_h = 0;
  Rect colour_bar;
  double lo = 0, hi = 1;  // the shared colour scale: lo is viridis(0), hi viridis(1)
  // The coloured rectangle of one cell (cells are separated by a 1-pixel gap).
  Rect cell(size_t panel, size_t row, size_t col) const;
  // The colour of `value`: viridis((value - lo) / (hi - lo)), or viridis(0.5) when hi == lo.
  Rgb colour(double value) const;
};

// Throws, naming the panel and row, when there is no panel, a panel is empty,
// its rows differ in length, its labels do not match its rows or columns, or
// no value at all is finite.
HeatmapLayout heatmap_layout(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options);

// The panels side by side on one colour scale (the minimum and maximum over
// all of them), with a colour bar labelled with both. Non-finite values are
// grey. The image's size follows from the number of rows and columns.
Image heatmap_panels(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options);

}  // namespace lory::plot
