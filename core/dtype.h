// Element types and the software f16/bf16 <-> f32 conversions used by the CPU reference.
// Half types are stored as raw uint16 bits; arithmetic always happens in float (or double for f64).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace lloco {

enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64 };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);  // "f32", "bf16", ...
DType dtype_from_name(const std::string& name);  // throws on unknown
inline bool dtype_is_float(DType dt) { return dt == DType::F32 || dt == DType::F16 || dt == DType::BF16 || dt == DType::F64; }
inline bool dtype_is_int(DType dt) { return dt == DType::I32 || dt == DType::I64; }
// Unit roundoff of the type, used for dtype-aware tolerances.
double dtype_eps(DType dt);

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, NaN kept quiet (matches PyTorch's c10::BFloat16).
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      mant &= 0x3ffu;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_half(float f);  // round-to-nearest-even with subnormals and overflow to inf

}  // namespace lloco
