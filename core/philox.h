// Philox 4x32-10 counter-based RNG (Salmon et al., SC'11), shared by the CPU reference and the CUDA
// kernels so that rand/randn/dropout give bit-identical uniforms on every device.
// Contract for element n = offset + i of a tensor made with `seed`:
//   w = philox4x32_10(ctr = {uint32(n), uint32(n >> 32), 0, 0}, key = {uint32(seed), uint32(seed >> 32)})
//   uniform(n) = (w[0] >> 8) * 2^-24                                  in [0, 1)
//   normal(n)  = sqrt(-2 ln u1) * cos(2 pi u2), u1 = ((w[1] >> 8) + 1) * 2^-24 (never 0),
//                u2 = (w[2] >> 8) * 2^-24, all in float
// Uniforms are exact; normals go through logf/cosf, whose last bit may differ between libm and CUDA.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LLOCO_HD __host__ __device__ __forceinline__
#else
#define LLOCO_HD inline
#endif

namespace lloco {

struct Philox4 {
  uint32_t w[4];
};

LLOCO_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds with the Weyl key schedule; the constants are the ones from the Philox paper.
LLOCO_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

LLOCO_HD Philox4 philox_at(uint64_t seed, uint64_t n) {
  return philox4x32_10(static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

LLOCO_HD float philox_uniform(uint64_t seed, uint64_t n) {
  return static_cast<float>(philox_at(seed, n).w[0] >> 8) * 0x1p-24f;
}

LLOCO_HD float philox_normal(uint64_t seed, uint64_t n) {
  Philox4 r = philox_at(seed, n);
  float u1 = static_cast<float>((r.w[1] >> 8) + 1u) * 0x1p-24f;
  float u2 = static_cast<float>(r.w[2] >> 8) * 0x1p-24f;
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864769f * u2);
}

}  // namespace lloco
