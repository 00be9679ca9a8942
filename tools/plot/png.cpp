// png.cpp — see png.h. The format is the PNG specification (ISO/IEC 15948):
// an 8-byte signature, then chunks of (length, type, data, CRC-32 of type and
// data), all integers big-endian.
#include "tools/plot/png.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace lory::plot {

namespace {

constexpr int kMaxSide = 32768;

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

// Appends one chunk; the CRC covers the type and the data, not the length.
void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.append(type, 4);
  out += data;
  const auto* p = reinterpret_cast<const Bytef*>(out.data() + type_at);
  put_u32(out, static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), p, static_cast<uInt>(4 + data.size()))));
}

}  // namespace

Rgb Image::at(int x, int y) const {
  if (!contains(x, y)) return kBlack;
  const size_t i = 3 * (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x));
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

void Image::set(int x, int y, Rgb c) {
  if (!contains(x, y)) return;
  const size_t i = 3 * (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x));
  rgb[i] = c.r, rgb[i + 1] = c.g, rgb[i + 2] = c.b;
}

Image make_image(int width, int height, Rgb background) {
  LORY_CHECK(width >= 1 && height >= 1 && width <= kMaxSide && height <= kMaxSide,
             "plot: image size must be between 1x1 and ", kMaxSide, "x", kMaxSide, ", got ", width, "x", height);
  Image image{width, height, std::vector<uint8_t>(3 * static_cast<size_t>(width) * static_cast<size_t>(height))};
  for (size_t i = 0; i < image.rgb.size(); i += 3)
    image.rgb[i] = background.r, image.rgb[i + 1] = background.g, image.rgb[i + 2] = background.b;
  return image;
}

std::string encode_png(const Image& image) {
  LORY_CHECK(image.width >= 1 && image.height >= 1 && image.width <= kMaxSide && image.height <= kMaxSide,
             "encode_png: image size must be between 1x1 and ", kMaxSide, "x", kMaxSide, ", got ", image.width, "x",
             image.height);
  const size_t row_bytes = 3 * static_cast<size_t>(image.width);
  const size_t rows = static_cast<size_t>(image.height);
  LORY_CHECK(image.rgb.size() == row_bytes * rows, "encode_png: a ", image.width, "x", image.height, " image needs ",
             row_bytes * rows, " bytes of RGB, got ", image.rgb.size());

  // Scanlines: a filter-type byte (0, None) before each row's pixels.
  std::string raw(rows * (1 + row_bytes), '\0');
  for (size_t y = 0; y < rows; ++y) std::memcpy(&raw[y * (1 + row_bytes) + 1], &image.rgb[y * row_bytes], row_bytes);

  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                           reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()), 6);
  LORY_CHECK(rc == Z_OK, "encode_png: zlib compress2 failed (", rc, ") on a ", image.width, "x", image.height,
             " image");
  packed.resize(packed_size);

  std::string header;
  put_u32(header, static_cast<uint32_t>(image.width));
  put_u32(header, static_cast<uint32_t>(image.height));
  header += std::string{8, 2, 0, 0, 0};  // bit depth 8, colour type 2 (RGB), deflate, filter method 0, no interlace

  std::string png = "\x89PNG\r\n\x1a\n";
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

void write_png(const Image& image, const std::string& path) {
  const std::string bytes = encode_png(image);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  LORY_CHECK(f, "write_png: cannot create ", tmp, ": ", std::strerror(errno));
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int write_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    fail("write_png: cannot write ", tmp, ": ", std::strerror(written ? errno : write_errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("write_png: cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

}  // namespace lory::plot
