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

#include <map>
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

// Checkpoints too big for one file are split the Hugging Face way:
//   <stem>-00001-of-00004.safetensors ... <stem>-00004-of-00004.safetensors
//   <stem>.safetensors.index.json   {"metadata": {"total_size": bytes},
//                                    "weight_map": {tensor name: file name}}
// (lory_train writes one file per rank, train/train_checkpoint.h.)
std::string shard_file_name(const std::string& stem, int64_t index, int64_t count);  // index from 0
void write_safetensors_index(const std::string& path, const std::vector<std::pair<std::string, std::string>>& weight_map,
                             uint64_t total_size);
// The tensors of <dir>/<stem>.safetensors, or, where the index exists
// instead, of every file it names, in index order. The result's path names
// what was read.
SafetensorsFile load_safetensors_dir(const std::string& dir, const std::string& stem = "model");

}  // namespace lory::io
