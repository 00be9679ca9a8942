// png.h — an RGB image in memory and its PNG encoding, for the plots the
// trainer and lory_plot draw (tools/plot/charts.h).
//
//   Image image = make_image(640, 480, kWhite);
//   image.set(10, 20, Rgb{255, 0, 0});
//   write_png(image, "out.png");  // writes out.png.tmp, then renames it
//
// The encoder writes the smallest valid PNG for this: 8-bit RGB (colour type
// 2), no interlacing, filter type 0 ("None") on every row, one IDAT chunk
// deflated by zlib. Plots are flat colours and long runs, which deflate
// compresses well without the per-row filters a photograph would need.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lory::plot {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

// Pixels row by row from the top-left corner, 3 bytes (r, g, b) each:
// rgb.size() == 3 * width * height.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;

  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  // at() and set() take any coordinates: at() outside the image is black,
  // set() outside it does nothing, so drawing code need not clip.
  Rgb at(int x, int y) const;
  void set(int x, int y, Rgb c);
};

// A width x height image filled with `background`; throws unless both sides
// are in [1, 32768].
Image make_image(int width, int height, Rgb background = kWhite);

// The PNG file's bytes. Throws when rgb.size() does not match the size.
std::string encode_png(const Image& image);

// Writes encode_png(image) to path + ".tmp" and renames it to path, so a
// reader never sees half a file. Errors name the path and the reason.
void write_png(const Image& image, const std::string& path);

}  // namespace lory::plot
