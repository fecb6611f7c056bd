// Vector bodies with a scalar tail (core/dtype.h), so results never depend on the instruction set.

// GCC 12 warns inside its own AVX-512 intrinsics headers (GCC bug 105593), not at this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "core/cpu/half_convert.h"

#include <immintrin.h>

#include "core/error.h"

namespace lloco::cpu_impl {

namespace {

void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
#endif
  for (; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}

void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

// Round to nearest even on the bit pattern, as float_to_bf16 does; NaN keeps its top bits plus the
// quiet bit. (vcvtneps2bf16 would flush subnormals, so it is not used.)
void narrow_bf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    const __m512i u = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, odd)), 16);
    const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet);
    const __m512i bits = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), rounded, nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(bits));
  }
#endif
  for (; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

void narrow_f16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

}  // namespace

void widen_half(const uint16_t* src, float* dst, int64_t n, DType dt) {
  LLOCO_CHECK(dt == DType::BF16 || dt == DType::F16, "widen_half", "dtype must be f16 or bf16, got ", dtype_name(dt));
  if (dt == DType::BF16) widen_bf16(src, dst, n);
  else widen_f16(src, dst, n);
}

void narrow_to_half(const float* src, uint16_t* dst, int64_t n, DType dt) {
  LLOCO_CHECK(dt == DType::BF16 || dt == DType::F16, "narrow_to_half", "dtype must be f16 or bf16, got ",
              dtype_name(dt));
  if (dt == DType::BF16) narrow_bf16(src, dst, n);
  else narrow_f16(src, dst, n);
}

}  // namespace lloco::cpu_impl
