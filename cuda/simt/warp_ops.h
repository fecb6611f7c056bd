// simt emulation of the warp-level PTX that the flash-attention kernels issue as inline assembly:
// ldmatrix (x2/x4, plain and .trans), mma.sync m16n8k16 with bf16/f16 inputs and f32 accumulators,
// and cp.async with zero-fill. The fragment layouts follow the PTX ISA ("Matrix Fragments for
// mma.m16n8k16", "ldmatrix"), written down independently of the kernels' own comments so that a
// misread layout in a kernel shows up as a wrong result rather than agreeing with itself.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/simt/engine.h"

namespace lloco::simt {

// ---- ldmatrix ----------------------------------------------------------------------------------------

// Lane L supplies the address of row L % 8 of matrix L / 8. Output register i of lane L holds two
// 16-bit elements of matrix i: (row L/4, cols 2(L%4), 2(L%4)+1), or transposed (rows 2(L%4),
// 2(L%4)+1 of column L/4), the lower-indexed element in the low half.
template <int kMatrices, bool kTrans>
void ldmatrix_compute(const Slot* in, Slot* out, uint32_t) {
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, c = lane % 4;
    uint32_t r[kMatrices];
    for (int i = 0; i < kMatrices; ++i) {
      auto elem = [&](int row, int col) {
        const unsigned char* row_ptr;
        std::memcpy(&row_ptr, in[8 * i + row].bytes, sizeof(row_ptr));
        uint16_t v;
        std::memcpy(&v, row_ptr + 2 * col, 2);
        return static_cast<uint32_t>(v);
      };
      r[i] = kTrans ? (elem(2 * c, g) | elem(2 * c + 1, g) << 16) : (elem(g, 2 * c) | elem(g, 2 * c + 1) << 16);
    }
    std::memcpy(out[lane].bytes, r, sizeof(r));
  }
}

template <int kMatrices, bool kTrans>
void ldmatrix(uint32_t (&r)[kMatrices], const void* row_address) {
  if (reinterpret_cast<uintptr_t>(row_address) % 16) device_trap("ldmatrix row address not 16-byte aligned");
  const unsigned char* p = static_cast<const unsigned char*>(row_address);
  shared_address(p);  // must point into the block's shared memory
  static const char* const kName = kTrans ? (kMatrices == 4 ? "ldmatrix.x4.trans" : "ldmatrix.x2.trans")
                                          : (kMatrices == 4 ? "ldmatrix.x4" : "ldmatrix.x2");
  warp_collective(kName, 0xffffffffu, &p, sizeof(p), r, sizeof(r), &ldmatrix_compute<kMatrices, kTrans>);
}

// ---- mma.sync.m16n8k16.row.col.f32.{bf16,f16}.f32 ---------------------------------------------------

struct MmaIn {
  uint32_t a[4], b[2];
  float c[4];
};

template <typename T>
double half_bits_to_double(uint32_t bits) {
  const auto h = static_cast<uint16_t>(bits);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t f = uint32_t{h} << 16;
    float x;
    std::memcpy(&x, &f, 4);
    return x;
  } else {
    __half_raw raw;
    raw.x = h;
    return __half2float(__half(raw));
  }
}

// Lane L = 4g + c. A (16x16, row-major): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..),
// a3 = (g+8, 2c+8..). B (16x8, K x N): b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g).
// C/D (16x8): c0,c1 = (g, 2c..2c+1), c2,c3 = (g+8, 2c..2c+1).
template <typename T>
void mma_compute(const Slot* in, Slot* out, uint32_t) {
  double A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    MmaIn v;
    std::memcpy(&v, in[lane].bytes, sizeof(v));
    const int g = lane / 4, c = lane % 4;
    for (int h = 0; h < 2; ++h) {
      A[g][2 * c + h] = half_bits_to_double<T>(v.a[0] >> (16 * h));
      A[g + 8][2 * c + h] = half_bits_to_double<T>(v.a[1] >> (16 * h));
      A[g][2 * c + 8 + h] = half_bits_to_double<T>(v.a[2] >> (16 * h));
      A[g + 8][2 * c + 8 + h] = half_bits_to_double<T>(v.a[3] >> (16 * h));
      B[2 * c + h][g] = half_bits_to_double<T>(v.b[0] >> (16 * h));
      B[2 * c + 8 + h][g] = half_bits_to_double<T>(v.b[1] >> (16 * h));
      C[g][2 * c + h] = v.c[h];
      C[g + 8][2 * c + h] = v.c[2 + h];
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, c = lane % 4;
    float d[4];
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * c + (i & 1);
      double acc = C[row][col];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      d[i] = static_cast<float>(acc);
    }
    std::memcpy(out[lane].bytes, d, sizeof(d));
  }
}

template <typename T>
void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  MmaIn v;
  std::memcpy(v.a, a, sizeof(v.a));
  std::memcpy(v.b, b, sizeof(v.b));
  std::memcpy(v.c, d, sizeof(v.c));
  static_assert(sizeof(MmaIn) <= kSlotBytes, "mma operands fit a slot");
  warp_collective(std::is_same_v<T, __nv_bfloat16> ? "mma.sync.m16n8k16.bf16" : "mma.sync.m16n8k16.f16",
                  0xffffffffu, &v, sizeof(v), d, sizeof(d), &mma_compute<T>);
}

}  // namespace lloco::simt
