// The vectorized bulk conversions (core/cpu/half_convert.cpp) against the scalar ones in core/dtype.h,
// which the fixture tests hold to PyTorch: every 16-bit pattern widened, and narrowing of random bit
// patterns plus the edge cases (ties, subnormals, overflow, infinities, NaN). Runs are unaligned and
// of lengths that leave a scalar tail, so both the vector body and the tail are compared.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu/half_convert.h"
#include "core/dtype.h"
#include "core/error.h"

namespace lloco {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool is_nan16(uint16_t h, DType dt) {
  return dt == DType::BF16 ? (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0
                           : (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}

float scalar_widen(uint16_t h, DType dt) { return dt == DType::BF16 ? bf16_to_float(h) : half_to_float(h); }
uint16_t scalar_narrow(float f, DType dt) { return dt == DType::BF16 ? float_to_bf16(f) : float_to_half(f); }

TEST(HalfConvert, WidensEveryBitPatternLikeTheScalarConversion) {
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<uint16_t> src(65536 + 1 + 7);  // offset by one element: unaligned vector loads
    for (uint32_t i = 0; i < 65536; ++i) src[i + 1] = static_cast<uint16_t>(i);
    std::vector<float> got(src.size() - 1);
    cpu_impl::widen_half(src.data() + 1, got.data(), static_cast<int64_t>(got.size()), dt);
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const float want = scalar_widen(src[i + 1], dt);
      const bool same = std::isnan(want) ? std::isnan(got[i]) : bits_of(got[i]) == bits_of(want);
      if (!same && bad++ < 3)
        ADD_FAILURE() << "pattern 0x" << std::hex << src[i + 1] << ": got bits 0x" << bits_of(got[i]) << ", want 0x"
                      << bits_of(want);
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(HalfConvert, NarrowsLikeTheScalarConversion) {
  std::vector<float> values = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 1e10f, -1e10f,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                               std::numeric_limits<float>::denorm_min(), 5.96e-8f, 2.98e-8f, 6.1e-5f, 1e-40f,
                               from_bits(0x3f808000u), from_bits(0x3f818000u),  // bf16 ties to even, both ways
                               from_bits(0x3f801000u), from_bits(0x3f803000u),  // f16 ties to even, both ways
                               from_bits(0x7f7fffffu), from_bits(0x7fa00000u)};  // max float, signalling NaN
  std::mt19937 rng(7);
  for (int i = 0; i < (1 << 20); ++i) values.push_back(from_bits(rng()));
  // Magnitudes inside the f16 range, where the random bit patterns above rarely land.
  std::uniform_real_distribution<float> exponent(-26.f, 16.f);
  for (int i = 0; i < (1 << 18); ++i) values.push_back((rng() & 1 ? -1.f : 1.f) * std::exp2(exponent(rng)));
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<uint16_t> got(values.size() + 1);
    cpu_impl::narrow_to_half(values.data() + 1, got.data() + 1, static_cast<int64_t>(values.size() - 1), dt);
    int bad = 0;
    for (size_t i = 1; i < values.size(); ++i) {
      const uint16_t want = scalar_narrow(values[i], dt);
      // NaN payloads are not specified beyond staying a NaN.
      const bool same = is_nan16(want, dt) ? is_nan16(got[i], dt) : got[i] == want;
      if (!same && bad++ < 3)
        ADD_FAILURE() << "float bits 0x" << std::hex << bits_of(values[i]) << ": got 0x" << got[i] << ", want 0x" << want;
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(HalfConvert, RejectsOtherDtypes) {
  float f = 1.f;
  uint16_t h = 0;
  EXPECT_THROW(cpu_impl::widen_half(&h, &f, 1, DType::F32), Error);
  EXPECT_THROW(cpu_impl::narrow_to_half(&f, &h, 1, DType::I32), Error);
}

}  // namespace
}  // namespace lloco
