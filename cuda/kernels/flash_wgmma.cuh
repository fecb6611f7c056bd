// Hopper warpgroup MMA primitives (wgmma, sm_90a only) for the sm_90 flash-attention forward
// (flash_fwd_sm90.cu): shared-memory matrix descriptors for 128-byte-swizzled tiles, wgmma.mma_async
// with the A operand in registers or in shared memory and B in shared memory, the fence / commit /
// wait protocol, and the generic-to-async proxy fence that cp.async- and st.shared-written tiles need
// before wgmma reads them.
//
// Only sm_90a (LLOCO_CUDA_ARCHS "90a") has wgmma; for other targets these compile to __trap() and
// the host side never launches a kernel that uses them (flash_wgmma_available()).
//
// Layouts (PTX ISA, "Asynchronous Warpgroup Level Matrix Instructions"). A warpgroup is 4
// consecutive warps (128 threads, the first warp's index a multiple of 4); warp w of the group owns
// rows 16w .. 16w + 15 of the 64-row A and D tiles, with the mma.m16n8k16 per-warp layouts
// (flash_mma.cuh), g = lane / 4, c = lane % 4:
//   A (64 x 16, registers): a[0] = A[16w + g][2c, 2c+1], a[1] = A[16w + g + 8][2c, 2c+1],
//                           a[2] = A[16w + g][2c+8, 2c+9], a[3] = A[16w + g + 8][2c+8, 2c+9]
//   D (64 x N, f32, N / 2 registers): d[4j + 0, 1] = D[16w + g][8j + 2c, +1],
//                                     d[4j + 2, 3] = D[16w + g + 8][8j + 2c, +1]   (j < N / 8)
// B (16 x N, K x N) lives in shared memory as 128-byte swizzle atoms: 8 rows of 128 bytes (64
// 16-bit elements) stored contiguously (1024 bytes, 1024-byte aligned), where the 16-byte chunk
// index of an element is XORed with its row's index within the atom (address bits 4..6 ^= 7..9).
//   K-major B (kTransB = 0; element (k, n) at row n, column k of the atoms, e.g. K of S = Q K^T):
//     atoms stack along n at stride SBO (1024 for a dense tile); a k-step of 16 starts 32 bytes
//     further into the rows; LBO is unused.
//   N-major B (kTransB = 1; element (k, n) at row k, column n, e.g. V of O = P V): the 64-column
//     atom blocks along n sit LBO bytes apart, 8-row groups along k SBO bytes apart.
// A shared-memory A operand (64 x 16, wgmma_ss) uses the same two layouts with m in place of n:
// K-major (kTransA = 0, row m) or M-major (kTransA = 1, row k, 64 m-columns).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/kernels/flash_mma.cuh"

#if defined(LLOCO_SIMT)
#include "cuda/simt/wgmma.h"  // CPU emulation of the instructions below (CI without a GPU)
#endif

#if defined(LLOCO_SIMT) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LLOCO_HAS_WGMMA 1
#endif

namespace lloco::cuda_kernels::flash {

// Descriptor of a 128-byte-swizzled shared-memory operand starting at shared-window address
// `addr` (16-byte aligned; swizzle atoms 1024-byte aligned): bits 0-13 addr >> 4, 16-29 LBO >> 4,
// 32-45 SBO >> 4, 49-51 base offset 0, 62-63 layout 1 (128-byte swizzle).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32 | uint64_t{1} << 62;
}

// Orders this thread's register writes (accumulators, A fragments) before the wgmma that follows;
// required before the first wgmma of a batch.
__device__ __forceinline__ void wgmma_fence() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::wgmma_fence();
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Closes the batch of wgmma issued since the last commit into one group.
__device__ __forceinline__ void wgmma_commit() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::wgmma_commit_group();
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Waits until at most N committed groups are in flight; only then may their accumulators be read
// (after wgmma_fence_acc) and their shared-memory operands be overwritten.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::wgmma_wait_group(N);
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}

// Pins accumulator registers at this point of the instruction stream: the compiler sees the wgmma
// asm as having written them when it was issued, so without this it could move their reads or
// writes across the wait that actually completes them.
template <int kRegs>
__device__ __forceinline__ void wgmma_fence_acc(float (&d)[kRegs]) {
#if !defined(LLOCO_SIMT)
#pragma unroll
  for (int i = 0; i < kRegs; ++i) asm volatile("" : "+f"(d[i])::"memory");
#endif
}

// Makes this thread's generic-proxy shared-memory writes (st.shared, completed cp.async) visible to
// the async proxy that wgmma reads through. Each writer fences before the barrier that publishes
// the tile.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::fence_proxy_async();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
  __trap();
#endif
}

// The flash kernels' wgmma tile layout: column blocks of 64 head-dim elements (128-byte rows), block
// cb at cb * kRows * 128 bytes, row r at r * 128 inside it, 16-byte chunk ch of the row at chunk
// ch ^ (r % 8). A K-major operand when its rows are the M / N index (K in S = Q K^T), N-major when
// they are the K index (V in O = P V).
//
// Copies rows [0, rows_valid) of a kRows x kD tile into that layout with
// cp.async from all kThreads threads; rows >= rows_valid become zeros. Thread tid copies chunk
// tid % kChunks of rows tid / kChunks + i * kRowStep; kRowStep is a multiple of 8, so the swizzled
// chunk is fixed per thread.
template <int kRows, int kD, int kThreads, typename T>
__device__ __forceinline__ void load_tile_sw128(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int tid) {
  constexpr int kChunks = kD / 8, kRowStep = kThreads / kChunks;
  static_assert(kRows % kRowStep == 0 && kRowStep % 8 == 0, "tile must split evenly over the CTA");
  const int row = tid / kChunks, chunk = tid % kChunks;
  const T* src = gmem + row * row_stride + chunk * 8;
  int64_t step = kRowStep * row_stride;
  opaque(step);
  T* dst = smem + (chunk / 8) * kRows * 64 + row * 64 + ((chunk % 8) ^ (row % 8)) * 8;
#pragma unroll
  for (int it = 0; it < kRows / kRowStep; ++it) {
    const bool valid = row + it * kRowStep < rows_valid;
    cp_async_16(dst + it * kRowStep * 64, valid ? src : gmem, valid);
    src += step;
  }
}

// st.shared.u32 of a word that a wgmma reads later (publish it with fence_proxy_async + a barrier).
// The simt build checks that protocol (and that no in-flight wgmma still reads the word).
__device__ __forceinline__ void st_shared_for_wgmma(uint32_t addr, uint32_t v) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::shared_store_for_wgmma(addr, &v, 4);
#else
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
#endif
}

#define LLOCO_WG_ACC8(d, i)                                                                                  \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define LLOCO_WG_ACC32(d) LLOCO_WG_ACC8(d, 0), LLOCO_WG_ACC8(d, 8), LLOCO_WG_ACC8(d, 16), LLOCO_WG_ACC8(d, 24)
#define LLOCO_WG_ACC64(d) \
  LLOCO_WG_ACC32(d), LLOCO_WG_ACC8(d, 32), LLOCO_WG_ACC8(d, 40), LLOCO_WG_ACC8(d, 48), LLOCO_WG_ACC8(d, 56)
#define LLOCO_WG_D32                                                                                          \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define LLOCO_WG_D64                                                                                          \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
// d, {a0..a3}, b-desc, scale-d (predicate from `accumulate`), imm-scale-a 1, imm-scale-b 1, imm-trans-b;
// `ops` names the operands after the accumulators: "%32".."%38" for N = 64, "%64".."%70" for N = 128.
#define LLOCO_WG_RS(shape, type, dregs, a0, a1, a2, a3, desc, scale_d, trans_b)                            \
  "{\n.reg .pred p;\nsetp.ne.b32 p, " scale_d ", 0;\nwgmma.mma_async.sync.aligned." shape ".f32." type "." type \
  " " dregs ", {" a0 ", " a1 ", " a2 ", " a3 "}, " desc ", p, 1, 1, " trans_b ";\n}\n"
// d, a-desc, b-desc, scale-d, imm-scale-a 1, imm-scale-b 1, imm-trans-a, imm-trans-b.
#define LLOCO_WG_SS(shape, type, dregs, desc_a, desc_b, scale_d, trans_a, trans_b)                         \
  "{\n.reg .pred p;\nsetp.ne.b32 p, " scale_d ", 0;\nwgmma.mma_async.sync.aligned." shape ".f32." type "." type \
  " " dregs ", " desc_a ", " desc_b ", p, 1, 1, " trans_a ", " trans_b ";\n}\n"
// Expands the OPS list into separate arguments before LLOCO_WG_RS / LLOCO_WG_SS see them.
#define LLOCO_WG_RS_EXPAND(...) LLOCO_WG_RS(__VA_ARGS__)
#define LLOCO_WG_SS_EXPAND(...) LLOCO_WG_SS(__VA_ARGS__)
#define LLOCO_WG_OPS32 "%32", "%33", "%34", "%35", "%36", "%37", "%38"
#define LLOCO_WG_OPS64 "%64", "%65", "%66", "%67", "%68", "%69", "%70"
#define LLOCO_WG_SS_OPS32 "%32", "%33", "%34", "%35", "%36"
#define LLOCO_WG_SS_OPS64 "%64", "%65", "%66", "%67", "%68"

// d (64 x N, f32) = A (64 x 16, registers) * B (16 x N, shared memory via desc_b) + (accumulate ? d : 0),
// issued asynchronously by the whole warpgroup (every thread calls it with its own fragments). T is
// __nv_bfloat16 or __half; kTransB 0 = K-major B, 1 = N-major B (see the header comment).
template <int N, typename T, int kTransB>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, bool accumulate) {
  static_assert(N == 64 || N == 128, "instantiated shapes: m64n64k16 and m64n128k16");
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 inputs");
#if defined(LLOCO_SIMT)
  ::lloco::simt::wgmma_rs<N, T>(d, a, desc_b, accumulate, kTransB != 0);
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (N == 64 && std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(LLOCO_WG_RS_EXPAND("m64n64k16", "bf16", LLOCO_WG_D32, LLOCO_WG_OPS32)
                 : LLOCO_WG_ACC32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  } else if constexpr (N == 64) {
    asm volatile(LLOCO_WG_RS_EXPAND("m64n64k16", "f16", LLOCO_WG_D32, LLOCO_WG_OPS32)
                 : LLOCO_WG_ACC32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(LLOCO_WG_RS_EXPAND("m64n128k16", "bf16", LLOCO_WG_D64, LLOCO_WG_OPS64)
                 : LLOCO_WG_ACC64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  } else {
    asm volatile(LLOCO_WG_RS_EXPAND("m64n128k16", "f16", LLOCO_WG_D64, LLOCO_WG_OPS64)
                 : LLOCO_WG_ACC64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }
#else
  (void)d, (void)a, (void)desc_b, (void)accumulate;
  __trap();
#endif
}

// d (64 x N, f32) = A (64 x 16, shared memory via desc_a) * B (16 x N, via desc_b) + (accumulate ? d : 0).
// kTransA 0 = K-major A, 1 = M-major A; kTransB as for wgmma_rs.
template <int N, typename T, int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
  static_assert(N == 64 || N == 128, "instantiated shapes: m64n64k16 and m64n128k16");
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 inputs");
#if defined(LLOCO_SIMT)
  ::lloco::simt::wgmma_ss<N, T>(d, desc_a, desc_b, accumulate, kTransA != 0, kTransB != 0);
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (N == 64 && std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(LLOCO_WG_SS_EXPAND("m64n64k16", "bf16", LLOCO_WG_D32, LLOCO_WG_SS_OPS32)
                 : LLOCO_WG_ACC32(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB));
  } else if constexpr (N == 64) {
    asm volatile(LLOCO_WG_SS_EXPAND("m64n64k16", "f16", LLOCO_WG_D32, LLOCO_WG_SS_OPS32)
                 : LLOCO_WG_ACC32(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(LLOCO_WG_SS_EXPAND("m64n128k16", "bf16", LLOCO_WG_D64, LLOCO_WG_SS_OPS64)
                 : LLOCO_WG_ACC64(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB));
  } else {
    asm volatile(LLOCO_WG_SS_EXPAND("m64n128k16", "f16", LLOCO_WG_D64, LLOCO_WG_SS_OPS64)
                 : LLOCO_WG_ACC64(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB));
  }
#else
  (void)d, (void)desc_a, (void)desc_b, (void)accumulate;
  __trap();
#endif
}

#undef LLOCO_WG_SS
#undef LLOCO_WG_SS_EXPAND
#undef LLOCO_WG_SS_OPS32
#undef LLOCO_WG_SS_OPS64
#undef LLOCO_WG_RS
#undef LLOCO_WG_RS_EXPAND
#undef LLOCO_WG_OPS64
#undef LLOCO_WG_OPS32
#undef LLOCO_WG_D64
#undef LLOCO_WG_D32
#undef LLOCO_WG_ACC64
#undef LLOCO_WG_ACC32
#undef LLOCO_WG_ACC8

}  // namespace lloco::cuda_kernels::flash
