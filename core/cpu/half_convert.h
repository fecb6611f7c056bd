// Bulk f16 / bf16 <-> f32 conversion of contiguous runs, vectorized where the CPU has the instructions
// (AVX-512 / AVX2 + F16C). Bit-exact with the scalar conversions in core/dtype.h: widening is exact,
// narrowing rounds to nearest even, keeps NaN quiet, and keeps subnormals (no flush to zero).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace lloco::cpu_impl {

// dst[i] = float(src[i]) for i < n; dt is F16 or BF16.
void widen_half(const uint16_t* src, float* dst, int64_t n, DType dt);
// dst[i] = dt(src[i]) for i < n, rounded to nearest even; dt is F16 or BF16.
void narrow_to_half(const float* src, uint16_t* dst, int64_t n, DType dt);

}  // namespace lloco::cpu_impl
