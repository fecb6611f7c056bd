// See wgmma_probe.h. The smem tile is [rows][k or n] in 64-column blocks of 128-byte rows, block cb
// at cb * rows * 128 bytes, 16-byte chunks swizzled by row % 8: flash_fwd_sm90.cu's K/V layout.
#include "cuda/kernels/wgmma_probe.h"

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_mma.cuh"
#include "cuda/kernels/flash_wgmma.cuh"

namespace lloco::cuda_kernels {

namespace {

using namespace flash;

constexpr int kMaxK = 128;

// Copies a row-major [rows, cols] matrix into the swizzled 64-column-block layout at `tile`.
template <typename T>
__device__ void store_sw128(T* tile, const T* src, int rows, int cols, int tid) {
  for (int chunk = tid; chunk < rows * cols / 8; chunk += 128) {
    const int r = chunk / (cols / 8), ch = chunk % (cols / 8);
    cp_async_16(tile + (ch / 8) * rows * 64 + r * 64 + ((ch % 8) ^ (r % 8)) * 8, src + r * cols + ch * 8, true);
  }
}

// a: [64, k] (kALayout 0: register fragments, 1: K-major smem tile, 2: M-major smem tile, stored
// from a^T, which at_ holds as [k, 64]); b: [k, kN] (kNMajor) or [kN, k]; d: [64, kN].
template <int kN, typename T, bool kNMajor, int kALayout>
__global__ void __launch_bounds__(128) wgmma_probe_kernel(const T* a, const T* at_, const T* b, float* d, int k) {
#if defined(LLOCO_HAS_WGMMA)
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 1024);
  T* s_b = reinterpret_cast<T*>(smem_raw);
  T* s_a = s_b + kN * kMaxK;  // after the largest B tile (a multiple of 1024 bytes)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
  store_sw128(s_b, b, kNMajor ? k : kN, kNMajor ? kN : k, tid);
  if (kALayout == 1) store_sw128(s_a, a, 64, k, tid);
  if (kALayout == 2) store_sw128(s_a, at_, k, 64, tid);
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();

  // The runtime k loop makes ptxas serialize these wgmmas and add fences (C7519/C7520): this
  // kernel checks layouts, not speed.
  float acc[kN / 2];
  const uint32_t base = smem_addr(s_b), base_a = smem_addr(s_a);
  wgmma_fence();
  for (int ks = 0; ks < k / 16; ++ks) {
    const uint64_t desc_b = kNMajor ? wgmma_desc_sw128(base + ks * 16 * 128, k * 128, 1024)
                                    : wgmma_desc_sw128(base + (ks / 4) * kN * 128 + (ks % 4) * 32, 16, 1024);
    if constexpr (kALayout == 1) {  // rows m of 128 bytes, 64-column blocks 64 * 128 bytes apart
      wgmma_ss<kN, T, 0, kNMajor>(acc, wgmma_desc_sw128(base_a + (ks / 4) * 64 * 128 + (ks % 4) * 32, 16, 1024),
                                  desc_b, ks > 0);
      continue;
    } else if constexpr (kALayout == 2) {  // rows k of 64 m-elements, 8-row groups 1024 bytes apart
      wgmma_ss<kN, T, 1, kNMajor>(acc, wgmma_desc_sw128(base_a + ks * 16 * 128, 64 * 128, 1024), desc_b, ks > 0);
      continue;
    }
    uint32_t frag[4];
    const T* a0 = a + (16 * warp + g) * k + 16 * ks + 2 * c;  // PTX A fragment: rows g, g + 8; cols 2c, 2c + 8
    frag[0] = *reinterpret_cast<const uint32_t*>(a0);
    frag[1] = *reinterpret_cast<const uint32_t*>(a0 + 8 * k);
    frag[2] = *reinterpret_cast<const uint32_t*>(a0 + 8);
    frag[3] = *reinterpret_cast<const uint32_t*>(a0 + 8 * k + 8);
    wgmma_rs<kN, T, kNMajor>(acc, frag, desc_b, ks > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_acc(acc);
  for (int j = 0; j < kN / 8; ++j)
    for (int e = 0; e < 4; ++e) d[(16 * warp + g + 8 * (e / 2)) * kN + 8 * j + 2 * c + (e % 2)] = acc[4 * j + e];
#else
  __trap();
#endif
}

template <int kN, typename T, bool kNMajor, int kALayout>
void run_probe(const void* a, const void* a_t, const void* b, float* d, int k, cudaStream_t stream) {
  auto kernel = wgmma_probe_kernel<kN, T, kNMajor, kALayout>;
  const size_t smem = static_cast<size_t>(kN + 64) * kMaxK * 2;  // B tile, then the A tile
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  LLOCO_LAUNCH(1, 128, smem, stream, kernel)(static_cast<const T*>(a), static_cast<const T*>(a_t),
                                             static_cast<const T*>(b), d, k);
}

template <int kN, typename T, bool kNMajor>
void dispatch_a(const void* a, const void* a_t, const void* b, float* d, int k, int a_layout, cudaStream_t stream) {
  if (a_layout == 0) run_probe<kN, T, kNMajor, 0>(a, a_t, b, d, k, stream);
  else if (a_layout == 1) run_probe<kN, T, kNMajor, 1>(a, a_t, b, d, k, stream);
  else run_probe<kN, T, kNMajor, 2>(a, a_t, b, d, k, stream);
}

template <typename T>
void dispatch_probe(const void* a, const void* a_t, const void* b, float* d, int n, int k, bool n_major, int a_layout,
                    cudaStream_t stream) {
  if (n == 64)
    n_major ? dispatch_a<64, T, true>(a, a_t, b, d, k, a_layout, stream)
            : dispatch_a<64, T, false>(a, a_t, b, d, k, a_layout, stream);
  else
    n_major ? dispatch_a<128, T, true>(a, a_t, b, d, k, a_layout, stream)
            : dispatch_a<128, T, false>(a, a_t, b, d, k, a_layout, stream);
}

}  // namespace

void launch_wgmma_probe(const void* a, const void* a_t, const void* b, float* d, int n, int k, bool n_major,
                        int a_layout, bool is_bf16, cudaStream_t stream) {
  LLOCO_CHECK(flash_wgmma_available(), "wgmma_probe", "needs an sm_90a build and a compute capability 9.0 device");
  LLOCO_CHECK(n == 64 || n == 128, "wgmma_probe", "n ", n, " must be 64 or 128");
  LLOCO_CHECK(k >= 16 && k <= kMaxK && k % 16 == 0, "wgmma_probe", "k ", k, " must be a multiple of 16 in [16, ",
              kMaxK, "]");
  LLOCO_CHECK(!n_major || k % 8 == 0, "wgmma_probe", "k ", k, " must fill whole 8-row swizzle groups");
  const bool has_k_major_tile = !n_major || a_layout == 1;
  LLOCO_CHECK(!has_k_major_tile || k < 64 || k % 64 == 0, "wgmma_probe", "K-major k ", k,
              " must fill whole 64-column blocks");
  LLOCO_CHECK(a_layout >= 0 && a_layout <= 2, "wgmma_probe", "a_layout ", a_layout, " must be 0, 1 or 2");
  LLOCO_CHECK(a_layout != 2 || a_t != nullptr, "wgmma_probe", "a_layout 2 reads a_t, which is null");
  if (is_bf16)
    dispatch_probe<__nv_bfloat16>(a, a_t, b, d, n, k, n_major, a_layout, stream);
  else
    dispatch_probe<__half>(a, a_t, b, d, n, k, n_major, a_layout, stream);
  CUDA_LAUNCH_CHECK(stream, "wgmma_probe");
}

}  // namespace lloco::cuda_kernels
