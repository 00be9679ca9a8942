// safetensors.cpp — see safetensors.h.
#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "tensor/graph.h"
#include "io/atomic_file.h"
#include "io/json_text.h"
#include "tensor/ops.h"

namespace lory::io {

namespace {

using Json = nlohmann::ordered_json;

const std::pair<DType, const char*> kDTypes[] = {{DType::f32, "F32"}, {DType::bf16, "BF16"},   {DType::f16, "F16"},
                                                 {DType::f64, "F64"}, {DType::i32, "I32"},     {DType::i64, "I64"},
                                                 {DType::u8, "U8"},   {DType::boolean, "BOOL"}};

const char* safetensors_dtype(DType t) {
  for (const auto& [d, name] : kDTypes)
    if (d == t) return name;
  fail("safetensors: dtype ", dtype_name(t), " has no safetensors name");
}

// Header length is capped like the reference implementation (100 MB).
constexpr uint64_t kMaxHeader = 100'000'000;

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> host;  // contiguous CPU copies, in order
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    LORY_CHECK(t.defined(), "safetensors: tensor '", name, "' for ", path, " is undefined");
    LORY_CHECK(name != "__metadata__" && !header.contains(name), "safetensors: tensor name '", name,
               "' is used twice (or reserved) in ", path);
    NoGradGuard no_grad;
    host.push_back(t.detach().to(cpu_device()).contiguous());
    const uint64_t bytes = host.back().nbytes();
    header[name] = {
        {"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned, as HF writes it
  write_file_atomically(path, [&](std::FILE* f) {
    uint64_t n = text.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));  // little-endian
    auto put = [&](const void* p, size_t size) {
      if (size > 0 && std::fwrite(p, 1, size, f) != size) fail(path, ": write failed: ", std::strerror(errno));
    };
    put(len, 8);
    put(text.data(), text.size());
    for (const Tensor& t : host) put(t.data_ptr(), t.nbytes());
  });
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  fail(path, ": no tensor named '", name, "'");
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  // Every size the file claims is checked against the file's size before
  // anything is allocated or read: a header length, offsets or a shape from
  // a corrupt file never make us allocate more than the file holds.
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(path, ec);
  const uint64_t file_size = regular ? std::filesystem::file_size(path, ec) : 0;
  in_ = std::make_unique<std::ifstream>(path, std::ios::binary);
  std::ifstream& in = *in_;
  LORY_CHECK(in.good() && regular && !ec, path, ": cannot open safetensors file",
             regular ? "" : " (missing, or not a regular file)");
  LORY_CHECK(file_size >= 8, path, ": truncated: ", file_size, " bytes, less than the 8-byte header length");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  LORY_CHECK(n <= kMaxHeader, path, ": not a safetensors file: header length ", n, " is implausible");
  LORY_CHECK(8 + n <= file_size, path, ": truncated: the header needs ", n, " bytes, the file has ", file_size - 8,
             " after the length");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  LORY_CHECK(in.good(), path, ": read failed in the header");
  const Json header = parse_json<Json>(text, path, "header");
  LORY_CHECK(header.is_object(), path, ": header is not a JSON object");
  const uint64_t data_size = file_size - 8 - n;
  data_begin_ = 8 + n;

  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      LORY_CHECK(info.is_object(), path, ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        LORY_CHECK(v.is_string(), path, ": __metadata__ value of '", k, "' is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    LORY_CHECK(info.is_object() && info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"),
               where, ": needs dtype, shape and data_offsets");
    Entry e{name, DType::f32, {}, 0, 0};
    bool known = false;
    for (const auto& [d, dname] : kDTypes)
      if (info["dtype"] == dname) e.dtype = d, known = true;
    LORY_CHECK(known, where, ": unsupported dtype ", json_excerpt(info["dtype"]));
    // The bytes the shape claims, refused where the product (with zero dims
    // counted as 1, as strides are) overflows; it must then equal the span of
    // data_offsets, which must lie in the data.
    const auto& shape = info["shape"];
    LORY_CHECK(shape.is_array(), where, ": shape is not an array");
    uint64_t bound = dtype_size(e.dtype);
    bool empty_tensor = false;
    for (const auto& s : shape) {
      LORY_CHECK(s.is_number_unsigned() || (s.is_number_integer() && s.get<int64_t>() >= 0), where, ": bad shape ",
                 json_excerpt(shape), " (dims must be integers >= 0)");
      const uint64_t dim = s.get<uint64_t>();
      LORY_CHECK(!__builtin_mul_overflow(bound, std::max<uint64_t>(dim, 1), &bound) &&
                     bound <= static_cast<uint64_t>(INT64_MAX),
                 where, ": shape ", json_excerpt(shape), " has more elements than any file can hold");
      empty_tensor = empty_tensor || dim == 0;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t want = empty_tensor ? 0 : bound;
    const auto& off = info["data_offsets"];
    LORY_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(), where,
               ": bad data_offsets ", json_excerpt(off), " (expected [begin, end], integers >= 0)");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    LORY_CHECK(e.begin <= e.end, where, ": data_offsets ", json_excerpt(off), " are reversed (begin after end)");
    LORY_CHECK(e.end - e.begin == want, where, ": data_offsets ", json_excerpt(off), " hold ", e.end - e.begin,
               " bytes, but ", shape_str(e.shape), " ", dtype_name(e.dtype), " needs ", want);
    LORY_CHECK(e.end <= data_size, where, ": truncated file: the tensor ends at byte ", e.end,
               " of the data, which has only ", data_size);
    entries_.push_back(std::move(e));
  }
  // Tensors must not overlap (each byte of data belongs to at most one).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    LORY_CHECK(by_offset[i]->begin >= by_offset[i - 1]->end || by_offset[i - 1]->begin == by_offset[i - 1]->end, path,
               ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");
}

SafetensorsReader::~SafetensorsReader() = default;
SafetensorsReader::SafetensorsReader(SafetensorsReader&&) noexcept = default;

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  for (const Entry& e : entries_)
    if (e.name == name) return e;
  fail(path_, ": no tensor named '", name, "'");
}

bool SafetensorsReader::contains(const std::string& name) const {
  for (const Entry& e : entries_)
    if (e.name == name) return true;
  return false;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

Tensor SafetensorsReader::read(const std::string& name) const {
  const Entry& e = entry(name);
  return read(name, 0, shape_numel(e.shape)).view(e.shape);
}

Tensor SafetensorsReader::read(const std::string& name, int64_t begin, int64_t count) const {
  const Entry& e = entry(name);
  const int64_t n = shape_numel(e.shape);
  LORY_CHECK(begin >= 0 && count >= 0 && begin + count <= n, path_, ": tensor '", name, "' has ", n,
             " elements; cannot read [", begin, ", ", begin + count, ")");
  Tensor t = empty({count}, {e.dtype, cpu_device(), false});
  const uint64_t size = dtype_size(e.dtype);
  in_->clear();
  in_->seekg(static_cast<std::streamoff>(data_begin_ + e.begin + static_cast<uint64_t>(begin) * size));
  in_->read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(static_cast<uint64_t>(count) * size));
  LORY_CHECK(in_->good(), path_, ": tensor '", name, "': read failed");
  return t;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const SafetensorsReader reader(path);
  SafetensorsFile file;
  file.path = path;
  file.metadata = reader.metadata();
  for (const std::string& name : reader.names()) file.tensors.emplace_back(name, reader.read(name));
  return file;
}

std::string shard_file_name(const std::string& stem, int64_t index, int64_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "-%05lld-of-%05lld.safetensors", static_cast<long long>(index + 1),
                static_cast<long long>(count));
  return stem + name;
}

void write_safetensors_index(const std::string& path, const std::vector<std::pair<std::string, std::string>>& weight_map,
                             uint64_t total_size) {
  Json j;
  j["metadata"] = {{"total_size", total_size}};
  Json map = Json::object();
  for (const auto& [tensor, file] : weight_map) map[tensor] = file;
  j["weight_map"] = map;
  write_file_atomically(path, j.dump(2) + "\n");
}

SafetensorsDirReader::SafetensorsDirReader(const std::string& dir, const std::string& stem) {
  const std::string single = dir + "/" + stem + ".safetensors", index = single + ".index.json";
  if (!std::filesystem::exists(index)) {
    path_ = single;
    files_.emplace_back(single);
    for (const std::string& name : files_.back().names()) file_of_[name] = 0;
    return;
  }
  path_ = index;
  std::string text;
  {
    std::ifstream in(index, std::ios::binary);
    LORY_CHECK(in.good(), index, ": cannot open");
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const Json j = parse_json<Json>(text, index, "the index");
  LORY_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index,
             ": has no \"weight_map\" object");
  std::map<std::string, size_t> opened;  // each file once, in the order the index first names it
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    LORY_CHECK(file.is_string(), index, ": the file of '", tensor, "' is ", json_excerpt(file), ", not a string");
    const std::string f = file.get<std::string>();
    // A shard is a file beside the index: a name, not a path elsewhere.
    LORY_CHECK(
        !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos && f.find('\0') == std::string::npos,
        index, ": the file of '", tensor, "' is '", printable_excerpt(f), "', not the name of a file beside the index");
    auto [it, fresh] = opened.try_emplace(f, files_.size());
    if (fresh) {
      try {
        files_.emplace_back(dir + "/" + f);
      } catch (const Error& e) {
        fail(index, ": the shard of '", tensor, "': ", e.what());  // the shard's error, and which index named it
      }
    }
    LORY_CHECK(files_[it->second].contains(tensor), index, " puts '", tensor, "' in ", f, ", which does not hold it");
    file_of_[tensor] = it->second;
  }
  size_t held = 0;
  for (const SafetensorsReader& r : files_) held += r.names().size();
  LORY_CHECK(held == file_of_.size(), index, ": lists ", file_of_.size(), " tensors, its files hold ", held);
}

const SafetensorsReader& SafetensorsDirReader::file_of(const std::string& name) const {
  const auto it = file_of_.find(name);
  if (it == file_of_.end()) fail(path_, ": no tensor named '", name, "'");
  return files_[it->second];
}

SafetensorsFile load_safetensors_dir(const std::string& dir, const std::string& stem) {
  const SafetensorsDirReader reader(dir, stem);
  SafetensorsFile merged;
  merged.path = reader.path();
  for (const SafetensorsReader& f : reader.files()) {
    for (const std::string& name : f.names()) merged.tensors.emplace_back(name, f.read(name));
    for (const auto& [k, v] : f.metadata()) merged.metadata.emplace(k, v);
  }
  return merged;
}

}  // namespace lory::io
