// Tests of the simt wgmma emulation (cuda/simt/wgmma.h). Results are checked against a double
// matmul on small integers (exact in f16, bf16 and f32). The shared-memory tiles are laid out here
// with the swizzle written as "16-byte chunk index XOR row index within the 1024-byte atom" and the
// fragments with the PTX ISA's element-wise formulas, both unlike the emulator's address-bit form,
// so a slip in either shows up.
#include "cuda/simt/simt.h"
#include "cuda/simt/wgmma.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "tests/simt/launch_error.h"

namespace lloco::simt {
namespace {

uint64_t sw128_desc(uint32_t start, uint32_t lbo, uint32_t sbo, uint64_t layout = 1) {
  return uint64_t{start >> 4} | uint64_t{lbo >> 4} << 16 | uint64_t{sbo >> 4} << 32 | layout << 62;
}

// Every thread copies its share of `image` into dynamic shared memory the way the flash kernels do:
// cp.async, wait, fence.proxy.async (skipped by `unfenced_thread`), barrier.
void fill_smem(const unsigned char* image, int bytes, int unfenced_thread = -1) {
  LLOCO_DYNAMIC_SMEM(unsigned char, smem, 1024);
  const int t = threadIdx.x;
  for (int i = t * 16; i < bytes; i += static_cast<int>(blockDim.x) * 16) cp_async(smem + i, image + i, 16, 16);
  cp_async_commit();
  cp_async_wait(0);
  if (t != unfenced_thread) fence_proxy_async();
  __syncthreads();
}

// PTX wgmma A fragment (m64nNk16, 16-bit types): thread t of the warpgroup, warp w = t / 32, g = lane / 4,
// c = lane % 4, holds a_i (i = 0..7) = A[16w + g + 8 ((i / 2) % 2)][2c + (i % 2) + 8 (i / 4)], a_2j in the
// low half of register j.
template <typename T>
void load_a(uint32_t (&a)[4], const T* A) {  // A: [64, 16]
  const int t = threadIdx.x % 128, w = t / 32, g = t % 32 / 4, c = t % 4;
  uint16_t h[8];
  for (int i = 0; i < 8; ++i) {
    const int row = 16 * w + g + 8 * ((i / 2) % 2), col = 2 * c + i % 2 + 8 * (i / 4);
    std::memcpy(&h[i], &A[row * 16 + col], 2);
  }
  std::memcpy(a, h, sizeof(a));
}

// PTX wgmma D fragment: d_i (i < N / 2) = D[16w + g + 8 ((i / 2) % 2)][8 (i / 4) + 2c + (i % 2)].
template <int N>
int d_index(int i) {
  const int t = threadIdx.x % 128, w = t / 32, g = t % 32 / 4, c = t % 4;
  return (16 * w + g + 8 * ((i / 2) % 2)) * N + 8 * (i / 4) + 2 * c + i % 2;
}

// D = A_0 B_0 + ... + A_{steps-1} B_{steps-1} (+ C when `accumulate`), chained on one accumulator.
template <int N, typename T>
__global__ void chain_kernel(const unsigned char* image, int image_bytes, const T* A, const uint64_t* descs, int steps,
                             bool accumulate, bool trans_b, const float* C, float* D) {
  fill_smem(image, image_bytes);
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = C[d_index<N>(i)];
  wgmma_fence();
  for (int s = 0; s < steps; ++s) {
    uint32_t a[4];
    load_a(a, A + s * 64 * 16);
    wgmma_rs<N, T>(d, a, descs[s], s > 0 || accumulate, trans_b);
  }
  wgmma_commit_group();
  wgmma_wait_group(0);
  for (int i = 0; i < N / 2; ++i) D[d_index<N>(i)] = d[i];
}

// A shared-memory B operand: the byte image and, per k-step, its descriptor and logical B [16][N].
struct Tile {
  std::vector<unsigned char> image;
  std::vector<uint64_t> descs;
  std::vector<std::vector<double>> B;
};

template <typename T>
T to_half(double v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
  else return __float2half_rn(static_cast<float>(v));
}

template <typename T>
uint16_t bits_of(double v) {
  const T x = to_half<T>(v);
  uint16_t b;
  std::memcpy(&b, &x, 2);
  return b;
}

void put(std::vector<unsigned char>& image, size_t at, uint16_t bits) {
  if (image.size() < at + 2) image.resize((at + 2 + 15) / 16 * 16, 0);
  std::memcpy(&image[at], &bits, 2);
}

// Swizzled position of byte `byte` (< 128) of row `row` of a 1024-byte-aligned atom at `atom`.
size_t swizzled(size_t atom, int row, int byte) {
  return atom + row * 128 + ((byte / 16) ^ (row % 8)) * 16 + byte % 16;
}

// K-major: rows n of 64 k-elements (128 bytes), 8-row atoms `sbo` apart from `base`; k-step s reads
// columns k0[s] .. k0[s] + 15.
template <typename T>
Tile k_major_tile(int N, uint32_t base, uint32_t sbo, const std::vector<int>& k0, std::mt19937& rng) {
  std::uniform_int_distribution<int> small(-4, 4);
  std::vector<double> full(N * 64);
  Tile tile;
  for (int n = 0; n < N; ++n)
    for (int kk = 0; kk < 64; ++kk) {
      full[n * 64 + kk] = small(rng);
      put(tile.image, swizzled(base + n / 8 * sbo, n % 8, kk * 2), bits_of<T>(full[n * 64 + kk]));
    }
  for (int s0 : k0) {
    tile.descs.push_back(sw128_desc(base + s0 * 2, 0, sbo));
    std::vector<double> B(16 * N);
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < N; ++n) B[k * N + n] = full[n * 64 + s0 + k];
    tile.B.push_back(B);
  }
  return tile;
}

// N-major: rows k of 64 n-elements per 64-column block; blocks `lbo` apart, 8-row groups `sbo` apart;
// k-step s reads rows 16s .. 16s + 15.
template <typename T>
Tile n_major_tile(int N, int steps, uint32_t base, uint32_t lbo, uint32_t sbo, std::mt19937& rng) {
  std::uniform_int_distribution<int> small(-4, 4);
  Tile tile;
  for (int s = 0; s < steps; ++s) {
    tile.descs.push_back(sw128_desc(base + 2 * s * sbo, lbo, sbo));
    std::vector<double> B(16 * N);
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < N; ++n) {
        const int kk = 16 * s + k;
        B[k * N + n] = small(rng);
        put(tile.image, swizzled(base + n / 64 * lbo + kk / 8 * sbo, kk % 8, n % 64 * 2), bits_of<T>(B[k * N + n]));
      }
    tile.B.push_back(B);
  }
  return tile;
}

template <int N, typename T>
void check_chain(const Tile& tile, bool accumulate, bool trans_b, std::mt19937& rng) {
  const int steps = static_cast<int>(tile.descs.size());
  std::uniform_int_distribution<int> small(-4, 4);
  std::vector<T> A(steps * 64 * 16);
  std::vector<double> Ad(A.size());
  for (size_t i = 0; i < A.size(); ++i) {
    Ad[i] = small(rng);
    A[i] = to_half<T>(Ad[i]);
  }
  std::vector<float> C(64 * N), D(64 * N, NAN);
  for (auto& x : C) x = static_cast<float>(2 * small(rng));
  LLOCO_LAUNCH(1, 128, tile.image.size(), nullptr, chain_kernel<N, T>)(
      tile.image.data(), static_cast<int>(tile.image.size()), A.data(), tile.descs.data(), steps, accumulate, trans_b,
      C.data(), D.data());
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < N; ++j) {
      double want = accumulate ? C[i * N + j] : 0.0;
      for (int s = 0; s < steps; ++s)
        for (int k = 0; k < 16; ++k) want += Ad[(s * 64 + i) * 16 + k] * tile.B[s][k * N + j];
      ASSERT_EQ(D[i * N + j], want) << "D[" << i << "][" << j << "], N = " << N << (trans_b ? " N-major" : " K-major");
    }
}

TEST(SimtWgmma, KMajorMatchesMatmulAtEveryKStep) {
  std::mt19937 rng(11);
  for (int k0 : {0, 16, 32, 48}) {  // k-steps start 0, 32, 64, 96 bytes into the 128-byte rows
    check_chain<64, __nv_bfloat16>(k_major_tile<__nv_bfloat16>(64, 2048, 1024, {k0}, rng), true, false, rng);
    check_chain<128, __half>(k_major_tile<__half>(128, 0, 1024, {k0}, rng), k0 % 32 == 0, false, rng);
  }
  check_chain<64, __half>(k_major_tile<__half>(64, 1024, 2048, {48}, rng), false, false, rng);  // sparse atoms
}

TEST(SimtWgmma, NMajorMatchesMatmul) {
  std::mt19937 rng(12);
  check_chain<64, __nv_bfloat16>(n_major_tile<__nv_bfloat16>(64, 1, 1024, 0, 1024, rng), true, true, rng);
  check_chain<64, __half>(n_major_tile<__half>(64, 1, 0, 0, 1024, rng), false, true, rng);
  check_chain<128, __nv_bfloat16>(n_major_tile<__nv_bfloat16>(128, 1, 0, 2048, 1024, rng), true, true, rng);
  check_chain<128, __half>(n_major_tile<__half>(128, 1, 3072, 1024, 2048, rng), false, true, rng);
}

// D = sum_s A_s B_s (+ C) with A_s read from shared memory too (wgmma_ss).
template <int N, typename T>
__global__ void ss_chain_kernel(const unsigned char* image, int image_bytes, const uint64_t* descs_a,
                                const uint64_t* descs_b, int steps, bool accumulate, bool trans_a, bool trans_b,
                                const float* C, float* D) {
  fill_smem(image, image_bytes);
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = C[d_index<N>(i)];
  wgmma_fence();
  for (int s = 0; s < steps; ++s) wgmma_ss<N, T>(d, descs_a[s], descs_b[s], s > 0 || accumulate, trans_a, trans_b);
  wgmma_commit_group();
  wgmma_wait_group(0);
  for (int i = 0; i < N / 2; ++i) D[d_index<N>(i)] = d[i];
}

// `a` is a 64-wide tile whose logical [16][64] blocks are A^T (a.B[s][k * 64 + m] = A_s[m][k]): a
// K-major tile of 64 rows m, or an M-major one of rows k. Its image must not overlap b's.
template <int N, typename T>
void check_ss_chain(const Tile& a, bool trans_a, const Tile& b, bool trans_b, bool accumulate, std::mt19937& rng) {
  const int steps = static_cast<int>(b.descs.size());
  ASSERT_EQ(a.descs.size(), b.descs.size());
  std::vector<unsigned char> image(std::max(a.image.size(), b.image.size()), 0);
  for (size_t i = 0; i < image.size(); ++i)
    image[i] = (i < a.image.size() ? a.image[i] : 0) | (i < b.image.size() ? b.image[i] : 0);
  std::uniform_int_distribution<int> small(-4, 4);
  std::vector<float> C(64 * N), D(64 * N, NAN);
  for (auto& x : C) x = static_cast<float>(2 * small(rng));
  LLOCO_LAUNCH(1, 128, image.size(), nullptr, ss_chain_kernel<N, T>)(
      image.data(), static_cast<int>(image.size()), a.descs.data(), b.descs.data(), steps, accumulate, trans_a,
      trans_b, C.data(), D.data());
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < N; ++j) {
      double want = accumulate ? C[i * N + j] : 0.0;
      for (int s = 0; s < steps; ++s)
        for (int k = 0; k < 16; ++k) want += a.B[s][k * 64 + i] * b.B[s][k * N + j];
      ASSERT_EQ(D[i * N + j], want) << "D[" << i << "][" << j << "], N = " << N
                                    << (trans_a ? " M-major A" : " K-major A")
                                    << (trans_b ? ", N-major B" : ", K-major B");
    }
}

TEST(SimtWgmma, SharedMemoryAMatchesMatmul) {
  std::mt19937 rng(16);
  // K-major A at every k-step offset, against both B layouts (B images start at 0, A at 16 KB).
  for (int k0 : {0, 16, 32, 48}) {
    check_ss_chain<64, __nv_bfloat16>(k_major_tile<__nv_bfloat16>(64, 16384, 1024, {k0}, rng), false,
                                      k_major_tile<__nv_bfloat16>(64, 0, 1024, {k0}, rng), false, true, rng);
    check_ss_chain<128, __half>(k_major_tile<__half>(64, 16384, 1024, {k0}, rng), false,
                                n_major_tile<__half>(128, 1, 0, 4096, 1024, rng), true, false, rng);
  }
  // M-major A (the dS^T tile of the backward), chained over two k-steps.
  check_ss_chain<64, __nv_bfloat16>(n_major_tile<__nv_bfloat16>(64, 2, 16384, 0, 1024, rng), true,
                                    n_major_tile<__nv_bfloat16>(64, 2, 0, 8192, 1024, rng), true, true, rng);
  check_ss_chain<128, __half>(n_major_tile<__half>(64, 2, 16384, 8192, 1024, rng), true,
                              k_major_tile<__half>(128, 0, 1024, {0, 16}, rng), false, false, rng);
}

TEST(SimtWgmma, ChainOnOneAccumulatorUsesThePendingResult) {
  std::mt19937 rng(13);
  check_chain<128, __nv_bfloat16>(k_major_tile<__nv_bfloat16>(128, 0, 1024, {0, 16}, rng), false, false, rng);
  check_chain<64, __half>(k_major_tile<__half>(64, 1024, 1024, {32, 48}, rng), true, false, rng);
  check_chain<128, __half>(n_major_tile<__half>(128, 2, 0, 4096, 1024, rng), true, true, rng);
}

// ---- the asynchronous protocol -----------------------------------------------------------------------

// Two groups on two accumulators: d1 = A B, d2 = 2 A B. Records d1[0], d2[0] before any wait, after
// wait_group 1 and after wait_group 0 (thread 0 only; d1[0] = D[0][0]).
__global__ void two_groups_kernel(const unsigned char* image, int bytes, const __nv_bfloat16* A, uint64_t desc,
                                  float* seen) {
  fill_smem(image, bytes);
  uint32_t a[4];
  load_a(a, A);
  float d1[32], d2[32];
  for (float& x : d2) x = 0.f;
  wgmma_fence();
  wgmma_rs<64, __nv_bfloat16>(d1, a, desc, false, false);
  wgmma_commit_group();
  wgmma_rs<64, __nv_bfloat16>(d2, a, desc, false, false);
  wgmma_rs<64, __nv_bfloat16>(d2, a, desc, true, false);
  wgmma_commit_group();
  const float before[2] = {d1[0], d2[0]};
  wgmma_wait_group(1);
  const float middle[2] = {d1[0], d2[0]};
  wgmma_wait_group(0);
  if (threadIdx.x == 0) {
    const float v[6] = {before[0], before[1], middle[0], middle[1], d1[0], d2[0]};
    std::memcpy(seen, v, sizeof(v));
  }
}

TEST(SimtWgmma, AccumulatorsAreNanUntilTheirGroupRetires) {
  std::mt19937 rng(14);
  const Tile tile = k_major_tile<__nv_bfloat16>(64, 0, 1024, {0}, rng);
  std::vector<__nv_bfloat16> A(64 * 16);
  double want = 0;
  for (int k = 0; k < 16; ++k) {
    A[k] = __float2bfloat16_rn(static_cast<float>(k % 5 - 2));
    want += (k % 5 - 2) * tile.B[0][k * 64];
  }
  for (int i = 16; i < 64 * 16; ++i) A[i] = __float2bfloat16_rn(1.f);
  std::vector<float> seen(6, -1.f);
  LLOCO_LAUNCH(1, 128, tile.image.size(), nullptr, two_groups_kernel)(
      tile.image.data(), static_cast<int>(tile.image.size()), A.data(), tile.descs[0], seen.data());
  EXPECT_TRUE(std::isnan(seen[0]) && std::isnan(seen[1])) << "accumulators read before any wait_group";
  EXPECT_EQ(seen[2], want) << "wait_group 1 retires the older group";
  EXPECT_TRUE(std::isnan(seen[3])) << "wait_group 1 keeps the newest group in flight";
  EXPECT_EQ(seen[4], want);
  EXPECT_EQ(seen[5], 2 * want) << "the chain ends with its newest result";
}

// ---- reported mistakes -----------------------------------------------------------------------------------

enum class Mistake {
  kNone,
  kNoFence,
  kNoFenceAfterWait,
  kExitPending,
  kCpAsyncIntoInFlight,
  kCpAsyncAfterWait,
  kOtherWarpgroupCpAsync,
  kMismatchedCollective,
  kMismatchedWait,
  kExitDuringCollective,
  kBarrierDuringCollective,
  kBarrierBeforeCollective,
  kMixedDescriptors,
  kReadCopyInFlight,
  kStoreUnfenced,
  kStoreFenced,
  kStoreIntoInFlight,
};

template <Mistake kMistake>
__global__ void mistake_kernel(const unsigned char* image, int bytes, uint64_t desc, int unfenced_thread, float* out) {
  LLOCO_DYNAMIC_SMEM(unsigned char, smem, 1024);
  fill_smem(image, bytes, unfenced_thread);
  const int t = threadIdx.x;
  uint32_t a[4] = {0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u};  // bf16 ones
  float d[32];
  if (t >= 128) {  // the second warpgroup only writes the tile the first one reads
    __syncthreads();
    if (kMistake == Mistake::kOtherWarpgroupCpAsync && t == 200) cp_async(smem, image, 16, 16);
    return;
  }
  // Thread 127 ends the fill barrier and goes on first, so the lower threads find it waiting.
  if (kMistake == Mistake::kMismatchedCollective && t == 3) wgmma_commit_group();
  if (kMistake == Mistake::kExitDuringCollective && t == 0) return;
  if (kMistake == Mistake::kBarrierDuringCollective && t == 0) __syncthreads();
  if (kMistake == Mistake::kBarrierBeforeCollective && t == 127) __syncthreads();
  if (kMistake == Mistake::kReadCopyInFlight && t == 9) cp_async(smem + 144, image + 144, 16, 16);  // B[0..7][1]
  if ((kMistake == Mistake::kStoreUnfenced || kMistake == Mistake::kStoreFenced) && t == 9) {
    uint32_t same;  // rewrites B[0..1][1] with its own value: a clean run still computes D
    std::memcpy(&same, smem + 144, 4);
    shared_store_for_wgmma(144, &same, 4);
    if (kMistake == Mistake::kStoreFenced) fence_proxy_async();
  }
  if (kMistake != Mistake::kNoFence) wgmma_fence();
  if (kMistake == Mistake::kMixedDescriptors && t == 70) desc += 64;
  wgmma_rs<64, __nv_bfloat16>(d, a, desc, false, false);
  wgmma_commit_group();
  if (kMistake == Mistake::kExitPending) return;
  if (kMistake == Mistake::kCpAsyncIntoInFlight) cp_async(smem, image, 16, 16);  // chunk 0 holds B[0..7][0]
  if (kMistake == Mistake::kStoreIntoInFlight && t == 4) shared_store_for_wgmma(0, image, 4);
  if (kMistake == Mistake::kOtherWarpgroupCpAsync) __syncthreads();
  if (kMistake == Mistake::kMismatchedWait && t >= 64) wgmma_wait_group(1);
  else wgmma_wait_group(0);
  if (kMistake == Mistake::kCpAsyncAfterWait) cp_async(smem, image, 16, 16);
  if (kMistake == Mistake::kNoFenceAfterWait) wgmma_rs<64, __nv_bfloat16>(d, a, desc, true, false);
  out[t] = d[0];
}

template <Mistake kMistake>
std::string run_mistake(int threads = 128, uint64_t layout = 1, int unfenced_thread = -1) {
  std::mt19937 rng(15);
  const Tile tile = k_major_tile<__nv_bfloat16>(64, 0, 1024, {0}, rng);
  const uint64_t desc = sw128_desc(0, 0, 1024, layout);
  std::vector<float> out(256, NAN);
  const std::string error = launch_error([&] {
    LLOCO_LAUNCH(1, threads, tile.image.size(), nullptr, mistake_kernel<kMistake>)(
        tile.image.data(), static_cast<int>(tile.image.size()), desc, unfenced_thread, out.data());
  });
  if (error.empty()) {
    double want = 0;  // A is all ones: D[0][0] = sum_k B[k][0]
    for (int k = 0; k < 16; ++k) want += tile.B[0][k * 64];
    EXPECT_EQ(out[0], want) << "a clean run computes D";
  }
  return error;
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(SimtWgmma, CleanProtocolPasses) {
  EXPECT_EQ(run_mistake<Mistake::kNone>(), "");
  EXPECT_EQ(run_mistake<Mistake::kCpAsyncAfterWait>(), "") << "a retired wgmma no longer holds its tile";
  EXPECT_EQ(run_mistake<Mistake::kOtherWarpgroupCpAsync>(128), "");
}

TEST(SimtWgmma, ReportsMissingWgmmaFence) {
  EXPECT_HAS(run_mistake<Mistake::kNoFence>(), "wgmma.mma_async without a preceding wgmma.fence");
  EXPECT_HAS(run_mistake<Mistake::kNoFenceAfterWait>(), "wgmma.mma_async without a preceding wgmma.fence");
}

TEST(SimtWgmma, ReportsThreadExitingWithPendingWgmma) {
  EXPECT_HAS(run_mistake<Mistake::kExitPending>(), "never retired by wgmma.wait_group");
}

TEST(SimtWgmma, ReportsCpAsyncIntoTileAnInFlightWgmmaReads) {
  EXPECT_HAS(run_mistake<Mistake::kCpAsyncIntoInFlight>(), "cp.async overwrites shared memory that an in-flight wgmma");
  const std::string other = run_mistake<Mistake::kOtherWarpgroupCpAsync>(256);
  EXPECT_HAS(other, "cp.async overwrites shared memory that an in-flight wgmma");
  EXPECT_HAS(other, "thread 200 ");
}

TEST(SimtWgmma, ReportsTileReadBeforeItsCpAsyncLandedAndWasFenced) {
  // Thread 9 copies chunk 9 (atom row 1, physical chunk 1 = logical chunk 0: B[0..7][1]).
  const std::string error = run_mistake<Mistake::kNone>(128, 1, 9);
  EXPECT_HAS(error, "wgmma reads shared memory written by cp.async or st.shared without fence.proxy.async");
  EXPECT_HAS(error, "written by thread 9;");
  EXPECT_EQ(run_mistake<Mistake::kNone>(128, 1, 5), "") << "thread 5's unfenced chunk is not part of B";
  const std::string in_flight = run_mistake<Mistake::kReadCopyInFlight>();
  EXPECT_HAS(in_flight, "wgmma reads shared memory that a cp.async still in flight writes");
  EXPECT_HAS(in_flight, "issued by thread 9;");
}

TEST(SimtWgmma, ReportsStSharedWithoutProxyFenceOrIntoInFlightTiles) {
  const std::string unfenced = run_mistake<Mistake::kStoreUnfenced>();
  EXPECT_HAS(unfenced, "wgmma reads shared memory written by cp.async or st.shared without fence.proxy.async");
  EXPECT_HAS(unfenced, "written by thread 9;");
  EXPECT_EQ(run_mistake<Mistake::kStoreFenced>(), "");
  EXPECT_HAS(run_mistake<Mistake::kStoreIntoInFlight>(), "st.shared overwrites shared memory that an in-flight wgmma");
}

TEST(SimtWgmma, ReportsWarpgroupCollectiveMistakes) {
  const std::string mismatch = run_mistake<Mistake::kMismatchedCollective>();
  EXPECT_HAS(mismatch, "wgmma.commit_group");
  EXPECT_HAS(mismatch, "wgmma.fence");
  const std::string wait = run_mistake<Mistake::kMismatchedWait>();
  EXPECT_HAS(wait, "wgmma.wait_group 1");
  EXPECT_HAS(wait, "wgmma.wait_group 0");
  EXPECT_HAS(run_mistake<Mistake::kExitDuringCollective>(),
             "exited while threads of its warpgroup wait in wgmma.fence");
  EXPECT_HAS(run_mistake<Mistake::kBarrierDuringCollective>(),
             "reached __syncthreads while threads of its warpgroup wait in wgmma.fence");
  EXPECT_HAS(run_mistake<Mistake::kBarrierBeforeCollective>(), "warpgroup 0 waits in wgmma.fence (127 of 128");
  EXPECT_HAS(run_mistake<Mistake::kNone>(96), "warpgroup instructions need a multiple of 128 threads");
  EXPECT_HAS(run_mistake<Mistake::kMixedDescriptors>(), "thread 70 passes B descriptor");
}

TEST(SimtWgmma, ReportsUnemulatedDescriptorLayout) {
  EXPECT_HAS(run_mistake<Mistake::kNone>(128, 2), "simt: wgmma descriptor layout type 2 not emulated");
  EXPECT_HAS(run_mistake<Mistake::kNone>(128, 0), "simt: wgmma descriptor layout type 0 not emulated");
}

}  // namespace
}  // namespace lloco::simt
