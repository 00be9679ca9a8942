// PNG plots (tools/plot/): the PNG encoder checked by decoding its output
// with zlib, tick choice and labels, the canvas's font and lines, the line
// chart and heatmap drawn where their layouts say, and the input errors.
#include <doctest/doctest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tools/plot/canvas.h"
#include "tools/plot/charts.h"
#include "tools/plot/png.h"

using namespace lory;
using namespace lory::plot;

namespace lory::plot {
// For doctest's failure messages.
std::ostream& operator<<(std::ostream& os, const Rgb& c) {
  return os << "Rgb{" << int{c.r} << ", " << int{c.g} << ", " << int{c.b} << "}";
}
}  // namespace lory::plot

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

struct Chunk {
  std::string type, data;
  uint32_t crc = 0;
};

// Splits a PNG after its signature into chunks; checks each CRC with zlib.
std::vector<Chunk> chunks_of(const std::string& png) {
  std::vector<Chunk> out;
  size_t at = 8;
  while (at < png.size()) {
    REQUIRE(at + 12 <= png.size());
    const uint32_t length = be32(png, at);
    REQUIRE(at + 12 + length <= png.size());
    Chunk c{png.substr(at + 4, 4), png.substr(at + 8, length), be32(png, at + 8 + length)};
    const auto* p = reinterpret_cast<const Bytef*>(png.data() + at + 4);
    CHECK(c.crc == crc32(crc32(0L, Z_NULL, 0), p, 4 + length));
    out.push_back(c);
    at += 12 + length;
  }
  return out;
}

size_t count_pixels(const Image& image, Rgb c, Rect r) {
  size_t n = 0;
  for (int y = r.y; y < r.bottom(); ++y)
    for (int x = r.x; x < r.right(); ++x) n += image.at(x, y) == c;
  return n;
}

Rgb pixel_at(const Image& image, Point p) { return image.at(static_cast<int>(p.x), static_cast<int>(p.y)); }

std::filesystem::path fresh_dir() {
  const auto dir = std::filesystem::temp_directory_path() / "lory_plot_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("plot: a PNG round-trips through zlib with the right size and pixels") {
  Image image = make_image(7, 5, Rgb{10, 20, 30});
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      if ((x + y) % 3 == 0) image.set(x, y, Rgb{static_cast<uint8_t>(40 * x), static_cast<uint8_t>(50 * y), 255});
  const std::string png = encode_png(image);
  REQUIRE(png.size() > 8);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));

  const std::vector<Chunk> chunks = chunks_of(png);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].type == "IHDR");
  CHECK(chunks[1].type == "IDAT");
  CHECK(chunks[2].type == "IEND");
  REQUIRE(chunks[0].data.size() == 13);
  CHECK(be32(chunks[0].data, 0) == 7);                                        // width
  CHECK(be32(chunks[0].data, 4) == 5);                                        // height
  CHECK(chunks[0].data.substr(8) == std::string("\x08\x02\x00\x00\x00", 5));  // 8-bit RGB, deflate, no interlace

  std::vector<unsigned char> raw(5 * (1 + 7 * 3) + 16);  // room to spare: uncompress reports the real size
  uLongf raw_size = raw.size();
  REQUIRE(uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(chunks[1].data.data()),
                     chunks[1].data.size()) == Z_OK);
  REQUIRE(raw_size == 5 * (1 + 7 * 3));
  for (int y = 0; y < 5; ++y) {
    const unsigned char* row = &raw[static_cast<size_t>(y) * (1 + 7 * 3)];
    CHECK(row[0] == 0);  // filter type None
    for (int x = 0; x < 7; ++x) {
      const Rgb want = image.at(x, y);
      CHECK(Rgb{row[1 + 3 * x], row[2 + 3 * x], row[3 + 3 * x]} == want);
    }
  }
  CHECK(image.at(3, 0) == Rgb{120, 0, 255});  // the pattern was really set, not all background
  CHECK(image.at(1, 0) == Rgb{10, 20, 30});
}

TEST_CASE("plot: the CRC of IEND is the PNG spec's AE426082") {
  const std::string png = encode_png(make_image(1, 1));
  CHECK(png.substr(png.size() - 12) == std::string("\x00\x00\x00\x00IEND\xAE\x42\x60\x82", 12));
}

TEST_CASE("plot: write_png replaces the file in one rename and leaves no temporary") {
  const auto dir = fresh_dir();
  const std::string path = (dir / "a.png").string();
  {
    std::ofstream old(path);
    old << "an older plot";
  }
  const Image image = make_image(3, 2, Rgb{1, 2, 3});
  write_png(image, path);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(bytes == encode_png(image));
  CHECK(!std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("plot: nice ticks follow the 1-2-5 rule") {
  CHECK(nice_ticks(0, 1, 6) == std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1});
  CHECK(nice_ticks(0, 150, 10) == std::vector<double>{0, 20, 40, 60, 80, 100, 120, 140, 160});
  CHECK(nice_ticks(0, 150, 8) == std::vector<double>{0, 50, 100, 150});  // 25 is not a 1-2-5 step
  CHECK(nice_ticks(3.2, 11.6, 12) == std::vector<double>{3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(nice_ticks(-0.3, 0.7, 6) == std::vector<double>{-0.5, 0, 0.5, 1});
  CHECK(nice_ticks(1.2e-4, 4.7e-4, 5) == std::vector<double>{1e-4, 2e-4, 3e-4, 4e-4, 5e-4});
  CHECK(nice_ticks(0, 2.5e6, 6) == std::vector<double>{0, 5e5, 1e6, 1.5e6, 2e6, 2.5e6});
  // Each tick is i * step in one rounding: 0.3 exactly, not 0.1 + 0.1 + 0.1.
  CHECK(nice_ticks(0, 0.5, 6)[3] == 0.3);

  CHECK(log_ticks(2, 60, 8) == std::vector<double>{2, 5, 10, 20, 50});
  CHECK(log_ticks(1e-3, 10, 12) == std::vector<double>{1e-3, 1e-2, 1e-1, 1, 10});  // 1-2-5 would give 13
  CHECK(log_ticks(1, 1e8, 5) == std::vector<double>{1, 100, 1e4, 1e6, 1e8});       // every 2nd decade
  CHECK(log_ticks(3.5, 9.5, 8) == std::vector<double>{4, 5, 6, 7, 8, 9});          // under a decade: linear

  CHECK_THROWS_WITH_AS(nice_ticks(1, 1, 5), doctest::Contains("lo < hi"), Error);
  CHECK_THROWS_WITH_AS(nice_ticks(0, 1, 1), doctest::Contains("max_ticks"), Error);
  CHECK_THROWS_WITH_AS(log_ticks(0, 10, 5), doctest::Contains("0 < lo < hi"), Error);
}

TEST_CASE("plot: tick labels are compact") {
  CHECK(format_tick(1200, 200) == "1.2k");
  CHECK(format_tick(2000, 1000) == "2k");
  CHECK(format_tick(500, 500) == "500");
  CHECK(format_tick(4e7, 1e7) == "40M");
  CHECK(format_tick(1.5e9, 5e8) == "1.5B");
  CHECK(format_tick(2.5, 0.5) == "2.5");
  CHECK(format_tick(3, 0.5) == "3");
  CHECK(format_tick(-0.4, 0.2) == "-0.4");
  CHECK(format_tick(0.0003, 0.0001) == "3e-4");
  CHECK(format_tick(1.5e-4, 5e-5) == "1.5e-4");
  CHECK(format_tick(0.001, 0.001) == "0.001");
  CHECK(format_tick(1e-17, 0.1) == "0");  // rounding noise at zero
  CHECK(format_value(0.125) == "0.125");
  CHECK(format_value(3.2e-5) == "3.2e-5");
  CHECK(format_value(1234567) == "1.23e6");
  CHECK(format_value(0.07216, 2) == "0.072");
}

TEST_CASE("plot: text is drawn in the font and measured to its last pixel") {
  CHECK(text_width("", 1) == 0);
  CHECK(text_width("a", 1) == kGlyphWidth);
  CHECK(text_width("ab", 1) == kGlyphAdvance + kGlyphWidth);
  CHECK(text_width("ab", 3) == 3 * (kGlyphAdvance + kGlyphWidth));
  CHECK(text_width("\xC3\xA9t\xC3\xA9", 1) == text_width("?t?", 1));  // "ete" with accents: one glyph per character

  for (int scale : {1, 2, 3}) {
    CAPTURE(scale);
    Image image = make_image(120, 40);
    Canvas canvas(image);
    canvas.text(5, 7, "Hello", kBlack, scale);
    int x0 = 1000, x1 = -1, y0 = 1000, y1 = -1;
    for (int y = 0; y < image.height; ++y)
      for (int x = 0; x < image.width; ++x)
        if (image.at(x, y) == kBlack)
          x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    // 'H' starts at column 0 and row 0 of its glyph; 'o' ends at column 4.
    CHECK(x0 == 5);
    CHECK(x1 == 5 + text_width("Hello", scale) - 1);
    CHECK(y0 == 7);
    CHECK(y1 == 7 + text_height(scale) - 1);  // no descenders in "Hello"
  }
  // The bitmap itself at scale 1: 'T' is a bar of 5 and a stem in the middle column.
  Image image = make_image(10, 12);
  Canvas canvas(image);
  canvas.text(2, 3, "T", kBlack, 1);
  for (int x = 2; x < 7; ++x) CHECK(image.at(x, 3) == kBlack);
  for (int y = 4; y < 10; ++y) {
    CHECK(image.at(4, y) == kBlack);
    CHECK(image.at(3, y) == kWhite);
  }
  // Turned text reads bottom to top: the bar of 'T' becomes a column on the left.
  Image turned = make_image(12, 10);
  Canvas up(turned);
  up.text_up(3, 2, "T", kBlack, 1);
  for (int y = 2; y < 7; ++y) CHECK(turned.at(3, y) == kBlack);
  for (int x = 4; x < 10; ++x) CHECK(turned.at(x, 4) == kBlack);
  CHECK(turned.at(4, 3) == kWhite);
}

TEST_CASE("plot: lines are exact in the core, blended at the edges, and not darkened by many short segments") {
  const Rgb blue = palette(0);
  Image one = make_image(60, 30);
  Canvas a(one);
  a.line({10.5, 10.5}, {40.5, 10.5}, blue, 2.0);
  CHECK(one.at(20, 10) == blue);
  CHECK(one.at(20, 14) == kWhite);
  const Rgb edge = one.at(20, 11);  // centre 1 px from the line's axis: half covered
  CHECK(edge == mix(kWhite, blue, 0.5));
  CHECK(one.at(45, 10) == kWhite);  // past the round end

  // The same line as 300 segments of 0.1 px: coverage is the maximum over
  // segments, so every pixel is as it was.
  Image many = make_image(60, 30);
  Canvas b(many);
  std::vector<Point> points;
  for (int i = 0; i <= 300; ++i) points.push_back({10.5 + i * 0.1, 10.5});
  b.polyline(points, blue, 2.0);
  CHECK(many.rgb == one.rgb);

  // The clip is respected; NaN points are skipped.
  Image clipped = make_image(60, 30);
  Canvas c(clipped);
  c.set_clip({0, 0, 25, 30});
  c.polyline({{10.5, 10.5}, {NAN, 3}, {40.5, 10.5}}, blue, 2.0);
  CHECK(clipped.at(20, 10) == blue);
  CHECK(clipped.at(30, 10) == kWhite);
}

TEST_CASE("plot: viridis runs from purple to yellow and the palette has ten distinct colours") {
  CHECK(viridis(0) == Rgb{68, 1, 84});
  CHECK(viridis(0.5) == Rgb{33, 145, 140});
  CHECK(viridis(1) == Rgb{253, 231, 37});
  CHECK(viridis(-3) == viridis(0));
  CHECK(viridis(7) == viridis(1));
  CHECK(viridis(NAN) == Rgb{128, 128, 128});
  CHECK(viridis(1.0 / 16) == mix(Rgb{68, 1, 84}, Rgb{71, 45, 123}, 0.5));  // halfway between two anchors
  for (size_t i = 0; i < 10; ++i)
    for (size_t j = 0; j < i; ++j) CHECK(palette(i) != palette(j));
  CHECK(palette(10) == palette(0));
}

TEST_CASE("plot: a line chart draws each series in its own colour") {
  // Three runs over different x ranges, one with a NaN, one drawn as markers.
  Series a{"a", {0, 50, 100}, {1, 1, 1}};
  Series b{"b", {50, 120, 200}, {2, NAN, 2}};
  Series c{"c eval", {20, 100, 180}, {3, 3, 3}, SeriesStyle::markers};
  const std::vector<Series> series{a, b, c};
  LineChartOptions options;
  options.title = "loss", options.x_label = "step", options.y_label = "loss";
  const LineChartLayout layout = line_chart_layout(series, options);
  const Image image = line_chart(series, options);
  CHECK(image.width == 1000);
  CHECK(image.height == 600);

  // The axes cover the data with nice ticks.
  CHECK(layout.x_lo == 0);
  CHECK(layout.x_hi == 200);
  CHECK(layout.y_lo <= 1);
  CHECK(layout.y_hi >= 3);
  CHECK(layout.x_labels.front() == "0");

  // Points in the middle of the plot, clear of the legend in its corner.
  CHECK(pixel_at(image, layout.to_pixel(70, 1)) == palette(0));
  CHECK(pixel_at(image, layout.to_pixel(120, 2)) == palette(1));  // across the NaN
  CHECK(pixel_at(image, layout.to_pixel(100, 3)) == palette(2));  // a marker's centre
  CHECK(pixel_at(image, layout.to_pixel(141, 3)) != palette(2));  // markers are not joined
  CHECK(pixel_at(image, layout.to_pixel(131, 1)) != palette(0));  // a ends at x = 100
  for (size_t i = 0; i < 3; ++i) CHECK(count_pixels(image, palette(i), layout.plot) > 20);

  // An explicit colour wins over the palette.
  Series red = a;
  red.colour = Rgb{200, 0, 0};
  const Image recoloured = line_chart({red}, options);
  CHECK(pixel_at(recoloured, line_chart_layout({red}, options).to_pixel(50, 1)) == Rgb{200, 0, 0});
}

TEST_CASE("plot: a log-y chart skips points at or below zero and spaces decades evenly") {
  Series s{"", {0, 1, 2, 3, 4, 5}, {1000, 100, 0, -1, 1, 0.01}};
  LineChartOptions options;
  options.log_y = true;
  const LineChartLayout layout = line_chart_layout({s}, options);
  CHECK(layout.y_ticks == std::vector<double>{0.01, 0.1, 1, 10, 100, 1000});
  const double d1 = layout.to_pixel(0, 0.1).y - layout.to_pixel(0, 1).y;
  const double d2 = layout.to_pixel(0, 1).y - layout.to_pixel(0, 10).y;
  CHECK(d1 == doctest::Approx(d2).epsilon(1e-12));
  CHECK(d1 > 50);
  const Image image = line_chart({s}, options);
  CHECK(pixel_at(image, layout.to_pixel(4, 1)) == palette(0));
}

TEST_CASE("plot: heatmap cells take the colour map's colour of their value") {
  HeatmapPanel p0{"layer 0", {"books", "code"}, {}, {{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}}};
  HeatmapPanel p1{"layer 3", {"books", "code"}, {"e0", "e1", "e2"}, {{0.9, 0.1, NAN}, {0.25, 0.25, 0.25}}};
  HeatmapOptions options;
  options.title = "routing", options.x_label = "expert", options.colour_label = "weight";
  const HeatmapLayout layout = heatmap_layout({p0, p1}, options);
  const Image image = heatmap_panels({p0, p1}, options);
  CHECK(image.width == layout.width);
  CHECK(image.height == layout.height);
  CHECK(layout.lo == 0.1);  // one scale over both panels
  CHECK(layout.hi == 0.9);
  CHECK(layout.row_labels_shown == std::vector<bool>{true, false});  // the same domains are not labelled twice

  const std::vector<const HeatmapPanel*> panels{&p0, &p1};
  for (size_t p = 0; p < 2; ++p)
    for (size_t r = 0; r < 2; ++r)
      for (size_t c = 0; c < 3; ++c) {
        CAPTURE(p);
        CAPTURE(r);
        CAPTURE(c);
        const Rect cell = layout.cell(p, r, c);
        const double v = panels[p]->values[r][c];
        // A corner of the cell: clear of the value written in its middle.
        CHECK(image.at(cell.x + 1, cell.y + 1) == viridis((v - 0.1) / 0.8));
        CHECK(image.at(cell.right() - 1, cell.bottom() - 1) == image.at(cell.x + 1, cell.y + 1));
      }
  CHECK(image.at(layout.cell(1, 0, 0).x + 1, layout.cell(1, 0, 0).y + 1) == viridis(1));          // the maximum
  CHECK(image.at(layout.cell(1, 0, 2).x + 1, layout.cell(1, 0, 2).y + 1) == Rgb{128, 128, 128});  // NaN
  CHECK(image.at(layout.cell(0, 0, 0).right(), layout.cell(0, 0, 0).y + 1) == kWhite);  // the gap between cells
  // The colour bar: the maximum at the top, the minimum at the bottom.
  const Rect& bar = layout.colour_bar;
  CHECK(image.at(bar.x + 2, bar.y) == viridis(1));
  CHECK(image.at(bar.x + 2, bar.bottom() - 1) == viridis(0));

  // All values equal: the middle colour, not a division by zero.
  HeatmapPanel flat{"flat", {"x"}, {}, {{0.5, 0.5}}};
  const HeatmapLayout flat_layout = heatmap_layout({flat}, {});
  const Rect cell = flat_layout.cell(0, 0, 1);
  CHECK(heatmap_panels({flat}, {}).at(cell.x + 1, cell.y + 1) == viridis(0.5));
}

TEST_CASE("plot: bad input names what was wrong") {
  CHECK_THROWS_WITH_AS(line_chart({}, {}), doctest::Contains("no series"), Error);
  CHECK_THROWS_WITH_AS(line_chart({Series{"dense", {}, {}}}, {}), doctest::Contains("series 'dense' has no points"),
                       Error);
  CHECK_THROWS_WITH_AS(line_chart({Series{"lory", {1, 2, 3}, {1, 2}}}, {}),
                       doctest::Contains("series 'lory' has 3 x values but 2 y values"), Error);
  CHECK_THROWS_WITH_AS(line_chart({Series{"nan", {1, 2}, {NAN, INFINITY}}}, {}),
                       doctest::Contains("no series has a finite point"), Error);
  LineChartOptions log_y;
  log_y.log_y = true;
  CHECK_THROWS_WITH_AS(line_chart({Series{"neg", {1, 2}, {0, -1}}}, log_y), doctest::Contains("y > 0"), Error);
  LineChartOptions tiny;
  tiny.width = 100;
  CHECK_THROWS_WITH_AS(line_chart({Series{"a", {1}, {1}}}, tiny), doctest::Contains("100x600"), Error);

  CHECK_THROWS_WITH_AS(heatmap_panels({}, {}), doctest::Contains("no panels"), Error);
  HeatmapPanel ragged{"layer 3", {"books", "code"}, {}, {{0.1, 0.2, 0.3}, {0.4, 0.5}}};
  CHECK_THROWS_WITH_AS(heatmap_panels({ragged}, {}),
                       doctest::Contains("panel 'layer 3': row 1 ('code') has 2 values but row 0 ('books') has 3"),
                       Error);
  HeatmapPanel labels{"layer 1", {"books"}, {}, {{0.1}, {0.2}}};
  CHECK_THROWS_WITH_AS(heatmap_panels({labels}, {}), doctest::Contains("'layer 1' has 2 rows but 1 row labels"), Error);
  HeatmapPanel columns{"layer 2", {"books"}, {"0", "1"}, {{0.1, 0.2, 0.3}}};
  CHECK_THROWS_WITH_AS(heatmap_panels({columns}, {}), doctest::Contains("3 columns but 2 column labels"), Error);
  HeatmapPanel empty{"layer 0", {}, {}, {}};
  CHECK_THROWS_WITH_AS(heatmap_panels({empty}, {}), doctest::Contains("'layer 0' has no values"), Error);

  CHECK_THROWS_WITH_AS(encode_png(Image{2, 2, std::vector<uint8_t>(5)}), doctest::Contains("needs 12 bytes"), Error);
  CHECK_THROWS_WITH_AS(make_image(0, 5), doctest::Contains("0x5"), Error);
  const auto dir = fresh_dir();
  const std::string unwritable = (dir / "no-such-dir" / "loss.png").string();
  CHECK_THROWS_WITH_AS(write_png(make_image(2, 2), unwritable), doctest::Contains(unwritable.c_str()), Error);
  std::filesystem::remove_all(dir);
}
