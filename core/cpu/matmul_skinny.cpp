// f32 GEMM for few rows against a weight in nn.Linear layout: out[m, n] (+)= sum_k x[m, k] w[n, k].
//
// Why not Eigen here: Eigen's GEMM first packs the whole right operand into panels. With a 64-row x
// against a 4096 x 11008 weight, that copy of the big operand costs about as much as the products
// (the matmul bench measured 0.60-0.81x OpenBLAS on those shapes). This kernel streams the weight
// rows as they lie (k contiguous) and never copies them:
//   - a kMR x kNR register tile (AVX-512: 4 rows of x against 6 rows of w, vectorized along k, 24
//     accumulators), so each 16-lane step issues 24 FMAs for 4 loads of x and 6 of w;
//   - k in blocks of kKBlock, outermost: the x slice (64 rows: 256 KB) stays in L2, and a block of 6
//     weight rows (24 KB) stays in L1 while every row block of x passes over it; x, the operand
//     read from L2, costs 1 load per 6 FMAs;
//   - the next weight block is prefetched into L2 while the current one is in use (without it,
//     the first pass over each block waits on DRAM: 0.6x OpenBLAS on the 11008-row weight);
//   - OpenMP over the blocks of weight rows.

// GCC 12 warns about its own AVX-512 lane extraction in the reductions below (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "core/cpu/matmul_skinny.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace lloco::cpu_impl {

namespace {

// One vector register of floats and the tile that fills the register file: AVX-512 has 32 of 16
// lanes (24 accumulators + 6 w + 1 x); AVX has 16 of 8 and SSE 16 of 4 (12 + 3 + 1).
#if defined(__AVX512F__)
constexpr int kLanes = 16, kMR = 4, kNR = 6;
#elif defined(__AVX__)
constexpr int kLanes = 8, kMR = 4, kNR = 3;
#else
constexpr int kLanes = 4, kMR = 4, kNR = 3;
#endif
using Vec = float __attribute__((vector_size(kLanes * sizeof(float))));
constexpr int64_t kKBlock = 1024;

inline Vec load_vec(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

inline float hsum(Vec v) {
  float lanes[kLanes];
  std::memcpy(lanes, &v, sizeof(v));
  float s = 0.f;
  for (float x : lanes) s += x;
  return s;
}

using Acc = float[kMR][kNR];

// acc[i][j] = sum over k in [0, kc) of x[i * lda + k] * w[j * ldw + k], for the first MR rows of x
// and NR rows of w.
template <int MR, int NR>
void tile(const float* x, int64_t lda, const float* w, int64_t ldw, int64_t kc, Acc& acc) {
  Vec v[MR][NR] = {};
  int64_t k = 0;
  for (; k + kLanes <= kc; k += kLanes) {
    Vec wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_vec(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const Vec xv = load_vec(x + i * lda + k);  // one x register live at a time: 24 + 6 + 1 of 32
      for (int j = 0; j < NR; ++j) v[i][j] += xv * wv[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = hsum(v[i][j]);
      for (int64_t kk = k; kk < kc; ++kk) s += x[i * lda + kk] * w[j * ldw + kk];
      acc[i][j] = s;
    }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, Acc&);

template <int MR, int... NR>
constexpr TileFn kTilesOf[] = {&tile<MR, NR + 1>...};
template <int... MR, int... NR>
constexpr auto tiles_of(std::integer_sequence<int, MR...>, std::integer_sequence<int, NR...>) {
  return std::array<const TileFn*, kMR>{kTilesOf<MR + 1, NR...>...};
}
// [mr - 1][nr - 1]: the tile function for the edge tiles too.
constexpr auto kTiles = tiles_of(std::make_integer_sequence<int, kMR>{}, std::make_integer_sequence<int, kNR>{});

// Prefetches (to L2) part `part` of `parts` of the weight block rows [n0, n0 + nr) x [k0, k0 + kc),
// so the block after the current one is in cache when its first row block of x reaches it.
inline void prefetch_part(const float* w, int64_t ldw, int64_t n0, int nr, int64_t k0, int64_t kc, int64_t part,
                          int64_t parts) {
  constexpr int64_t kLine = 64 / sizeof(float);
  const int64_t per_row = (kc + kLine - 1) / kLine, lines = per_row * nr;
  const int64_t begin = lines * part / parts, end = lines * (part + 1) / parts;
  for (int64_t l = begin; l < end; ++l)
    __builtin_prefetch(w + (n0 + l / per_row) * ldw + k0 + (l % per_row) * kLine, 0, 2);
}

}  // namespace

void gemm_skinny_f32(float* out, int64_t ldo, int64_t out_col_stride, const float* x, int64_t lda, const float* w,
                     int64_t ldw, int64_t M, int64_t N, int64_t K, bool accumulate) {
  const int64_t n_blocks = (N + kNR - 1) / kNR, m_tiles = (M + kMR - 1) / kMR;
#pragma omp parallel if (n_blocks > 1 && M * N * K > (int64_t{1} << 18))
  for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += kKBlock) {
    // k outermost: x[:, k0 : k0 + kc] (M x kc, 256 KB at M = 64) stays in L2 for every weight block.
    const int64_t kc = std::min(kKBlock, K - k0);
    const bool add = accumulate || k0 > 0;
    // Static schedule with the same bounds every k block: each thread owns the same output columns
    // throughout, so no barrier is needed between k blocks.
#pragma omp for schedule(static) nowait
    for (int64_t nb = 0; nb < n_blocks; ++nb) {
      const int64_t n0 = nb * kNR;
      const int nr = static_cast<int>(std::min<int64_t>(kNR, N - n0));
      const int pnr = static_cast<int>(std::clamp<int64_t>(N - n0 - kNR, 0, kNR));  // the next weight block
      for (int64_t m0 = 0, t = 0; m0 < M; m0 += kMR, ++t) {
        const int mr = static_cast<int>(std::min<int64_t>(kMR, M - m0));
        Acc acc;
        kTiles[mr - 1][nr - 1](x + m0 * lda + k0, lda, w + n0 * ldw + k0, ldw, kc, acc);
        if (pnr > 0) prefetch_part(w, ldw, n0 + kNR, pnr, k0, kc, t, m_tiles);
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j) {
            float& o = out[(m0 + i) * ldo + (n0 + j) * out_col_stride];
            o = add ? o + acc[i][j] : acc[i][j];
          }
      }
    }
  }
}

}  // namespace lloco::cpu_impl
