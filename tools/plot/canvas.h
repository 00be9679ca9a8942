// canvas.h — drawing on an Image: rectangles, anti-aliased lines and discs,
// text in an embedded bitmap font, the viridis colour map and a categorical
// palette. Everything the charts in charts.h draw goes through here.
//
//   Image image = make_image(400, 300);
//   Canvas canvas(image);
//   canvas.set_clip({40, 10, 350, 250});         // draw only inside the plot area
//   canvas.polyline({{40, 250}, {200, 60}, {390, 120}}, palette(0), 2.0);
//   canvas.text(40, 280, "step", kBlack, 2);     // top-left corner at (40, 280)
//
// Coordinates are pixels from the top-left corner; a pixel (x, y) covers the
// square [x, x+1) x [y, y+1), so the centre of pixel (3, 4) is (3.5, 4.5).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "tools/plot/png.h"

namespace lory::plot {

struct Rect {
  int x = 0, y = 0, w = 0, h = 0;
  int right() const { return x + w; }   // one past the last column
  int bottom() const { return y + h; }  // one past the last row
  bool contains(int px, int py) const { return px >= x && py >= y && px < right() && py < bottom(); }
  friend bool operator==(const Rect&, const Rect&) = default;
};

struct Point {
  double x = 0, y = 0;
};

// The font: 5x7-pixel glyphs for ASCII 32..126 with 2 more rows below the
// baseline for descenders (g, j, p, q, y, comma), advancing 6 pixels per
// character. At scale s a glyph is 5s wide and its capitals 7s tall; from
// scale 2 up the glyphs are smoothed (EPX pixel-art scaling) so diagonals do
// not look like staircases.
inline constexpr int kGlyphWidth = 5, kGlyphHeight = 7, kGlyphDescent = 2, kGlyphAdvance = 6;

// Width in pixels of `text` drawn at `scale`: the advance of every character
// but the last, whose trailing gap does not count. A UTF-8 sequence counts as
// one character (drawn as '?': the font is ASCII).
int text_width(std::string_view text, int scale = 1);
// Height of capitals at `scale` (descenders reach kGlyphDescent * scale lower).
inline int text_height(int scale = 1) { return kGlyphHeight * scale; }

// a + t (b - a) per channel; t is clamped to [0, 1].
Rgb mix(Rgb a, Rgb b, double t);
// The viridis colour map (perceptually uniform, readable in grey and by
// colour-blind readers): t = 0 is dark purple, t = 1 yellow; t is clamped to
// [0, 1]; NaN gives mid grey.
Rgb viridis(double t);
// Ten distinct colours for categorical data (matplotlib's "tab10"), cycling.
Rgb palette(size_t i);

class Canvas {
 public:
  // Draws into `image`, which must outlive the canvas; the clip starts as the whole image.
  explicit Canvas(Image& image);

  Image& image() { return image_; }
  // Pixels outside `clip` (intersected with the image) are never written.
  void set_clip(Rect clip);
  void reset_clip();

  void fill_rect(Rect r, Rgb c);
  // The border of r, `thickness` pixels wide, inside r.
  void stroke_rect(Rect r, Rgb c, int thickness = 1);
  // Blends c over pixel (x, y) with opacity alpha in [0, 1].
  void blend(int x, int y, Rgb c, double alpha);

  // An anti-aliased line `thickness` pixels wide with round ends. Pixels
  // within thickness/2 - 0.5 of the centre line take exactly colour c; the
  // edge pixels are blended with what is below.
  void line(Point a, Point b, Rgb c, double thickness = 1.0);
  // Connected segments through `points`. Coverage is the maximum over the
  // segments, so joints and runs of sub-pixel segments (thousands of steps
  // on a few hundred pixels) are not darkened by blending twice.
  void polyline(const std::vector<Point>& points, Rgb c, double thickness = 1.0);
  // An anti-aliased filled circle.
  void disc(Point centre, double radius, Rgb c);

  // Text with its top-left corner (the top of the capitals) at (x, y).
  void text(int x, int y, std::string_view text, Rgb c, int scale = 1);
  // Text turned 90 degrees counter-clockwise (read bottom to top, as a
  // y-axis label); (x, y) is the top-left corner of the turned text's box,
  // which is text_height(scale) wide and text_width(text, scale) tall.
  void text_up(int x, int y, std::string_view text, Rgb c, int scale = 1);

 private:
  Image& image_;
  Rect clip_;
};

}  // namespace lory::plot
