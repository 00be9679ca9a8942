// npy.cpp — see npy.h.
#include "io/npy.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tensor/graph.h"
#include "io/atomic_file.h"
#include "io/text_excerpt.h"
#include "tensor/ops.h"

namespace lory::io {

namespace {

const std::pair<DType, const char*> kDescr[] = {{DType::f32, "<f4"},    {DType::f64, "<f8"}, {DType::f16, "<f2"},
                                                {DType::i32, "<i4"},    {DType::i64, "<i8"}, {DType::u8, "|u1"},
                                                {DType::boolean, "|b1"}};

// A header for a message: printable, and not megabytes of it.
std::string printable_header(const std::string& header) { return printable_excerpt(header, 200); }

DType dtype_of(std::string descr, const std::string& path) {
  if (descr.size() == 3 && (descr[0] == '=' || (descr[0] == '|' && descr[2] == '1'))) {
    descr[0] = descr[2] == '1' ? '|' : '<';  // native (=) is little-endian on every machine we run on
  }
  for (const auto& [d, name] : kDescr)
    if (descr == name) return d;
  fail(path, ": unsupported .npy dtype '", printable_excerpt(descr),
       "' (supported: <f4 <f8 <f2 <i4 <i8 |u1 |b1; big-endian is not)");
}

// The header is a Python dict literal, read by hand rather than with
// std::regex (libstdc++'s regex recurses once per character matched and
// overflows the stack on a long header). Each reader takes the position
// just after a key's colon and throws naming the file when the value is
// not what numpy writes.

// Position of the value of 'key' (quoted with ' or "), npos when absent.
size_t value_of(const std::string& header, const std::string& key) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = quote + key + quote;
    size_t at = header.find(quoted);
    if (at == std::string::npos) continue;
    at = header.find_first_not_of(" \t", at + quoted.size());
    if (at == std::string::npos || header[at] != ':') return std::string::npos;
    return header.find_first_not_of(" \t", at + 1);
  }
  return std::string::npos;
}

// The dims of a Python tuple of integers: "()", "(5,)", "(2, 3)".
Shape parse_shape(const std::string& header, size_t at, const std::string& path) {
  auto bad = [&](const char* what) -> Shape {
    fail(path, ": .npy header: bad shape (", what, "): ", printable_header(header));
  };
  if (at == std::string::npos || header[at] != '(') return bad("expected a tuple");
  Shape shape;
  size_t i = at + 1;
  auto skip_spaces = [&] {
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t')) ++i;
  };
  for (;;) {
    skip_spaces();
    if (i < header.size() && header[i] == ')') return shape;
    if (i >= header.size() || header[i] < '0' || header[i] > '9') return bad("dims must be integers >= 0");
    int64_t dim = 0;
    for (; i < header.size() && header[i] >= '0' && header[i] <= '9'; ++i)
      if (__builtin_mul_overflow(dim, 10, &dim) || __builtin_add_overflow(dim, header[i] - '0', &dim))
        return bad("a dim does not fit in 64 bits");
    shape.push_back(dim);
    skip_spaces();
    if (i < header.size() && header[i] == ',') {
      ++i;
    } else if (i >= header.size() || header[i] != ')') {
      return bad("expected ',' or ')' after a dim");
    }
  }
}

}  // namespace

Tensor read_npy(const std::string& path) {
  // Every size the file claims (header length, shape) is checked against the
  // file's size before anything is allocated.
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(path, ec);
  const uint64_t file_size = regular ? std::filesystem::file_size(path, ec) : 0;
  std::ifstream in(path, std::ios::binary);
  LORY_CHECK(in.good() && regular && !ec, path, ": cannot open .npy file",
             regular ? "" : " (missing, or not a regular file)");
  char magic[8];
  in.read(magic, 8);
  LORY_CHECK(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, path, ": not a .npy file (bad magic bytes)");
  const int major = static_cast<unsigned char>(magic[6]);
  LORY_CHECK(major >= 1 && major <= 3, path, ": unsupported .npy format version ", major);
  uint64_t header_len = 0;
  const int len_bytes = major == 1 ? 2 : 4;
  unsigned char lb[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(lb), len_bytes);
  LORY_CHECK(in.gcount() == len_bytes, path, ": truncated .npy header (", file_size, " bytes)");
  for (int i = 0; i < len_bytes; ++i) header_len |= static_cast<uint64_t>(lb[i]) << (8 * i);
  const uint64_t data_start = 8 + len_bytes + header_len;
  LORY_CHECK(data_start <= file_size, path, ": truncated .npy header: it claims ", header_len, " bytes, the file has ",
             file_size - 8 - len_bytes, " after the header length");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  LORY_CHECK(in.good(), path, ": read failed in the .npy header");

  size_t at = value_of(header, "descr");
  const char quote = at == std::string::npos ? '\0' : header[at];
  const size_t close = quote == '\'' || quote == '"' ? header.find(quote, at + 1) : std::string::npos;
  LORY_CHECK(close != std::string::npos, path, ": .npy header has no descr: ", printable_header(header));
  const DType dtype = dtype_of(header.substr(at + 1, close - at - 1), path);
  at = value_of(header, "fortran_order");
  const bool fortran = at != std::string::npos && header.compare(at, 4, "True") == 0;
  LORY_CHECK(fortran || (at != std::string::npos && header.compare(at, 5, "False") == 0), path,
             ": .npy header has no fortran_order: ", printable_header(header));
  LORY_CHECK(!fortran, path, ": Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
  const Shape shape = parse_shape(header, value_of(header, "shape"), path);

  // The data the shape claims, in bytes; the product is checked for
  // overflow (zero dims counted as 1, as strides count them).
  uint64_t bound = dtype_size(dtype);
  bool empty_array = false;
  for (const int64_t d : shape) {
    LORY_CHECK(!__builtin_mul_overflow(bound, static_cast<uint64_t>(std::max<int64_t>(d, 1)), &bound) &&
                   bound <= static_cast<uint64_t>(INT64_MAX),
               path, ": .npy shape ", shape_str(shape), " has more elements than any file can hold");
    empty_array = empty_array || d == 0;
  }
  const uint64_t need = empty_array ? 0 : bound, have = file_size - data_start;
  LORY_CHECK(have >= need, path, ": truncated .npy data: ", shape_str(shape), " ", dtype_name(dtype), " needs ", need,
             " bytes, the file has ", have);
  Tensor t = empty(shape, {dtype, cpu_device(), false});
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  LORY_CHECK(in.good() || t.nbytes() == 0, path, ": read failed");
  return t;
}

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& [d, name] : kDescr)
    if (d == t.dtype()) descr = name;
  LORY_CHECK(descr, "write_npy: ", path, ": NumPy has no ", dtype_name(t.dtype()), " (convert to f32 first)");
  Tensor host;
  {
    NoGradGuard no_grad;
    host = t.detach().to(cpu_device()).contiguous();
  }
  // A Python tuple: "()", "(5,)", "(2, 3)".
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape.append(i ? ", " : "").append(std::to_string(t.size(i)));
  shape.append(t.dim() == 1 ? ",)" : ")");
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t unpadded = 10 + header.size() + 1;  // magic, version, length, header, '\n'
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  write_file_atomically(path, [&](std::FILE* f) {
    const unsigned char prefix[10] = {0x93,
                                      'N',
                                      'U',
                                      'M',
                                      'P',
                                      'Y',
                                      1,
                                      0,
                                      static_cast<unsigned char>(header.size()),
                                      static_cast<unsigned char>(header.size() >> 8)};
    bool ok = std::fwrite(prefix, 1, 10, f) == 10 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
    if (host.nbytes() > 0) ok = ok && std::fwrite(host.data_ptr(), 1, host.nbytes(), f) == host.nbytes();
    if (!ok) fail(path, ": write failed: ", std::strerror(errno));
  });
}

}  // namespace lory::io
