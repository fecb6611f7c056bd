// Tests of the simt executor (cuda/simt): the semantics it gives CUDA built-ins and the mistakes it
// must report. The tensor-core layouts are checked against the PTX ISA's element-wise formulas
// ("Matrix Fragments for mma.m16n8k16", "ldmatrix"), which are written differently from the
// register-wise tables in warp_ops.h, so a slip in either shows up here.
#include "cuda/simt/simt.h"
#include "cuda/simt/warp_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/simt/launch_error.h"

namespace lloco::simt {
namespace {

// ---- tensor cores ------------------------------------------------------------------------------------

// PTX, m16n8k16 with .bf16: thread (groupID g, threadID_in_group c) holds A elements a_i,
// i = 0..7, at row g + 8 * ((i / 2) % 2), col 2c + (i % 2) + 8 * (i / 4); B elements b_i, i = 0..3,
// at row (k) 2c + (i % 2) + 8 * (i / 2), col g; C elements c_i, i = 0..3, at row g + 8 * (i / 2),
// col 2c + (i % 2).
__global__ void mma_kernel(const __nv_bfloat16* A, const __nv_bfloat16* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, c = lane % 4;
  uint16_t a16[8], b16[4];
  for (int i = 0; i < 8; ++i) {
    const int row = g + 8 * ((i / 2) % 2), col = 2 * c + (i % 2) + 8 * (i / 4);
    std::memcpy(&a16[i], &A[row * 16 + col], 2);
  }
  for (int i = 0; i < 4; ++i) std::memcpy(&b16[i], &B[(2 * c + (i % 2) + 8 * (i / 2)) * 8 + g], 2);
  uint32_t a[4], b[2];
  std::memcpy(a, a16, sizeof(a));  // element 2j in the low half of register j
  std::memcpy(b, b16, sizeof(b));
  float d[4];
  for (int i = 0; i < 4; ++i) d[i] = C[(g + 8 * (i / 2)) * 8 + 2 * c + (i % 2)];
  mma_16816<__nv_bfloat16>(d, a, b);
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i / 2)) * 8 + 2 * c + (i % 2)] = d[i];
}

TEST(SimtEngine, MmaMatchesPtxFragmentLayout) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8);  // exact in bf16, exact products and sums
  std::vector<__nv_bfloat16> A(16 * 16), B(16 * 8);
  std::vector<float> C(16 * 8), D(16 * 8, NAN);
  for (auto& x : A) x = __float2bfloat16_rn(static_cast<float>(small(rng)));
  for (auto& x : B) x = __float2bfloat16_rn(static_cast<float>(small(rng)));
  for (auto& x : C) x = static_cast<float>(small(rng));
  LLOCO_LAUNCH(1, 32, 0, nullptr, mma_kernel)(A.data(), B.data(), C.data(), D.data());
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double want = C[i * 8 + j];
      for (int k = 0; k < 16; ++k) want += __bfloat162float(A[i * 16 + k]) * __bfloat162float(B[k * 8 + j]);
      ASSERT_EQ(D[i * 8 + j], want) << "D[" << i << "][" << j << "]";
    }
}

// PTX ldmatrix: matrix m's row r address comes from thread 8m + r; thread t receives, for each
// matrix, the elements (row t / 4, cols 2 (t % 4) and 2 (t % 4) + 1), or with .trans the elements
// (rows 2 (t % 4) and 2 (t % 4) + 1, col t / 4).
template <bool kTrans>
__global__ void ldmatrix_kernel(const uint16_t* src, uint32_t* out) {
  LLOCO_DYNAMIC_SMEM(uint16_t, tile, 16);  // 4 matrices of 8 x 8, matrix m at rows 8m.., stride 16
  const int t = threadIdx.x;
  for (int i = t; i < 32 * 16; i += 32) tile[i] = src[i];
  __syncwarp();
  uint32_t r[4];
  ldmatrix<4, kTrans>(r, tile + t * 16);
  for (int m = 0; m < 4; ++m) out[t * 4 + m] = r[m];
}

template <bool kTrans>
void check_ldmatrix() {
  std::vector<uint16_t> src(32 * 16);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint16_t>(i * 7 + 3);
  std::vector<uint32_t> out(32 * 4);
  LLOCO_LAUNCH(1, 32, 32 * 16 * 2, nullptr, ldmatrix_kernel<kTrans>)(src.data(), out.data());
  auto at = [&](int m, int row, int col) { return uint32_t{src[(8 * m + row) * 16 + col]}; };
  for (int t = 0; t < 32; ++t)
    for (int m = 0; m < 4; ++m) {
      const int g = t / 4, c2 = 2 * (t % 4);
      const uint32_t want = kTrans ? at(m, c2, g) | at(m, c2 + 1, g) << 16 : at(m, g, c2) | at(m, g, c2 + 1) << 16;
      ASSERT_EQ(out[t * 4 + m], want) << "thread " << t << " matrix " << m << (kTrans ? " trans" : "");
    }
}

TEST(SimtEngine, LdmatrixMatchesPtxLayout) {
  check_ldmatrix<false>();
  check_ldmatrix<true>();
}

// ---- shuffles and barriers -------------------------------------------------------------------------------

__global__ void shuffle_kernel(int* out) {
  const int t = threadIdx.x;
  const int v = 100 + t;
  out[t * 4 + 0] = __shfl_xor_sync(0xffffffffu, v, 5);
  out[t * 4 + 1] = __shfl_down_sync(0xffffffffu, v, 3);      // lanes 29..31 keep their own value
  out[t * 4 + 2] = __shfl_up_sync(0xffffffffu, v, 2, 8);     // within 8-lane segments
  out[t * 4 + 3] = __shfl_sync(0xffffffffu, v, t % 8 + 16);  // absolute source lane
}

TEST(SimtEngine, ShufflesFollowCudaSemantics) {
  std::vector<int> out(64 * 4);
  LLOCO_LAUNCH(1, 64, 0, nullptr, shuffle_kernel)(out.data());
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, base = t - lane;
    EXPECT_EQ(out[t * 4 + 0], 100 + base + (lane ^ 5)) << t;
    EXPECT_EQ(out[t * 4 + 1], 100 + base + (lane + 3 < 32 ? lane + 3 : lane)) << t;
    EXPECT_EQ(out[t * 4 + 2], 100 + base + (lane % 8 >= 2 ? lane - 2 : lane)) << t;
    EXPECT_EQ(out[t * 4 + 3], 100 + base + lane % 8 + 16) << t;
  }
}

template <bool kBarrier>
__global__ void neighbour_kernel(float* out) {
  __shared__ float buf[128];
  const int t = threadIdx.x;
  if (t == 0)
    for (int i = 0; i < 128; ++i) buf[i] = NAN;  // as if fresh: statics keep the last block's values
  __syncthreads();
  buf[t] = static_cast<float>(t);
  if (kBarrier) __syncthreads();
  out[blockIdx.x * 128 + t] = buf[(t + 1) % 128];
}

TEST(SimtEngine, BarrierOrdersSharedMemoryAndItsAbsenceShows) {
  std::vector<float> out(2 * 128);
  LLOCO_LAUNCH(2, 128, 0, nullptr, neighbour_kernel<true>)(out.data());
  for (int i = 0; i < 256; ++i) ASSERT_EQ(out[i], static_cast<float>((i % 128 + 1) % 128)) << i;
  LLOCO_LAUNCH(2, 128, 0, nullptr, neighbour_kernel<false>)(out.data());
  EXPECT_TRUE(std::isnan(out[0])) << "without the barrier thread 0 must read thread 1's slot before it is written";
}

__global__ void early_exit_kernel(int* out) {
  __shared__ int sum;
  if (threadIdx.x == 0) sum = 0;
  __syncthreads();
  if (threadIdx.x >= 40) return;  // exited threads no longer take part in barriers
  atomicAdd(&sum, 1);
  __syncthreads();
  if (threadIdx.x == 0) *out = sum;
}

TEST(SimtEngine, ExitedThreadsLeaveBarriers) {
  int out = 0;
  LLOCO_LAUNCH(1, 96, 0, nullptr, early_exit_kernel)(&out);
  EXPECT_EQ(out, 40);
}

// ---- reported mistakes -----------------------------------------------------------------------------------------

__global__ void divergent_collective_kernel(float* out) {
  float v = 1.f;
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else __syncthreads();
  out[threadIdx.x] = v;
}

__global__ void mismatched_collective_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  v = threadIdx.x == 3 ? __shfl_down_sync(0xffffffffu, v, 1) : __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// CUDA counts barrier arrivals, not call sites (the behaviour since Volta): 64 threads at one
// __syncthreads and 64 at another complete one barrier together.
__global__ void split_barrier_kernel(int* out) {
  __shared__ int slot[128];
  slot[threadIdx.x] = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 64) __syncthreads();
  else __syncthreads();
  out[threadIdx.x] = slot[127 - threadIdx.x];
}

TEST(SimtEngine, ReportsDivergentAndMismatchedCollectives) {
  std::vector<float> out(64);
  const std::string divergent =
      launch_error([&] { LLOCO_LAUNCH(1, 64, 0, nullptr, divergent_collective_kernel)(out.data()); });
  EXPECT_NE(divergent.find("divergent_collective_kernel"), std::string::npos) << divergent;
  EXPECT_NE(divergent.find("__shfl_xor_sync"), std::string::npos) << divergent;
  const std::string mismatch =
      launch_error([&] { LLOCO_LAUNCH(1, 32, 0, nullptr, mismatched_collective_kernel)(out.data()); });
  EXPECT_NE(mismatch.find("__shfl_down_sync"), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("__shfl_xor_sync"), std::string::npos) << mismatch;
}

TEST(SimtEngine, BarriersSplitAcrossCodePathsCompleteLikeHardware) {
  std::vector<int> out(128, -1);
  LLOCO_LAUNCH(1, 128, 0, nullptr, split_barrier_kernel)(out.data());
  for (int t = 0; t < 128; ++t) ASSERT_EQ(out[t], 127 - t) << t;
}

__global__ void smem_kernel(float* out) {
  LLOCO_DYNAMIC_SMEM(float, buf, 16);
  buf[threadIdx.x] = 1.f;
  out[threadIdx.x] = buf[threadIdx.x];
}

TEST(SimtEngine, EnforcesLaunchLimits) {
  std::vector<float> out(1024);
  EXPECT_NE(launch_error([&] { LLOCO_LAUNCH(1, 1025, 0, nullptr, smem_kernel)(out.data()); }).find("1025 threads"),
            std::string::npos);
  EXPECT_NE(launch_error([&] { LLOCO_LAUNCH(dim3(1, 70000), 32, 0, nullptr, smem_kernel)(out.data()); }).find("grid"),
            std::string::npos);
  const size_t big = 100 << 10;
  EXPECT_NE(launch_error([&] { LLOCO_LAUNCH(1, 32, big, nullptr, smem_kernel)(out.data()); }).find("opt-in"),
            std::string::npos);
  ASSERT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(big)),
            cudaSuccess);
  EXPECT_EQ(launch_error([&] { LLOCO_LAUNCH(1, 32, big, nullptr, smem_kernel)(out.data()); }), "");
  EXPECT_NE(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 << 10), cudaSuccess);
}

// ---- cp.async ------------------------------------------------------------------------------------------------------

// Each thread copies its 16 bytes in two groups; after wait_group 1 only the older group landed.
__global__ void cp_async_kernel(const float* src, float* seen_early, float* seen_late) {
  LLOCO_DYNAMIC_SMEM(float, buf, 16);  // [2][32 threads][4]
  const int t = threadIdx.x;
  cp_async(buf + t * 4, src + t * 4, 16, 16);
  cp_async_commit();
  cp_async(buf + 128 + t * 4, src + t * 4, 16, t % 2 ? 16 : 0);  // odd threads copy, even zero-fill
  cp_async_commit();
  cp_async_wait(1);
  seen_early[t * 2] = buf[t * 4];
  seen_early[t * 2 + 1] = buf[128 + t * 4];
  cp_async_wait(0);
  seen_late[t] = buf[128 + t * 4];
}

TEST(SimtEngine, CpAsyncDataLandsAtItsWaitGroup) {
  std::vector<float> src(128), early(64), late(32);
  for (int i = 0; i < 128; ++i) src[i] = static_cast<float>(i + 1);
  LLOCO_LAUNCH(1, 32, 256 * sizeof(float), nullptr, cp_async_kernel)(src.data(), early.data(), late.data());
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(early[t * 2], src[t * 4]) << t;
    EXPECT_TRUE(std::isnan(early[t * 2 + 1])) << "group 2 of thread " << t << " landed before its wait";
    EXPECT_EQ(late[t], t % 2 ? src[t * 4] : 0.f) << t;
  }
}

// ---- runtime --------------------------------------------------------------------------------------------------------

TEST(SimtRuntime, ChecksDevicePointersAndPoisonsFreshMemory) {
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 100), cudaSuccess);
  float first;
  ASSERT_EQ(cudaMemcpy(&first, p, sizeof(first), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(std::isnan(first));
  std::vector<char> host(512);
  EXPECT_EQ(cudaMemcpy(host.data(), static_cast<char*>(p) + 200, 100, cudaMemcpyDeviceToHost), cudaErrorInvalidValue)
      << "a copy running past the allocation's 256 rounded bytes";
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 8, 8, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(static_cast<char*>(p) + 4), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue) << "double free";
  cudaGetLastError();
}

}  // namespace
}  // namespace lloco::simt
