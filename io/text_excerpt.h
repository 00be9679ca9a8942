// text_excerpt.h — a short printable excerpt of untrusted text (a header, a
// value, a name) for an error message: a corrupt file can hold megabytes of
// it, or bytes that are not text, and a message should quote neither.
#pragma once

#include <cstdio>
#include <string>

namespace lory::io {

constexpr size_t kExcerptChars = 120;

// `text` cut to max_chars (then "..."), bytes outside printable ASCII as \xNN.
inline std::string printable_excerpt(const std::string& text, size_t max_chars = kExcerptChars) {
  std::string out;
  for (const unsigned char ch : text) {
    if (out.size() >= max_chars) return out + "...";
    if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", ch);
      out += hex;
    }
  }
  return out;
}

}  // namespace lory::io
