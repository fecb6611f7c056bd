// Warp-level tensor-core primitives for the flash-attention kernels (sm_80+, also valid on sm_90):
// cp.async 16-byte global->shared copies with zero-fill, ldmatrix (x4, plain and transposed) on
// 32-bit per-lane swizzled addresses (LaneAddr), mma.sync m16n8k16 (bf16 or f16 inputs, f32
// accumulators), ex2.approx, packing of f32 pairs into 16-bit register pairs, quad (4-lane)
// reductions and an XOR-swizzled shared-memory tile layout.
//
// Fragment layouts of mma.sync.m16n8k16 (PTX ISA "Matrix Fragments for mma.m16n8k16"). With
// lane = threadIdx.x % 32, g = lane / 4 (the "group", 0..7) and c = lane % 4 (the thread in the quad):
//   A (16 x 16, row-major, 4 x b32 registers, each two 16-bit values, lower column in the low half):
//     a[0] = A[g    ][2c, 2c+1]      a[1] = A[g + 8][2c, 2c+1]
//     a[2] = A[g    ][2c+8, 2c+9]    a[3] = A[g + 8][2c+8, 2c+9]
//   B (16 x 8, K x N, "col": 2 x b32 registers, each two values along K, lower k in the low half):
//     b[0] = B[2c, 2c+1][g]          b[1] = B[2c+8, 2c+9][g]
//   C/D (16 x 8, f32, 4 registers):
//     d[0], d[1] = C[g    ][2c, 2c+1]
//     d[2], d[3] = C[g + 8][2c, 2c+1]
// So a row of C lives in one quad (lanes 4g..4g+3): row reductions are quad_max / quad_sum.
// Because the C layout of two adjacent n-tiles (columns 0..7 and 8..15) equals the A layout of one
// 16-wide k block, an f32 accumulator (e.g. softmax probabilities P) becomes an A operand in
// registers: a = {pack(d0[0], d0[1]), pack(d0[2], d0[3]), pack(d1[0], d1[1]), pack(d1[2], d1[3])}.
//
// ldmatrix.m8n8.x4: lanes 8i..8i+7 give the row addresses (16 bytes each) of 8x8 matrix i, and
// register r[i] receives matrix i with lane holding row g, columns 2c and 2c+1 (x2: lanes 0..15
// give addresses, r[0], r[1]). With .trans, lane holds matrix i's column g, rows 2c and 2c+1.
// Hence, for a row-major smem tile M (rows = 16-bit elements along a row):
//   - A operand of rows r0..r0+15, cols k0..k0+15: ldsm_x4 with lane address
//     M[r0 + (lane & 15)][k0 + (lane >> 4) * 8] gives a[0..3] in order.
//   - B operand when M is stored N x K (e.g. K for S = Q K^T): ldsm_x4 with lane address
//     M[n0 + (lane & 7) + ((lane >> 4) << 3)][k0 + ((lane >> 3) & 1) * 8] gives
//     {r[0], r[1]} = b of n-tile n0..n0+7 and {r[2], r[3]} = b of n-tile n0+8..n0+15.
//   - B operand when M is stored K x N (e.g. V for O = P V): ldsm_x4_trans with lane address
//     M[k0 + (lane & 15)][n0 + (lane >> 4) * 8] gives the same two pairs.
//
// Shared-memory tiles use SwizzledTile<kCols>: row-major rows of kCols 16-bit elements where the
// 16-byte chunk index is XORed with (row % 8). 8 consecutive rows read at the same logical chunk
// land in 8 different 16-byte bank groups, so ldmatrix and row-wise cp.async are conflict-free.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "cuda/kernels/flash.h"

#if defined(LLOCO_SIMT)
#include "cuda/simt/warp_ops.h"  // CPU emulation of the inline PTX below (CI without a GPU)
#endif

namespace lloco::cuda_kernels::flash {

// ---- problem addressing ----------------------------------------------------------------------------

// Sequence b of a forward problem: its lengths and the element offsets of its row 0 in q/k/v/o and
// lse (varlen: packed rows from cu_seqlens; dense: the batch strides).
struct FwdSeq {
  int len_q, len_k;
  int64_t q_off, k_off, v_off, o_off, lse_off;
};

__device__ __forceinline__ FwdSeq fwd_seq(const FlashParams& p, int b) {
  FwdSeq r;
  r.len_q = p.seqlen_q;
  r.len_k = p.seqlen_k;
  if (p.cu_seqlens_q) {
    const int q0 = p.cu_seqlens_q[b], k0 = p.cu_seqlens_k[b];
    r.len_q = p.cu_seqlens_q[b + 1] - q0;
    r.len_k = p.cu_seqlens_k[b + 1] - k0;
    r.q_off = q0 * p.q_row_stride;
    r.k_off = k0 * p.k_row_stride;
    r.v_off = k0 * p.v_row_stride;
    r.o_off = q0 * p.o_row_stride;
    r.lse_off = q0;
  } else {
    r.q_off = b * p.q_batch_stride;
    r.k_off = b * p.k_batch_stride;
    r.v_off = b * p.v_batch_stride;
    r.o_off = b * p.o_batch_stride;
    r.lse_off = b * p.lse_batch_stride;
  }
  return r;
}

// ---- cp.async --------------------------------------------------------------------------------------

// Copies 16 bytes global -> shared (bypassing L1), or writes 16 zero bytes when !valid. Both
// addresses must be 16-byte aligned, and gmem must be a mapped address even when !valid (pass
// any in-bounds pointer, e.g. the tile base): no bytes are read from it then.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::cp_async(smem, gmem, 16, valid ? 16 : 0);
#else
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
#endif
}

// Closes the group of cp.async issued by this thread since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most N of this thread's committed groups are still in flight. Other threads'
// copies become visible only after a following __syncthreads (or __syncwarp for warp-private data).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(LLOCO_SIMT)
  ::lloco::simt::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// ---- ldmatrix ----------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
#if defined(LLOCO_SIMT)
  return ::lloco::simt::shared_address(p);
#else
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#endif
}

// ldmatrix x4 (plain and .trans) on 32-bit shared-window addresses: the main loops keep their
// per-lane addresses as 32-bit offsets (half the registers of generic pointers, see LaneAddr). The
// "memory" clobbers keep these reads in program order around barriers and plain C++ stores to the
// same tile (e.g. an epilogue staging buffer).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::ldmatrix<4, false>(r, ::lloco::simt::shared_pointer(addr, 16));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#endif
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::ldmatrix<4, true>(r, ::lloco::simt::shared_pointer(addr, 16));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#endif
}

// Per-lane byte offsets of ldmatrix row addresses in a SwizzledTile<kCols>. A lane's row is
// r0 + lane_row with r0 % 8 == 0, so the swizzle phase (row % 8) depends on the lane only, and for
// an even chunk c0 the physical chunk is c0 ^ y with y = lane_chunk ^ (lane_row % 8). The offset of
// (r0, c0) is then (base ^ (c0 << 4)) + r0 * kRowBytes: two immediate-operand ops.
template <int kCols>
struct LaneAddr {
  static_assert(kCols == 64 || kCols == 128, "rows of 8 or 16 16-byte chunks, like SwizzledTile");
  static constexpr int kRowBytes = kCols * 2;
  uint32_t base;
  __device__ __forceinline__ LaneAddr(int lane_row, int lane_chunk) {
    base = static_cast<uint32_t>(lane_row * kRowBytes + ((lane_chunk ^ (lane_row & 7)) << 4));
  }
  __device__ __forceinline__ uint32_t at(int r0, int c0) const {
    return (base ^ static_cast<uint32_t>(c0 << 4)) + static_cast<uint32_t>(r0 * kRowBytes);
  }
};

// Hides x's value from the compiler (no instruction): per-lane bases passed through this inside a
// loop make the compiler recompute the (base ^ c) offsets there, two cheap integer ops each, instead
// of hoisting every distinct offset into its own register for the whole loop.
__device__ __forceinline__ void opaque(uint32_t& x) {
#if !defined(LLOCO_SIMT)
  asm volatile("" : "+r"(x));
#endif
}
__device__ __forceinline__ void opaque(int64_t& x) {
#if !defined(LLOCO_SIMT)
  asm volatile("" : "+l"(x));
#endif
}

// 2^x by the SFU (ex2.approx.ftz: an SFU approximation whose subnormal results flush to 0; -inf gives +0, which is how
// masked scores vanish). exp2f would add a range fix-up (a compare and two multiplies) per call.
__device__ __forceinline__ float exp2_ftz(float x) {
#if defined(LLOCO_SIMT)
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;  // .ftz flushes subnormal results
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#endif
}

// ---- mma.sync m16n8k16 ---------------------------------------------------------------------------------

// d += a * b (f32 accumulate), T = __nv_bfloat16 or __half.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                         const uint32_t (&b)[2]) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::mma_16816<__nv_bfloat16>(d, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(LLOCO_SIMT)
  ::lloco::simt::mma_16816<__half>(d, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ---- conversions -----------------------------------------------------------------------------------------

// Rounds (lo, hi) to T (round-to-nearest-even) and packs them: lo in bits 0..15, hi in 16..31,
// which is the order of two adjacent columns in an mma fragment register.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// ---- quad reductions ---------------------------------------------------------------------------------------

// Reduce over the 4 lanes of a quad (lanes 4g..4g+3), i.e. over one row of an mma C fragment;
// every lane of the quad gets the result. All 32 lanes must call.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---- swizzled shared-memory tiles -------------------------------------------------------------------------

// Row-major tile of 16-bit elements with kCols per row (64 or 128: 8 or 16 chunks of 16 bytes).
// The element (row, col) lives at offset(row, col); col must keep its 8-element chunk together
// (any col works, but only a col % 8 == 0 address is a valid 16-byte cp.async/ldmatrix row).
template <int kCols>
struct SwizzledTile {
  static_assert(kCols == 64 || kCols == 128, "swizzle assumes rows of 8 or 16 16-byte chunks");
  static constexpr int kChunks = kCols / 8;
  __device__ __forceinline__ static int offset(int row, int col) {
    return row * kCols + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
  }
};

// Epilogue: a warp copies its kRows staged output rows (rows warp_row.. of a SwizzledTile<kD> in
// shared memory) to global memory in 16-byte pieces; rows at or past rows_valid are not written.
template <int kD, int kRows, typename T>
__device__ __forceinline__ void store_warp_rows(T* g_out, int64_t row_stride, const T* s_tile, int warp_row,
                                                int rows_valid, int lane) {
  using Tile = SwizzledTile<kD>;
#pragma unroll
  for (int it = 0; it < kRows * Tile::kChunks / 32; ++it) {
    const int i = lane + it * 32;
    const int row = warp_row + i / Tile::kChunks, col = (i % Tile::kChunks) * 8;
    if (row < rows_valid)
      *reinterpret_cast<uint4*>(g_out + static_cast<int64_t>(row) * row_stride + col) =
          *reinterpret_cast<const uint4*>(s_tile + Tile::offset(row, col));
  }
}

}  // namespace lloco::cuda_kernels::flash
