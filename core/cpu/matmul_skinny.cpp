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
// f16 / bf16 weights: DRAM traffic is the half-size weight. One row tile of x (decode) widens the
// weight in registers as the tile loads it; with several, each thread widens its current weight
// block into an f32 scratch in L1 once and every row tile reads that (one conversion per element).
// One row tile (M <= 4) reads each weight block once, so there the tile itself prefetches the next
// block line by line as it streams the current one.

// GCC 12 warns about its own AVX-512 lane extraction in the reductions below (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // _mm512_reduce_add_ps's _mm512_undefined (same bug)
#endif

#include "core/cpu/matmul_skinny.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "core/cpu/half_convert.h"

#include "core/error.h"

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

// Sum of the lanes. AVX-512: a shuffle tree in registers (the lane-by-lane loop through memory cost
// about a quarter of a 4 x 6 tile's time per 1024-deep k block).
inline float hsum(Vec v) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps(reinterpret_cast<__m512>(v));
#else
  float lanes[kLanes];
  std::memcpy(lanes, &v, sizeof(v));
  float s = 0.f;
  for (float x : lanes) s += x;
  return s;
#endif
}

// Weight element loaders: kLanes consecutive weights as floats. Half weights are widened in registers
// (AVX-512: one zero-extend + shift for bf16, one vcvtph2ps for f16; elsewhere lane by lane).
struct F32Weights {
  using T = float;
  static Vec load(const float* p) { return load_vec(p); }
  static float scalar(float v) { return v; }
};
struct BF16Weights {
  using T = uint16_t;
  static Vec load(const uint16_t* p) {
#if defined(__AVX512F__)
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return reinterpret_cast<Vec>(_mm512_slli_epi32(wide, 16));
#else
    Vec v;
    for (int l = 0; l < kLanes; ++l) v[l] = bf16_to_float(p[l]);
    return v;
#endif
  }
  static float scalar(uint16_t v) { return bf16_to_float(v); }
};
struct F16Weights {
  using T = uint16_t;
  static Vec load(const uint16_t* p) {
#if defined(__AVX512F__)
    return reinterpret_cast<Vec>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#else
    Vec v;
    for (int l = 0; l < kLanes; ++l) v[l] = half_to_float(p[l]);
    return v;
#endif
  }
  static float scalar(uint16_t v) { return half_to_float(v); }
};

using Acc = float[kMR][kNR];

// A tile's epilogue: acc[i][j] = the lanes of v[i][j] plus the scalar tail k .. kc of the products.
template <int MR, int NR, typename Wl>
void finish_tile(const Vec (&v)[MR][NR], const float* x, int64_t lda, const typename Wl::T* w, int64_t ldw, int64_t k,
                 int64_t kc, Acc& acc) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = hsum(v[i][j]);
      for (int64_t kk = k; kk < kc; ++kk) s += x[i * lda + kk] * Wl::scalar(w[j * ldw + kk]);
      acc[i][j] = s;
    }
}

// acc[i][j] = sum over k in [0, kc) of x[i * lda + k] * w[j * ldw + k], for the first MR rows of x
// and NR rows of w (elements of Wl::T).
template <int MR, int NR, typename Wl>
void tile(const float* x, int64_t lda, const void* w_any, int64_t ldw, int64_t kc, Acc& acc) {
  const auto* w = static_cast<const typename Wl::T*>(w_any);
  Vec v[MR][NR] = {};
  int64_t k = 0;
  for (; k + kLanes <= kc; k += kLanes) {
    Vec wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Wl::load(w + j * ldw + k);
    for (int i = 0; i < MR; ++i) {
      const Vec xv = load_vec(x + i * lda + k);  // one x register live at a time: 24 + 6 + 1 of 32
      for (int j = 0; j < NR; ++j) v[i][j] += xv * wv[j];
    }
  }
  finish_tile<MR, NR, Wl>(v, x, lda, w, ldw, k, kc, acc);
}

// The tile for a single row tile of x (decode: MR <= kMR rows in all): the same products as `tile`,
// but while it streams its NR weight rows it prefetches the same line of the next block's rows
// (`next`, next_nr of them), so the next block's DRAM reads are spread evenly over this block's
// instead of issued as one burst after it (bf16 4096 x 4096 at M = 1: +10% of read bandwidth).
template <int MR, int NR, typename Wl>
void streaming_tile(const float* x, int64_t lda, const void* w_any, int64_t ldw, int64_t kc, const void* next_any,
                    int next_nr, Acc& acc) {
  using T = typename Wl::T;
  constexpr int64_t kPerLine = 64 / sizeof(T);  // weights per cache line: a whole number of vectors
  const auto* w = static_cast<const T*>(w_any);
  const auto* next = static_cast<const T*>(next_any);
  Vec v[MR][NR] = {};
  const auto step = [&](int64_t k) {
    Vec xv[MR];  // MR x registers and one weight register live: at most 4 + 24 + 1 of 32
    for (int i = 0; i < MR; ++i) xv[i] = load_vec(x + i * lda + k);
    for (int j = 0; j < NR; ++j) {
      const Vec wv = Wl::load(w + j * ldw + k);
      for (int i = 0; i < MR; ++i) v[i][j] += xv[i] * wv;
    }
  };
  int64_t k = 0;
  for (; k + kPerLine <= kc; k += kPerLine) {
    for (int j = 0; j < next_nr; ++j) __builtin_prefetch(next + j * ldw + k, 0, 2);
    for (int64_t s = 0; s < kPerLine; s += kLanes) step(k + s);
  }
  for (; k + kLanes <= kc; k += kLanes) step(k);
  finish_tile<MR, NR, Wl>(v, x, lda, w, ldw, k, kc, acc);
}

using TileFn = void (*)(const float*, int64_t, const void*, int64_t, int64_t, Acc&);
using StreamingTileFn = void (*)(const float*, int64_t, const void*, int64_t, int64_t, const void*, int, Acc&);

template <typename Wl, int MR, int... NR>
constexpr TileFn kTilesOf[] = {&tile<MR, NR + 1, Wl>...};
template <typename Wl, int MR, int... NR>
constexpr StreamingTileFn kStreamingTilesOf[] = {&streaming_tile<MR, NR + 1, Wl>...};
template <typename Wl, int... MR, int... NR>
constexpr auto tiles_of(std::integer_sequence<int, MR...>, std::integer_sequence<int, NR...>) {
  return std::array<const TileFn*, kMR>{kTilesOf<Wl, MR + 1, NR...>...};
}
template <typename Wl, int... MR, int... NR>
constexpr auto streaming_tiles_of(std::integer_sequence<int, MR...>, std::integer_sequence<int, NR...>) {
  return std::array<const StreamingTileFn*, kMR>{kStreamingTilesOf<Wl, MR + 1, NR...>...};
}
// [mr - 1][nr - 1]: the tile function for the edge tiles too, per weight element type.
template <typename Wl>
constexpr auto kTiles =
    tiles_of<Wl>(std::make_integer_sequence<int, kMR>{}, std::make_integer_sequence<int, kNR>{});
template <typename Wl>
constexpr auto kStreamingTiles =
    streaming_tiles_of<Wl>(std::make_integer_sequence<int, kMR>{}, std::make_integer_sequence<int, kNR>{});

// Prefetches (to L2) part `part` of `parts` of the weight block rows [n0, n0 + nr) x [k0, k0 + kc)
// (elements of `esize` bytes), so the block after the current one is in cache when its first row
// block of x reaches it.
inline void prefetch_part(const char* w, int64_t ldw, int64_t esize, int64_t n0, int nr, int64_t k0, int64_t kc,
                          int64_t part, int64_t parts) {
  constexpr int64_t kLine = 64;
  const int64_t per_row = (kc * esize + kLine - 1) / kLine, lines = per_row * nr;
  const int64_t begin = lines * part / parts, end = lines * (part + 1) / parts;
  int64_t row = begin / per_row, line = begin % per_row;  // walked without a division per line
  for (int64_t l = begin; l < end; ++l) {
    __builtin_prefetch(w + ((n0 + row) * ldw + k0) * esize + line * kLine, 0, 2);
    if (++line == per_row) {
      line = 0;
      ++row;
    }
  }
}

}  // namespace

void gemm_skinny(float* out, int64_t ldo, int64_t out_col_stride, const float* x, int64_t lda, const void* w,
                 DType w_dtype, int64_t ldw, int64_t M, int64_t N, int64_t K, bool accumulate) {
  LLOCO_CHECK(w_dtype == DType::F32 || w_dtype == DType::F16 || w_dtype == DType::BF16, "gemm_skinny",
              "weight dtype must be f32, f16 or bf16, got ", dtype_name(w_dtype));
  const bool half = w_dtype != DType::F32;
  const int64_t esize = half ? 2 : 4;
  const char* w_bytes = static_cast<const char*>(w);
  const int64_t n_blocks = (N + kNR - 1) / kNR, m_tiles = (M + kMR - 1) / kMR;
  // A single row tile of x (decode) uses each weight block once: half weights are widened in the
  // tile's registers. Several row tiles share one widened copy of the block in an L1 scratch.
  const bool widen_to_scratch = half && m_tiles > 1;
  const auto& tiles = !half || widen_to_scratch  ? kTiles<F32Weights>
                      : w_dtype == DType::BF16 ? kTiles<BF16Weights>
                                               : kTiles<F16Weights>;
  const auto& streaming_tiles = !half                   ? kStreamingTiles<F32Weights>
                                : w_dtype == DType::BF16 ? kStreamingTiles<BF16Weights>
                                                         : kStreamingTiles<F16Weights>;
  // A single row tile of x reads each weight block once, so k blocking buys no reuse: whole weight
  // rows make the reads long sequential runs (a 4096 x 4096 bf16 weight from DRAM: 0.74 of the read
  // bandwidth with 1024-wide k blocks, 0.9 with whole rows).
  const int64_t k_block = m_tiles == 1 ? std::max<int64_t>(K, 1) : kKBlock;
  // Row stride of the widened weight block: off a multiple of 4 KB, so its kNR rows do not alias.
  constexpr int64_t kScratchLd = kKBlock + 16;
#pragma omp parallel if (n_blocks > 1 && M * N * K > (int64_t{1} << 18))
  {
    std::vector<float> scratch(widen_to_scratch ? static_cast<size_t>(kNR * kScratchLd) : 0);
    for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += k_block) {
      // k outermost: x[:, k0 : k0 + kc] (M x kc, 256 KB at M = 64) stays in L2 for every weight block.
      const int64_t kc = std::min(k_block, K - k0);
      const bool add = accumulate || k0 > 0;
      const auto store_tile = [&](const Acc& acc, int64_t m0, int64_t n0, int mr, int nr) {
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j) {
            float& o = out[(m0 + i) * ldo + (n0 + j) * out_col_stride];
            o = add ? o + acc[i][j] : acc[i][j];
          }
      };
      // Static schedule with the same bounds every k block: each thread owns the same output columns
      // throughout, so no barrier is needed between k blocks.
#pragma omp for schedule(static) nowait
      for (int64_t nb = 0; nb < n_blocks; ++nb) {
        const int64_t n0 = nb * kNR;
        const int nr = static_cast<int>(std::min<int64_t>(kNR, N - n0));
        const int64_t pn0 = n0 + kNR;  // the next weight block, prefetched
        const int pnr = static_cast<int>(std::clamp<int64_t>(N - pn0, 0, kNR));
        const void* wblock = w_bytes + (n0 * ldw + k0) * esize;
        int64_t wld = ldw;
        if (widen_to_scratch) {
          const auto* wh = static_cast<const uint16_t*>(wblock);
          for (int j = 0; j < nr; ++j) widen_half(wh + j * ldw, scratch.data() + j * kScratchLd, kc, w_dtype);
          wblock = scratch.data();
          wld = kScratchLd;
        }
        if (m_tiles == 1) {  // every row of x in one tile, which prefetches the next block as it goes
          Acc acc;
          const void* next = pnr > 0 ? w_bytes + (pn0 * ldw + k0) * esize : nullptr;
          streaming_tiles[M - 1][nr - 1](x + k0, lda, wblock, wld, kc, next, pnr, acc);
          store_tile(acc, 0, n0, static_cast<int>(M), nr);
          continue;
        }
        for (int64_t m0 = 0, t = 0; m0 < M; m0 += kMR, ++t) {
          const int mr = static_cast<int>(std::min<int64_t>(kMR, M - m0));
          Acc acc;
          tiles[mr - 1][nr - 1](x + m0 * lda + k0, lda, wblock, wld, kc, acc);
          if (pnr > 0) prefetch_part(w_bytes, ldw, esize, pn0, pnr, k0, kc, t, m_tiles);
          store_tile(acc, m0, n0, mr, nr);
        }
      }
    }
  }
}

}  // namespace lloco::cpu_impl
