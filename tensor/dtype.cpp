// dtype.cpp — dtype names, promotion, and the reference 16-bit float conversions.
#include "tensor/dtype.h"

#include <Eigen/Core>

#include "tensor/error.h"

namespace lory {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  if (name == "f32" || name == "float32" || name == "float") return DType::f32;
  if (name == "f64" || name == "float64" || name == "double") return DType::f64;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "f16" || name == "float16" || name == "half") return DType::f16;
  if (name == "i32" || name == "int32") return DType::i32;
  if (name == "i64" || name == "int64") return DType::i64;
  if (name == "u8" || name == "uint8") return DType::u8;
  if (name == "bool" || name == "boolean") return DType::boolean;
  fail("unknown dtype '", name, "' (expected one of f32, f64, bf16, f16, i32, i64, u8, bool)");
}

namespace {
// Rank within a kind: wider types rank higher.
int float_rank(DType t) { return t == DType::f64 ? 3 : t == DType::f32 ? 2 : 1; }
int int_rank(DType t) { return t == DType::i64 ? 3 : t == DType::i32 ? 2 : t == DType::u8 ? 1 : 0; }
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && !fb) return a;
  if (fb && !fa) return b;
  if (fa && fb) {
    // bf16 and f16 have no common 16-bit type: meet in f32.
    if (float_rank(a) == 1 && float_rank(b) == 1) return DType::f32;
    return float_rank(a) >= float_rank(b) ? a : b;
  }
  return int_rank(a) >= int_rank(b) ? a : b;
}

// Eigen's conversions round to nearest, ties to even, and keep NaN a NaN;
// the CPU kernels use the same types, so these are the reference by construction.
uint16_t float_to_bf16_bits(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f)); }
float bf16_bits_to_float(uint16_t b) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(b));
}
uint16_t float_to_f16_bits(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }
float f16_bits_to_float(uint16_t h) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)); }

}  // namespace lory
