// npy.h — NumPy .npy files (format version 1.0 to 3.0), for exchanging token
// ids, logits and embeddings with Python.
//
// A file is the magic "\x93NUMPY", a version, a header length, a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces to a 64-byte boundary and ending in '\n', then the data
// in C order. Supported descr: <f4 <f8 <f2 <i4 <i8 |u1 |b1 (and = or | for
// one-byte types).
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace lory::io {

// A CPU tensor with the file's dtype and shape; errors name the file and the problem.
Tensor read_npy(const std::string& path);
// Writes t (any device/layout; f32 f64 f16 i32 i64 u8 bool) atomically.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace lory::io
