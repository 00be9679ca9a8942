// dtype.h — element types a tensor can hold.
//
// Floating types: f32 (the default), f64 (gradcheck), bf16 and f16 (storage
// types; every CPU kernel computes them in f32). Integer types: i32, i64
// (token ids, indices), u8, and boolean (masks, comparison results; one byte).
//
// bf16/f16 are raw 16-bit patterns here so that this header is usable from
// CUDA and host code alike without Eigen; CPU kernels reinterpret them as
// Eigen::bfloat16 / Eigen::half, CUDA kernels as __nv_bfloat16 / __half.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lory {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, boolean };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::u8: case DType::boolean: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

// Short names as printed in errors and tensor repr: "f32", "bf16", "i64", "bool".
const char* dtype_name(DType t);
// Parses a name printed by dtype_name (also accepts "float32", "bfloat16", ...).
DType dtype_from_name(const std::string& name);

// The dtype of a binary op's result (NumPy/PyTorch-style promotion for the
// types we have): floating beats integer; among floats the wider wins, and
// bf16 with f16 gives f32; among integers the wider wins; bool is lowest.
DType promote_types(DType a, DType b);

// Round-to-nearest-even conversions between f32 and the 16-bit float formats.
// These are the reference the CPU and CUDA kernels must agree with.
uint16_t float_to_bf16_bits(float f);
float bf16_bits_to_float(uint16_t b);
uint16_t float_to_f16_bits(float f);
float f16_bits_to_float(uint16_t h);

}  // namespace lory
