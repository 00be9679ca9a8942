// canvas.cpp — see canvas.h.
#include "tools/plot/canvas.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace lory::plot {

namespace {

constexpr int kGlyphRows = kGlyphHeight + kGlyphDescent;  // 9

// The font, one glyph per printable ASCII character from ' ' (32) to '~'
// (126): kGlyphRows rows from the top, bit 4 of a row is its leftmost pixel.
// Rows 0-6 hold capitals and digits, rows 7-8 descenders.
constexpr std::array<std::array<uint8_t, kGlyphRows>, 95> kFont = {{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00},  // '!'
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '"'
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00},  // '#'
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00},  // '$'
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00},  // '%'
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00},  // '&'
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '''
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00},  // '('
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00},  // ')'
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00},  // '*'
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00},  // '+'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ','
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00},  // '-'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // '.'
    {0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10, 0x00, 0x00},  // '/'
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00},  // '0'
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // '1'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00},  // '2'
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00},  // '3'
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00},  // '4'
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00},  // '5'
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00},  // '6'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00},  // '7'
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00},  // '8'
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00},  // '9'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00},  // ':'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x04, 0x08, 0x00},  // ';'
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00},  // '<'
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // '='
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00},  // '>'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00},  // '?'
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00, 0x00},  // '@'
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00},  // 'A'
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00},  // 'B'
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00},  // 'C'
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00},  // 'D'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00},  // 'E'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00},  // 'F'
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00},  // 'G'
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00},  // 'H'
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 'I'
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00},  // 'J'
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00},  // 'K'
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00},  // 'L'
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00},  // 'M'
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00},  // 'N'
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 'O'
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00},  // 'P'
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00},  // 'Q'
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00},  // 'R'
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00},  // 'S'
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 'T'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 'U'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00},  // 'V'
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00},  // 'W'
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00},  // 'X'
    {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 'Y'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00},  // 'Z'
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00},  // '['
    {0x10, 0x08, 0x08, 0x04, 0x02, 0x02, 0x01, 0x00, 0x00},  // 'backslash'
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00},  // ']'
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '^'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00},  // '_'
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '`'
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00},  // 'a'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00},  // 'b'
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00},  // 'c'
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00},  // 'd'
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00},  // 'e'
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00},  // 'f'
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 'g'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // 'h'
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 'i'
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},  // 'j'
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00},  // 'k'
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 'l'
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00},  // 'm'
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00},  // 'n'
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 'o'
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10},  // 'p'
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01},  // 'q'
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00},  // 'r'
    {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00},  // 's'
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00},  // 't'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00},  // 'u'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00},  // 'v'
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00},  // 'w'
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00},  // 'x'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 'y'
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00},  // 'z'
    {0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00, 0x00},  // '{'
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // '|'
    {0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00, 0x00},  // '}'
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00},  // '~'
}};

bool glyph_bit(int glyph, int col, int row) {
  if (col < 0 || row < 0 || col >= kGlyphWidth || row >= kGlyphRows) return false;
  return (kFont[static_cast<size_t>(glyph)][static_cast<size_t>(row)] >> (kGlyphWidth - 1 - col)) & 1;
}

// The glyph of the next character of UTF-8 text starting at text[i], and i
// moved past it. The font has ASCII only: any other character is '?'.
int next_glyph(std::string_view text, size_t& i) {
  const auto byte = static_cast<unsigned char>(text[i++]);
  if (byte >= 32 && byte <= 126) return byte - 32;
  if (byte >= 0x80)  // skip the continuation bytes of a multi-byte character
    while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  return '?' - 32;
}

// Glyph pixel (col, row) after EPX (Scale2x) doubling: 2*kGlyphWidth x
// 2*kGlyphRows. Each pixel P becomes 2x2; a quarter takes the colour of its
// two outer neighbours when they agree and the opposite two do not, which
// fills the notches of diagonal strokes and rounds sharp corners.
bool epx_bit(int glyph, int col, int row) {
  const int x = col / 2, y = row / 2;
  const bool p = glyph_bit(glyph, x, y);
  const bool a = glyph_bit(glyph, x, y - 1), b = glyph_bit(glyph, x + 1, y);
  const bool c = glyph_bit(glyph, x - 1, y), d = glyph_bit(glyph, x, y + 1);
  const bool right = col % 2, bottom = row % 2;
  if (!right && !bottom) return (c == a && c != d && a != b) ? a : p;
  if (right && !bottom) return (a == b && a != c && b != d) ? b : p;
  if (!right && bottom) return (d == c && d != b && c != a) ? c : p;
  return (b == d && b != a && d != c) ? d : p;
}

// floor(v) as an int in [lo, hi]; any double, NaN and infinities included,
// converts without undefined behaviour.
int clamp_floor(double v, int lo, int hi) {
  if (!(v >= lo)) return lo;  // also NaN
  if (v >= hi) return hi;
  return static_cast<int>(std::floor(v));
}

Rect intersect(Rect a, Rect b) {
  const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int x1 = std::min(a.right(), b.right()), y1 = std::min(a.bottom(), b.bottom());
  return {x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
}

double distance_to_segment(Point p, Point a, Point b) {
  const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  return std::hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
}

bool finite(Point p) { return std::isfinite(p.x) && std::isfinite(p.y); }

// Raises mask (over `box`) to the coverage of the segment a-b, half_width
// either side of the centre line with round ends. Walks the major axis one
// pixel at a time and, in each column (or row), only the pixels that can be
// within reach of the line, so the cost is length x width, not the area of
// the bounding box.
void coverage_segment(Point a, Point b, double half_width, std::vector<float>& mask, Rect box) {
  const double reach = half_width * 1.5 + 1.5;  // >= half_width * sqrt(1 + slope^2) + 1 for |slope| <= 1
  const bool x_major = std::abs(b.x - a.x) >= std::abs(b.y - a.y);
  // Major-axis coordinate u and minor-axis v; swapped for steep segments.
  const double au = x_major ? a.x : a.y, bu = x_major ? b.x : b.y;
  const double av = x_major ? a.y : a.x, bv = x_major ? b.y : b.x;
  const int u_lo = x_major ? box.x : box.y, u_hi = x_major ? box.right() : box.bottom();
  const int v_lo = x_major ? box.y : box.x, v_hi = x_major ? box.bottom() : box.right();
  const int u0 = clamp_floor(std::min(au, bu) - reach, u_lo, u_hi);
  const int u1 = clamp_floor(std::max(au, bu) + reach, u_lo - 1, u_hi - 1);
  for (int u = u0; u <= u1; ++u) {
    const double cu = u + 0.5;
    const double t = bu != au ? std::clamp((cu - au) / (bu - au), 0.0, 1.0) : 0.0;
    const double cv_line = av + t * (bv - av);
    const int v0 = clamp_floor(cv_line - reach, v_lo, v_hi);
    const int v1 = clamp_floor(cv_line + reach, v_lo - 1, v_hi - 1);
    for (int v = v0; v <= v1; ++v) {
      const Point p = x_major ? Point{cu, v + 0.5} : Point{v + 0.5, cu};
      const double coverage = std::clamp(half_width + 0.5 - distance_to_segment(p, a, b), 0.0, 1.0);
      const int x = x_major ? u : v, y = x_major ? v : u;
      float& m = mask[static_cast<size_t>(y - box.y) * static_cast<size_t>(box.w) + static_cast<size_t>(x - box.x)];
      m = std::max(m, static_cast<float>(coverage));
    }
  }
}

// Calls put(column, row) for every set pixel of `text` at `scale`, in
// unturned text coordinates from the top-left corner.
template <typename Put>
void for_each_text_pixel(std::string_view text, int scale, Put put) {
  scale = std::max(scale, 1);
  int pen = 0;
  for (size_t i = 0; i < text.size(); pen += kGlyphAdvance * scale) {
    const int glyph = next_glyph(text, i);
    for (int row = 0; row < kGlyphRows * scale; ++row)
      for (int col = 0; col < kGlyphWidth * scale; ++col) {
        // Scale 1 is the bitmap itself; larger scales sample the EPX-doubled
        // glyph, nearest neighbour.
        const bool on = scale == 1 ? glyph_bit(glyph, col, row) : epx_bit(glyph, col * 2 / scale, row * 2 / scale);
        if (on) put(pen + col, row);
      }
  }
}

}  // namespace

int text_width(std::string_view text, int scale) {
  scale = std::max(scale, 1);  // as drawn
  int n = 0;
  for (size_t i = 0; i < text.size(); ++n) next_glyph(text, i);
  return n == 0 ? 0 : ((n - 1) * kGlyphAdvance + kGlyphWidth) * scale;
}

Rgb mix(Rgb a, Rgb b, double t) {
  t = std::clamp(std::isnan(t) ? 0.0 : t, 0.0, 1.0);
  auto channel = [t](uint8_t u, uint8_t v) { return static_cast<uint8_t>(std::lround(u + t * (v - u))); };
  return {channel(a.r, b.r), channel(a.g, b.g), channel(a.b, b.b)};
}

Rgb viridis(double t) {
  // matplotlib's viridis sampled at t = 0, 1/8, ..., 1; linear in between.
  static constexpr std::array<Rgb, 9> kAnchors = {{{68, 1, 84},
                                                   {71, 45, 123},
                                                   {59, 82, 139},
                                                   {44, 114, 142},
                                                   {33, 145, 140},
                                                   {40, 174, 128},
                                                   {94, 201, 98},
                                                   {173, 220, 48},
                                                   {253, 231, 37}}};
  if (std::isnan(t)) return {128, 128, 128};
  const double u = std::clamp(t, 0.0, 1.0) * (kAnchors.size() - 1);
  const size_t i = std::min(static_cast<size_t>(u), kAnchors.size() - 2);
  return mix(kAnchors[i], kAnchors[i + 1], u - static_cast<double>(i));
}

Rgb palette(size_t i) {
  static constexpr std::array<Rgb, 10> kTab10 = {{{31, 119, 180},
                                                  {255, 127, 14},
                                                  {44, 160, 44},
                                                  {214, 39, 40},
                                                  {148, 103, 189},
                                                  {140, 86, 75},
                                                  {227, 119, 194},
                                                  {127, 127, 127},
                                                  {188, 189, 34},
                                                  {23, 190, 207}}};
  return kTab10[i % kTab10.size()];
}

Canvas::Canvas(Image& image) : image_(image), clip_{0, 0, image.width, image.height} {}

void Canvas::set_clip(Rect clip) { clip_ = intersect(clip, {0, 0, image_.width, image_.height}); }
void Canvas::reset_clip() { clip_ = {0, 0, image_.width, image_.height}; }

void Canvas::fill_rect(Rect r, Rgb c) {
  const Rect box = intersect(r, clip_);
  for (int y = box.y; y < box.bottom(); ++y)
    for (int x = box.x; x < box.right(); ++x) image_.set(x, y, c);
}

void Canvas::stroke_rect(Rect r, Rgb c, int thickness) {
  const int t = std::min({thickness, r.w, r.h});
  if (t <= 0) return;
  fill_rect({r.x, r.y, r.w, t}, c);
  fill_rect({r.x, r.bottom() - t, r.w, t}, c);
  fill_rect({r.x, r.y, t, r.h}, c);
  fill_rect({r.right() - t, r.y, t, r.h}, c);
}

void Canvas::blend(int x, int y, Rgb c, double alpha) {
  if (!clip_.contains(x, y) || !(alpha > 0)) return;
  image_.set(x, y, alpha >= 1 ? c : mix(image_.at(x, y), c, alpha));
}

void Canvas::line(Point a, Point b, Rgb c, double thickness) { polyline({a, b}, c, thickness); }

void Canvas::polyline(const std::vector<Point>& points, Rgb c, double thickness) {
  const double half = std::max(thickness, 0.0) / 2;
  double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
  for (const Point& p : points) {
    if (!finite(p)) continue;
    x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
  }
  if (x0 > x1) return;  // no finite point
  const int bx0 = clamp_floor(x0 - half - 1, clip_.x, clip_.right()),
            bx1 = clamp_floor(x1 + half + 2, clip_.x, clip_.right());
  const int by0 = clamp_floor(y0 - half - 1, clip_.y, clip_.bottom()),
            by1 = clamp_floor(y1 + half + 2, clip_.y, clip_.bottom());
  const Rect box{bx0, by0, bx1 - bx0, by1 - by0};
  if (box.w <= 0 || box.h <= 0) return;
  std::vector<float> mask(static_cast<size_t>(box.w) * static_cast<size_t>(box.h), 0.0f);
  const Point* previous = nullptr;
  for (const Point& p : points) {
    if (!finite(p)) continue;
    coverage_segment(previous ? *previous : p, p, half, mask, box);
    previous = &p;
  }
  for (int y = box.y; y < box.bottom(); ++y)
    for (int x = box.x; x < box.right(); ++x)
      blend(x, y, c,
            mask[static_cast<size_t>(y - box.y) * static_cast<size_t>(box.w) + static_cast<size_t>(x - box.x)]);
}

void Canvas::disc(Point centre, double radius, Rgb c) {
  if (!finite(centre) || !(radius > 0)) return;
  const int x0 = clamp_floor(centre.x - radius - 1, clip_.x, clip_.right());
  const int x1 = clamp_floor(centre.x + radius + 1, clip_.x - 1, clip_.right() - 1);
  const int y0 = clamp_floor(centre.y - radius - 1, clip_.y, clip_.bottom());
  const int y1 = clamp_floor(centre.y + radius + 1, clip_.y - 1, clip_.bottom() - 1);
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x)
      blend(x, y, c, std::clamp(radius + 0.5 - std::hypot(x + 0.5 - centre.x, y + 0.5 - centre.y), 0.0, 1.0));
}

void Canvas::text(int x, int y, std::string_view text, Rgb c, int scale) {
  for_each_text_pixel(text, scale, [&](int col, int row) { blend(x + col, y + row, c, 1.0); });
}

void Canvas::text_up(int x, int y, std::string_view text, Rgb c, int scale) {
  // Turning counter-clockwise maps text column col to image row (width - 1 - col)
  // and text row to image column.
  const int w = text_width(text, scale);
  for_each_text_pixel(text, scale, [&](int col, int row) { blend(x + row, y + w - 1 - col, c, 1.0); });
}

}  // namespace lory::plot
