// safetensors.h — reading and writing the safetensors format (Hugging Face).
//
// A file is
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data]
// where the header maps each tensor name to
//   {"dtype": "F32" | "BF16" | "F16" | "F64" | "I32" | "I64" | "U8" | "BOOL",
//    "shape": [...], "data_offsets": [begin, end]}   (offsets into data)
// plus an optional "__metadata__" object of strings. Tensors are stored
// row-major, little-endian, without gaps or overlaps. Everything a reader
// checks is checked here, and an error names the file and the tensor.
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace lory::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes `tensors` (any device, dtype and layout; stored as they are) to
// `path` atomically (temp + fsync + rename), in the given order.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  NamedTensors tensors;  // CPU tensors, in file order
  std::map<std::string, std::string> metadata;
  const Tensor& get(const std::string& name) const;  // throws naming the file and the tensor
  std::string path;
};
// Reads every tensor of `path` into CPU memory.
SafetensorsFile load_safetensors(const std::string& path);

// Reads tensors of one file, or parts of them, on demand: the header is
// checked when the file is opened (as load_safetensors does), the data read
// only when asked. A rank resuming a sharded checkpoint reads the whole
// weights but only its shard of the optimizer state (train/train_checkpoint.h).
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&&) noexcept;
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;  // in file order
  bool contains(const std::string& name) const;
  DType dtype(const std::string& name) const { return entry(name).dtype; }
  const Shape& shape(const std::string& name) const { return entry(name).shape; }
  Tensor read(const std::string& name) const;  // the whole tensor, with its shape (CPU)
  // Elements [begin, begin + count) of the tensor in row-major order: [count] (CPU).
  Tensor read(const std::string& name, int64_t begin, int64_t count) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;  // bytes, into the data
  };
  const Entry& entry(const std::string& name) const;
  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  uint64_t data_begin_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Checkpoints too big for one file are split the Hugging Face way:
//   <stem>-00001-of-00004.safetensors ... <stem>-00004-of-00004.safetensors
//   <stem>.safetensors.index.json   {"metadata": {"total_size": bytes},
//                                    "weight_map": {tensor name: file name}}
// (lory_train writes one file per rank, train/train_checkpoint.h.)
std::string shard_file_name(const std::string& stem, int64_t index, int64_t count);  // index from 0
void write_safetensors_index(const std::string& path, const std::vector<std::pair<std::string, std::string>>& weight_map,
                             uint64_t total_size);
// <dir>/<stem>.safetensors, or, where the index exists instead, every file
// it names, opened for reading on demand.
class SafetensorsDirReader {
 public:
  SafetensorsDirReader(const std::string& dir, const std::string& stem = "model");
  const std::string& path() const { return path_; }  // the file, or the index
  size_t size() const { return file_of_.size(); }     // tensors
  bool contains(const std::string& name) const { return file_of_.count(name) > 0; }
  const SafetensorsReader& file_of(const std::string& name) const;  // throws naming the tensor
  const std::vector<SafetensorsReader>& files() const { return files_; }

 private:
  std::string path_;
  std::vector<SafetensorsReader> files_;
  std::map<std::string, size_t> file_of_;
};
// Every tensor of a directory's safetensors (one file or the shards of an
// index) in CPU memory. The result's path names what was read.
SafetensorsFile load_safetensors_dir(const std::string& dir, const std::string& stem = "model");

}  // namespace lory::io
