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

// a: [64, k]; b: [k, kN] (kNMajor) or [kN, k]; d: [64, kN].
template <int kN, typename T, bool kNMajor>
__global__ void __launch_bounds__(128) wgmma_probe_kernel(const T* a, const T* b, float* d, int k) {
#if defined(LLOCO_HAS_WGMMA)
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 1024);
  T* s_b = reinterpret_cast<T*>(smem_raw);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
  const int rows = kNMajor ? k : kN, cols = kNMajor ? kN : k;  // of the stored matrix
  for (int chunk = tid; chunk < rows * cols / 8; chunk += 128) {
    const int r = chunk / (cols / 8), ch = chunk % (cols / 8);
    T* dst = s_b + (ch / 8) * rows * 64 + r * 64 + ((ch % 8) ^ (r % 8)) * 8;
    cp_async_16(dst, b + r * cols + ch * 8, true);
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();

  // The runtime k loop makes ptxas serialize these wgmmas and add fences (C7519/C7520): this
  // kernel checks layouts, not speed.
  float acc[kN / 2];
  const uint32_t base = smem_addr(s_b);
  wgmma_fence();
  for (int ks = 0; ks < k / 16; ++ks) {
    uint32_t frag[4];
    const T* a0 = a + (16 * warp + g) * k + 16 * ks + 2 * c;  // PTX A fragment: rows g, g + 8; cols 2c, 2c + 8
    frag[0] = *reinterpret_cast<const uint32_t*>(a0);
    frag[1] = *reinterpret_cast<const uint32_t*>(a0 + 8 * k);
    frag[2] = *reinterpret_cast<const uint32_t*>(a0 + 8);
    frag[3] = *reinterpret_cast<const uint32_t*>(a0 + 8 * k + 8);
    if constexpr (kNMajor)
      wgmma_rs<kN, T, 1>(acc, frag, wgmma_desc_sw128(base + ks * 16 * 128, k * 128, 1024), ks > 0);
    else
      wgmma_rs<kN, T, 0>(acc, frag, wgmma_desc_sw128(base + (ks / 4) * kN * 128 + (ks % 4) * 32, 16, 1024), ks > 0);
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

template <int kN, typename T, bool kNMajor>
void run_probe(const void* a, const void* b, float* d, int k, cudaStream_t stream) {
  auto kernel = wgmma_probe_kernel<kN, T, kNMajor>;
  const size_t smem = static_cast<size_t>(kN) * (k < 64 ? 64 : k) * 2;  // K-major rows are 128 bytes even for k < 64
  if (smem > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  LLOCO_LAUNCH(1, 128, smem, stream, kernel)(static_cast<const T*>(a), static_cast<const T*>(b), d, k);
}

template <typename T>
void dispatch_probe(const void* a, const void* b, float* d, int n, int k, bool n_major, cudaStream_t stream) {
  if (n == 64)
    n_major ? run_probe<64, T, true>(a, b, d, k, stream) : run_probe<64, T, false>(a, b, d, k, stream);
  else
    n_major ? run_probe<128, T, true>(a, b, d, k, stream) : run_probe<128, T, false>(a, b, d, k, stream);
}

}  // namespace

void launch_wgmma_probe(const void* a, const void* b, float* d, int n, int k, bool n_major, bool is_bf16,
                        cudaStream_t stream) {
  LLOCO_CHECK(flash_fwd_sm90_available(), "wgmma_probe", "needs an sm_90a build and a compute capability 9.0 device");
  LLOCO_CHECK(n == 64 || n == 128, "wgmma_probe", "n ", n, " must be 64 or 128");
  LLOCO_CHECK(k >= 16 && k <= kMaxK && k % 16 == 0, "wgmma_probe", "k ", k, " must be a multiple of 16 in [16, ",
              kMaxK, "]");
  LLOCO_CHECK(!n_major || k % 8 == 0, "wgmma_probe", "k ", k, " must fill whole 8-row swizzle groups");
  LLOCO_CHECK(n_major || k % 64 == 0 || k < 64, "wgmma_probe", "K-major k ", k, " must fill whole 64-column blocks");
  if (is_bf16)
    dispatch_probe<__nv_bfloat16>(a, b, d, n, k, n_major, stream);
  else
    dispatch_probe<__half>(a, b, d, n, k, n_major, stream);
  CUDA_LAUNCH_CHECK(stream, "wgmma_probe");
}

}  // namespace lloco::cuda_kernels
