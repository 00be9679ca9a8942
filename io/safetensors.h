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

}  // namespace lory::io
