// npy.cpp — see npy.h.
#include "io/npy.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tensor/graph.h"
#include "io/atomic_file.h"
#include "tensor/ops.h"

namespace lory::io {

namespace {

const std::pair<DType, const char*> kDescr[] = {{DType::f32, "<f4"},    {DType::f64, "<f8"}, {DType::f16, "<f2"},
                                                {DType::i32, "<i4"},    {DType::i64, "<i8"}, {DType::u8, "|u1"},
                                                {DType::boolean, "|b1"}};

DType dtype_of(std::string descr, const std::string& path) {
  if (descr.size() == 3 && (descr[0] == '=' || (descr[0] == '|' && descr[2] == '1'))) {
    descr[0] = descr[2] == '1' ? '|' : '<';  // native (=) is little-endian on every machine we run on
  }
  for (const auto& [d, name] : kDescr)
    if (descr == name) return d;
  fail(path, ": unsupported .npy dtype '", descr, "' (supported: <f4 <f8 <f2 <i4 <i8 |u1 |b1; big-endian is not)");
}

}  // namespace

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LORY_CHECK(in.good(), path, ": cannot open .npy file");
  char magic[8];
  in.read(magic, 8);
  LORY_CHECK(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, path, ": not a .npy file (bad magic bytes)");
  const int major = static_cast<unsigned char>(magic[6]);
  LORY_CHECK(major >= 1 && major <= 3, path, ": unsupported .npy format version ", major);
  uint64_t header_len = 0;
  const int len_bytes = major == 1 ? 2 : 4;
  unsigned char lb[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(lb), len_bytes);
  for (int i = 0; i < len_bytes; ++i) header_len |= static_cast<uint64_t>(lb[i]) << (8 * i);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  LORY_CHECK(in.good(), path, ": truncated .npy header");

  std::smatch m;
  LORY_CHECK(std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')")), path,
             ": .npy header has no descr: ", header);
  const DType dtype = dtype_of(m[1], path);
  LORY_CHECK(std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")), path,
             ": .npy header has no fortran_order: ", header);
  LORY_CHECK(m[1] == "False", path, ": Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
  LORY_CHECK(std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")), path,
             ": .npy header has no shape: ", header);
  Shape shape;
  const std::string dims = m[1];
  const std::regex number(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number); it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));

  Tensor t = empty(shape, {dtype, cpu_device(), false});
  const uint64_t data_start = 6 + 2 + len_bytes + header_len;
  const uint64_t have = std::filesystem::file_size(path) - data_start;
  LORY_CHECK(have >= t.nbytes(), path, ": truncated .npy data: ", shape_str(shape), " ", dtype_name(dtype), " needs ",
             t.nbytes(), " bytes, the file has ", have);
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
