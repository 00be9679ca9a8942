// charts.cpp — see charts.h.
#include "tools/plot/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tensor/error.h"

namespace lory::plot {

namespace {

constexpr Rgb kInk{30, 30, 30};       // titles, labels
constexpr Rgb kMuted{80, 80, 80};     // tick labels
constexpr Rgb kFrame{110, 110, 110};  // plot frame and tick marks
constexpr Rgb kGrid{228, 228, 228};   // grid lines
constexpr Rgb kLegendBorder{190, 190, 190};

// A 1-2-5 step: m * 10^e with m in {1, 2, 5}.
struct Step {
  int m = 1, e = 0;
  double value() const { return m * std::pow(10.0, e); }
  // i * step in one rounding: dividing by an exact power of ten gives the
  // double nearest the decimal (3 * 1 / 10 is 0.3; 3 * 0.1 is not).
  double times(double i) const { return e >= 0 ? i * m * std::pow(10.0, e) : i * m / std::pow(10.0, -e); }
  Step next() const { return m == 1 ? Step{2, e} : m == 2 ? Step{5, e} : Step{1, e + 1}; }
};

// The first and last multiple of the step around [lo, hi]; the slack keeps a
// bound that is a multiple up to rounding (1 / 0.2) from adding a tick.
void tick_range(double lo, double hi, Step s, double& first, double& last) {
  first = std::floor(lo / s.value() + 1e-9);
  last = std::ceil(hi / s.value() - 1e-9);
}

Step nice_step(double lo, double hi, int max_ticks) {
  LORY_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo),
             "nice_ticks: need finite lo < hi, got [", lo, ", ", hi, "]");
  LORY_CHECK(max_ticks >= 2, "nice_ticks: max_ticks must be >= 2, got ", max_ticks);
  // Start one decade below the step that gives max_ticks, then take the
  // first 1-2-5 step whose tick count fits.
  Step s{1, static_cast<int>(std::floor(std::log10((hi - lo) / max_ticks))) - 1};
  for (;; s = s.next()) {
    double first = 0, last = 0;
    tick_range(lo, hi, s, first, last);
    if (last - first + 1 <= max_ticks) return s;
  }
}

// Ticks and their labels for one axis.
struct TickSet {
  std::vector<double> values;
  std::vector<std::string> labels;
};

TickSet linear_tick_set(double lo, double hi, int max_ticks) {
  const Step s = nice_step(lo, hi, max_ticks);
  double first = 0, last = 0;
  tick_range(lo, hi, s, first, last);
  TickSet t;
  for (double i = first; i <= last; ++i) {
    t.values.push_back(s.times(i));
    t.labels.push_back(format_tick(t.values.back(), s.value()));
  }
  return t;
}

// With `loose`, the linear fallback keeps the positive ticks just outside
// [lo, hi] too, for an axis that is then widened to them.
TickSet log_tick_set(double lo, double hi, int max_ticks, bool loose = false) {
  LORY_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo < hi, "log_ticks: need finite 0 < lo < hi, got [",
             lo, ", ", hi, "]");
  LORY_CHECK(max_ticks >= 2, "log_ticks: max_ticks must be >= 2, got ", max_ticks);
  const int e0 = static_cast<int>(std::floor(std::log10(lo))), e1 = static_cast<int>(std::ceil(std::log10(hi)));
  auto collect = [&](std::initializer_list<int> mantissas, int every) {
    TickSet t;
    for (int e = e0; e <= e1; ++e) {
      if (((e % every) + every) % every != 0) continue;
      for (int m : mantissas) {
        const double v = Step{m, e}.times(1);
        if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12)) {
          t.values.push_back(v);
          t.labels.push_back(format_tick(v, v));
        }
      }
    }
    return t;
  };
  TickSet t = collect({1, 2, 5}, 1);
  if (t.values.size() >= 3 && static_cast<int>(t.values.size()) <= max_ticks) return t;
  for (int every : {1, 2, 5, 10, 20, 50, 100}) {
    t = collect({1}, every);
    if (static_cast<int>(t.values.size()) <= max_ticks) break;
  }
  if (t.values.size() >= 2) return t;
  // Less than a decade: linear ticks, keeping those inside [lo, hi].
  TickSet lin = linear_tick_set(lo, hi, max_ticks), inside;
  for (size_t i = 0; i < lin.values.size(); ++i)
    if (loose ? lin.values[i] > 0 : lin.values[i] >= lo && lin.values[i] <= hi) {
      inside.values.push_back(lin.values[i]);
      inside.labels.push_back(lin.labels[i]);
    }
  return inside;
}

// printf into a std::string.
template <typename... Args>
std::string sprint(const char* format, Args... args) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

// "2.500" -> "2.5", "3.000" -> "3", "1.50e-04" -> "1.5e-4": trailing zeros of
// the mantissa, a bare point, a '+' and leading zeros of the exponent go.
std::string tidy_number(std::string s) {
  const size_t e = s.find_first_of("eE");
  std::string mantissa = s.substr(0, e), exponent = e == std::string::npos ? "" : s.substr(e + 1);
  if (mantissa.find('.') != std::string::npos) {
    while (mantissa.back() == '0') mantissa.pop_back();
    if (mantissa.back() == '.') mantissa.pop_back();
  }
  if (exponent.empty()) return mantissa;
  const bool negative = exponent[0] == '-';
  size_t digits = exponent.find_first_not_of("+-");
  while (digits + 1 < exponent.size() && exponent[digits] == '0') ++digits;
  return mantissa + "e" + (negative ? "-" : "") + exponent.substr(digits);
}

// Decimal exponent of a (positive) step, robust to 0.1 being slightly above or below a tenth.
int decade(double v) { return static_cast<int>(std::floor(std::log10(v) + 1e-9)); }

bool drawable(double x, double y, bool log_y) { return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0); }

// Bold text: the glyphs drawn twice, one pixel apart.
void bold_text(Canvas& canvas, int x, int y, const std::string& text, Rgb c, int scale) {
  canvas.text(x, y, text, c, scale);
  canvas.text(x + 1, y, text, c, scale);
}

int descent(int scale) { return kGlyphDescent * scale; }

}  // namespace

// ---- ticks ----------------------------------------------------------------

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  return linear_tick_set(lo, hi, max_ticks).values;
}

std::vector<double> log_ticks(double lo, double hi, int max_ticks) { return log_tick_set(lo, hi, max_ticks).values; }

std::string format_tick(double value, double step) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  step = std::abs(step);
  if (!(step > 0) || !std::isfinite(step)) return format_value(value);
  if (std::abs(value) <= step * 1e-9) return "0";
  const double a = std::abs(value);
  const int step_decade = decade(step);
  if (a >= 1e15 || a < 1e-3) {
    // Scientific: as many mantissa digits as separate neighbouring ticks.
    const int digits = std::clamp(decade(a) - step_decade, 0, 6);
    return tidy_number(sprint("%.*e", digits, value));
  }
  if (a >= 1000) {
    static constexpr struct {
      double unit;
      int decade;
      const char* suffix;
    } kUnits[] = {{1e12, 12, "T"}, {1e9, 9, "B"}, {1e6, 6, "M"}, {1e3, 3, "k"}};
    for (const auto& u : kUnits)
      if (a >= u.unit) {
        const int digits = std::clamp(u.decade - step_decade, 0, 9);
        return tidy_number(sprint("%.*f", digits, value / u.unit)) + u.suffix;
      }
  }
  return tidy_number(sprint("%.*f", std::clamp(-step_decade, 0, 12), value));
}

std::string format_value(double value, int significant) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  return tidy_number(sprint("%.*g", std::clamp(significant, 1, 17), value));
}

// ---- line chart -----------------------------------------------------------

Point LineChartLayout::to_pixel(double x, double y) const {
  const double fx = (x - x_lo) / (x_hi - x_lo);
  const double fy =
      log_y ? (std::log10(y) - std::log10(y_lo)) / (std::log10(y_hi) - std::log10(y_lo)) : (y - y_lo) / (y_hi - y_lo);
  // Pixel centres of the first to the last column (row) of the plot area.
  return {plot.x + 0.5 + fx * (plot.w - 1), plot.y + 0.5 + (1 - fy) * (plot.h - 1)};
}

LineChartLayout line_chart_layout(const std::vector<Series>& series, const LineChartOptions& options) {
  LORY_CHECK(!series.empty(), "line_chart: no series to draw");
  LORY_CHECK(options.width >= 200 && options.height >= 150 && options.width <= 16384 && options.height <= 16384,
             "line_chart: the image must be between 200x150 and 16384x16384 pixels, got ", options.width, "x",
             options.height);
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : series) {
    LORY_CHECK(s.x.size() == s.y.size(), "line_chart: series '", s.name, "' has ", s.x.size(), " x values but ",
               s.y.size(), " y values");
    LORY_CHECK(!s.x.empty(), "line_chart: series '", s.name, "' has no points");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i], options.log_y)) continue;
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
    }
  }
  LORY_CHECK(x_lo <= x_hi, "line_chart: no series has a finite point", options.log_y ? " with y > 0 (log-y)" : "");

  LineChartLayout L;
  L.log_y = options.log_y;
  const int s = L.text_scale = options.width >= 600 && options.height >= 360 ? 2 : 1;
  const int pad = 6 * s, tick_len = 3 * s, th = text_height(s);

  // A single x or y value still needs an axis around it.
  auto widen = [](double& lo, double& hi, bool log) {
    if (lo < hi) return;
    const double d = log ? 0.0 : (lo != 0 ? std::abs(lo) * 0.05 : 1.0);
    if (log)
      lo /= 1.5, hi *= 1.5;
    else
      lo -= d, hi += d;
  };
  widen(x_lo, x_hi, false);
  widen(y_lo, y_hi, options.log_y);

  // Vertical layout first: the y ticks depend only on the plot's height.
  const int top = pad + (options.title.empty() ? 0 : th + descent(s) + pad) + pad;
  const int bottom = tick_len + pad / 2 + th + descent(s) + pad + (options.x_label.empty() ? 0 : th + descent(s) + pad);
  const int plot_h = options.height - top - bottom;
  LORY_CHECK(plot_h >= 40, "line_chart: a ", options.width, "x", options.height,
             " image is too small for the title and labels");
  const int max_y_ticks = std::clamp(plot_h / (th * 3), 3, 12);
  TickSet yt;
  if (options.log_y) {
    // 3% of the decades each side, so the extremes do not touch the frame.
    const double l0 = std::log10(y_lo), l1 = std::log10(y_hi), m = 0.03 * (l1 - l0);
    L.y_lo = std::pow(10.0, l0 - m), L.y_hi = std::pow(10.0, l1 + m);
    yt = log_tick_set(L.y_lo, L.y_hi, max_y_ticks, true);
    // Linear ticks (less than a decade) widen the axis to the enclosing
    // ticks, so both ends are labelled; decade ticks lie inside already.
    L.y_lo = std::min(L.y_lo, yt.values.front()), L.y_hi = std::max(L.y_hi, yt.values.back());
  } else {
    const double m = 0.03 * (y_hi - y_lo);
    yt = linear_tick_set(y_lo - m, y_hi + m, max_y_ticks);
    L.y_lo = yt.values.front(), L.y_hi = yt.values.back();
  }
  L.y_ticks = yt.values, L.y_labels = yt.labels;

  int y_label_w = 0;
  for (const std::string& l : L.y_labels) y_label_w = std::max(y_label_w, text_width(l, s));
  const int left = pad + (options.y_label.empty() ? 0 : th + descent(s) + pad) + y_label_w + pad / 2 + tick_len;
  // The x ticks depend on the width, whose right margin holds half the last
  // x label: lay out with a guess, then measure.
  const int guess_w = options.width - left - 2 * pad;
  LORY_CHECK(guess_w >= 60, "line_chart: a ", options.width, "x", options.height,
             " image is too small for the y-axis labels");
  const int max_x_ticks = std::clamp(guess_w / (text_width("0000.0", s) + 4 * s), 3, 15);
  const TickSet xt = linear_tick_set(x_lo, x_hi, max_x_ticks);
  L.x_lo = xt.values.front(), L.x_hi = xt.values.back();
  L.x_ticks = xt.values, L.x_labels = xt.labels;
  const int right = std::max(2 * pad, text_width(L.x_labels.back(), s) / 2 + pad);
  L.plot = {left, top, options.width - left - right, plot_h};
  return L;
}

Image line_chart(const std::vector<Series>& series, const LineChartOptions& options) {
  const LineChartLayout L = line_chart_layout(series, options);
  const int s = L.text_scale, pad = 6 * s, tick_len = 3 * s, th = text_height(s);
  const double thickness = s == 2 ? 2.0 : 1.5, marker_radius = 2.0 * s + 0.5;
  Image image = make_image(options.width, options.height);
  Canvas canvas(image);
  const Rect& P = L.plot;

  // Grid, frame, ticks and their labels.
  for (size_t i = 0; i < L.x_ticks.size(); ++i) {
    const int x = static_cast<int>(L.to_pixel(L.x_ticks[i], L.y_lo).x);
    canvas.fill_rect({x, P.y, 1, P.h}, kGrid);
    canvas.fill_rect({x, P.bottom(), 1, tick_len + 1}, kFrame);
    const int w = text_width(L.x_labels[i], s);
    canvas.text(x - w / 2, P.bottom() + 1 + tick_len + pad / 2, L.x_labels[i], kMuted, s);
  }
  // Bottom to top; a label that would crowd the one below it is left out
  // (the top ticks of a log axis are close together), its grid line kept.
  int last_label_y = std::numeric_limits<int>::max();
  for (size_t i = 0; i < L.y_ticks.size(); ++i) {
    const int y = static_cast<int>(L.to_pixel(L.x_lo, L.y_ticks[i]).y);
    canvas.fill_rect({P.x, y, P.w, 1}, kGrid);
    canvas.fill_rect({P.x - 1 - tick_len, y, tick_len + 1, 1}, kFrame);
    if (last_label_y - y < th + 4 * s) continue;
    last_label_y = y;
    const int w = text_width(L.y_labels[i], s);
    canvas.text(P.x - 1 - tick_len - pad / 2 - w, y - th / 2, L.y_labels[i], kMuted, s);
  }
  canvas.stroke_rect({P.x - 1, P.y - 1, P.w + 2, P.h + 2}, kFrame);

  // Titles.
  if (!options.title.empty())
    bold_text(canvas, (options.width - text_width(options.title, s)) / 2, pad, options.title, kInk, s);
  if (!options.x_label.empty())
    canvas.text(P.x + (P.w - text_width(options.x_label, s)) / 2, options.height - pad - th - descent(s),
                options.x_label, kInk, s);
  if (!options.y_label.empty())
    canvas.text_up(pad, P.y + (P.h - text_width(options.y_label, s)) / 2, options.y_label, kInk, s);

  // The data: lines first, then markers on top of every line.
  auto colour_of = [&](size_t i) { return series[i].colour.value_or(palette(i)); };
  canvas.set_clip(P);
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].style != SeriesStyle::line) continue;
    std::vector<Point> points;
    for (size_t j = 0; j < series[i].x.size(); ++j)
      if (drawable(series[i].x[j], series[i].y[j], L.log_y))
        points.push_back(L.to_pixel(series[i].x[j], series[i].y[j]));
    canvas.polyline(points, colour_of(i), thickness);
  }
  // Markers may overlap the frame rather than be cut in half at the edge.
  const int reach = static_cast<int>(marker_radius) + 2;
  canvas.set_clip({P.x - reach, P.y - reach, P.w + 2 * reach, P.h + 2 * reach});
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].style != SeriesStyle::markers) continue;
    for (size_t j = 0; j < series[i].x.size(); ++j) {
      if (!drawable(series[i].x[j], series[i].y[j], L.log_y)) continue;
      const Point p = L.to_pixel(series[i].x[j], series[i].y[j]);
      canvas.disc(p, marker_radius + 1.5, kWhite);  // a halo keeps markers apart from the lines under them
      canvas.disc(p, marker_radius, colour_of(i));
    }
  }
  canvas.reset_clip();

  // The legend, in whichever corner of the plot area hides the fewest drawn pixels.
  std::vector<size_t> named;
  for (size_t i = 0; i < series.size(); ++i)
    if (!series[i].name.empty()) named.push_back(i);
  if (named.empty()) return image;
  const int row_h = th + descent(s) + 2 * s, swatch_w = 12 * s, inset = 4 * s;
  int text_w = 0;
  for (size_t i : named) text_w = std::max(text_w, text_width(series[i].name, s));
  const int box_w = inset + swatch_w + inset + text_w + inset;
  const int box_h = inset + static_cast<int>(named.size()) * row_h - 2 * s + inset;
  const int margin = 3 * s;
  const Rect corners[] = {{P.right() - margin - box_w, P.y + margin, box_w, box_h},
                          {P.x + margin, P.y + margin, box_w, box_h},
                          {P.right() - margin - box_w, P.bottom() - margin - box_h, box_w, box_h},
                          {P.x + margin, P.bottom() - margin - box_h, box_w, box_h}};
  Rect box = corners[0];
  long best = std::numeric_limits<long>::max();
  for (const Rect& r : corners) {
    long covered = 0;
    for (int y = r.y; y < r.bottom(); ++y)
      for (int x = r.x; x < r.right(); ++x) {
        const Rgb c = image.at(x, y);
        covered += !(c == kWhite || c == kGrid);
      }
    if (covered < best) best = covered, box = r;
  }
  canvas.fill_rect(box, kWhite);
  canvas.stroke_rect(box, kLegendBorder);
  for (size_t k = 0; k < named.size(); ++k) {
    const size_t i = named[k];
    const int y = box.y + inset + static_cast<int>(k) * row_h;
    const double cy = y + th / 2.0;
    if (series[i].style == SeriesStyle::markers)
      canvas.disc({box.x + inset + swatch_w / 2.0, cy}, marker_radius, colour_of(i));
    else
      canvas.line({box.x + inset + 1.0, cy}, {box.x + inset + swatch_w - 1.0, cy}, colour_of(i), thickness);
    canvas.text(box.x + inset + swatch_w + inset, y, series[i].name, kInk, s);
  }
  return image;
}

// ---- heatmap panels -------------------------------------------------------

Rect HeatmapLayout::cell(size_t panel, size_t row, size_t col) const {
  const Rect& g = grids.at(panel);
  return {g.x + static_cast<int>(col) * cell_w, g.y + static_cast<int>(row) * cell_h, cell_w - 1, cell_h - 1};
}

Rgb HeatmapLayout::colour(double value) const { return viridis(hi > lo ? (value - lo) / (hi - lo) : 0.5); }

namespace {

std::string column_label(const HeatmapPanel& p, size_t c) {
  return p.col_labels.empty() ? std::to_string(c) : p.col_labels[c];
}

// Room the heatmap keeps for the labels around the grids.
struct HeatmapMargins {
  int pad, title_h, panel_title_h, col_label_scale, col_label_stride, below_h;
};

HeatmapMargins heatmap_margins(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options,
                               const HeatmapLayout& L) {
  const int s = L.text_scale, th = text_height(s);
  HeatmapMargins m{};
  m.pad = 6 * s;
  m.title_h = options.title.empty() ? 0 : th + descent(s) + 2 * m.pad;
  m.panel_title_h = th + descent(s) + 2 * s;
  // Column labels at the text scale if they fit in a cell, else smaller, else every k-th.
  int widest = 0;
  for (const HeatmapPanel& p : panels)
    for (size_t c = 0; c < p.values[0].size(); ++c) widest = std::max(widest, text_width(column_label(p, c), 1));
  m.col_label_scale = widest * s + 2 <= L.cell_w ? s : 1;
  m.col_label_stride = 1;
  while (m.col_label_stride * L.cell_w < widest * m.col_label_scale + 4) ++m.col_label_stride;
  m.below_h = 3 * s + text_height(m.col_label_scale) + 3 * s + (options.x_label.empty() ? 0 : th + descent(s) + 2 * s);
  return m;
}

}  // namespace

HeatmapLayout heatmap_layout(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options) {
  LORY_CHECK(!panels.empty(), "heatmap_panels: no panels to draw");
  HeatmapLayout L;
  L.lo = INFINITY, L.hi = -INFINITY;
  size_t total_cols = 0, max_rows = 0;
  for (const HeatmapPanel& p : panels) {
    LORY_CHECK(!p.values.empty() && !p.values[0].empty(), "heatmap_panels: panel '", p.title, "' has no values");
    LORY_CHECK(p.row_labels.size() == p.values.size(), "heatmap_panels: panel '", p.title, "' has ", p.values.size(),
               " rows but ", p.row_labels.size(), " row labels");
    const size_t cols = p.values[0].size();
    for (size_t r = 0; r < p.values.size(); ++r) {
      LORY_CHECK(p.values[r].size() == cols, "heatmap_panels: panel '", p.title, "': row ", r, " ('", p.row_labels[r],
                 "') has ", p.values[r].size(), " values but row 0 ('", p.row_labels[0], "') has ", cols);
      for (double v : p.values[r])
        if (std::isfinite(v)) L.lo = std::min(L.lo, v), L.hi = std::max(L.hi, v);
    }
    LORY_CHECK(p.col_labels.empty() || p.col_labels.size() == cols, "heatmap_panels: panel '", p.title, "' has ", cols,
               " columns but ", p.col_labels.size(), " column labels");
    total_cols += cols;
    max_rows = std::max(max_rows, p.values.size());
  }
  LORY_CHECK(L.lo <= L.hi, "heatmap_panels: no finite value to colour");

  const int s = L.text_scale = 2;
  const int th = text_height(s);
  // Cells near 40 px on a side, smaller when there are many columns (32
  // experts x 3 layers), but tall enough for a row label.
  L.cell_w = std::clamp(900 / static_cast<int>(std::min<size_t>(total_cols, 900)), 14, 44);
  L.cell_h = std::max(L.cell_w, th + 8);
  const HeatmapMargins m = heatmap_margins(panels, options, L);

  const int grid_top = m.pad + m.title_h + m.panel_title_h;
  const int panel_gap = 8 * s;
  int x = m.pad, max_grid_h = 0;
  for (size_t i = 0; i < panels.size(); ++i) {
    const HeatmapPanel& p = panels[i];
    const bool show = i == 0 || p.row_labels != panels[i - 1].row_labels;
    L.row_labels_shown.push_back(show);
    if (show) {
      int w = 0;
      for (const std::string& l : p.row_labels) w = std::max(w, text_width(l, s));
      x += w + 4 * s;
    }
    const int cols = static_cast<int>(p.values[0].size()), rows = static_cast<int>(p.values.size());
    L.grids.push_back({x, grid_top, cols * L.cell_w, rows * L.cell_h});
    // A panel title wider than its grid would run into the next panel.
    const int span = std::max(cols * L.cell_w, text_width(p.title, s));
    x += span + panel_gap;
    max_grid_h = std::max(max_grid_h, rows * L.cell_h);
  }
  x += 4 * s - panel_gap + 4 * s;
  // The bar is at least as tall as its turned label.
  L.colour_bar = {x, grid_top, 9 * s, std::max({max_grid_h, 6 * th, text_width(options.colour_label, s)})};
  const int bar_label_w = std::max(text_width(format_value(L.lo), s), text_width(format_value(L.hi), s));
  x = L.colour_bar.right() + 3 * s + bar_label_w;
  if (!options.colour_label.empty()) x += 4 * s + th + descent(s);
  L.width = std::max(x + m.pad, text_width(options.title, s) + 2 * m.pad);
  L.height = grid_top + std::max(max_grid_h + m.below_h, L.colour_bar.h + th / 2) + m.pad;
  return L;
}

Image heatmap_panels(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options) {
  const HeatmapLayout L = heatmap_layout(panels, options);
  const HeatmapMargins m = heatmap_margins(panels, options, L);
  const int s = L.text_scale, th = text_height(s);
  Image image = make_image(L.width, L.height);
  Canvas canvas(image);

  if (!options.title.empty())
    bold_text(canvas, (L.width - text_width(options.title, s)) / 2, m.pad, options.title, kInk, s);

  // Weights in [0, 10) read best with two decimals each ("0.09", "0.37"),
  // other values to two significant digits.
  const bool fixed = L.lo >= 0 && L.hi < 10;
  for (size_t i = 0; i < panels.size(); ++i) {
    const HeatmapPanel& p = panels[i];
    const Rect& g = L.grids[i];
    canvas.text(g.x + (g.w - text_width(p.title, s)) / 2, g.y - m.panel_title_h, p.title, kInk, s);
    for (size_t r = 0; r < p.values.size(); ++r) {
      if (L.row_labels_shown[i]) {
        const Rect c0 = L.cell(i, r, 0);
        canvas.text(g.x - 4 * s - text_width(p.row_labels[r], s), c0.y + (c0.h - th) / 2, p.row_labels[r], kInk, s);
      }
      for (size_t c = 0; c < p.values[r].size(); ++c) {
        const double v = p.values[r][c];
        const Rect cell = L.cell(i, r, c);
        const Rgb colour = L.colour(v);
        canvas.fill_rect(cell, colour);
        if (!options.annotate || !std::isfinite(v)) continue;
        const std::string label = fixed ? sprint("%.2f", v) : format_value(v, 2);
        const int w = text_width(label, 1);
        if (w + 4 > cell.w || text_height(1) + 4 > cell.h) continue;
        // Dark text on light cells, light text on dark ones (Rec. 601 luma).
        const double luma = 0.299 * colour.r + 0.587 * colour.g + 0.114 * colour.b;
        canvas.text(cell.x + (cell.w - w + 1) / 2, cell.y + (cell.h - text_height(1)) / 2, label,
                    luma > 140 ? kInk : kWhite, 1);
      }
    }
    // Column labels, every col_label_stride-th, centred under the columns.
    const int label_y = g.bottom() + 3 * s;
    for (size_t c = 0; c < p.values[0].size(); c += static_cast<size_t>(m.col_label_stride)) {
      const std::string label = column_label(p, c);
      const Rect cell = L.cell(i, 0, c);
      canvas.text(cell.x + (cell.w - text_width(label, m.col_label_scale) + 1) / 2, label_y, label, kMuted,
                  m.col_label_scale);
    }
    if (!options.x_label.empty())
      canvas.text(g.x + (g.w - text_width(options.x_label, s)) / 2, label_y + text_height(m.col_label_scale) + 3 * s,
                  options.x_label, kInk, s);
  }

  // The colour bar: hi at the top, lo at the bottom, labelled at both ends.
  const Rect& bar = L.colour_bar;
  for (int y = bar.y; y < bar.bottom(); ++y)
    canvas.fill_rect({bar.x, y, bar.w, 1}, viridis(1.0 - static_cast<double>(y - bar.y) / (bar.h - 1)));
  canvas.stroke_rect({bar.x - 1, bar.y - 1, bar.w + 2, bar.h + 2}, kLegendBorder);
  const std::string hi = format_value(L.hi), lo = format_value(L.lo);
  canvas.text(bar.right() + 3 * s, bar.y, hi, kMuted, s);
  canvas.text(bar.right() + 3 * s, bar.bottom() - th, lo, kMuted, s);
  if (!options.colour_label.empty()) {
    const int label_x = bar.right() + 3 * s + std::max(text_width(hi, s), text_width(lo, s)) + 4 * s;
    canvas.text_up(label_x, bar.y + (bar.h - text_width(options.colour_label, s)) / 2, options.colour_label, kInk, s);
  }
  return image;
}

}  // namespace lory::plot
