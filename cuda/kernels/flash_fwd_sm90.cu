// Flash-attention forward for Hopper on warpgroup MMA (wgmma, sm_90a). Same problem, parameters
// and results as the mma.sync kernel (flash_fwd.cu); launch_flash_fwd picks this one on H100-class
// devices when the build has sm_90a code (flash_wgmma_available).
//
// One 256-thread CTA (2 warpgroups) per (128-row query tile, query head, batch); warpgroup wg owns
// query rows 64 wg .. 64 wg + 63 of the tile. Both GEMMs take their A operand from registers:
//   S = Q K^T: Q fragments are loaded once (ldmatrix) and stay in registers; K is a K-major
//     shared-memory operand (one m64 x kBlockN x 16 wgmma per 16 head-dim columns);
//   O += P V: P = exp(S - max) rounded to 16 bits in registers (the accumulator layout of S is the
//     A-fragment layout, flash_wgmma.cuh); V is an N-major shared-memory operand.
// Per key tile j the warpgroup issues S_j, then O += P_{j-1} V_{j-1}, and waits only for S_j: the
// softmax of tile j runs while the tensor cores finish P_{j-1} V_{j-1} (FlashAttention-3's
// intra-warpgroup overlap). O is rescaled after that second wait.
//
// K/V tiles stream through shared memory by cp.async from all 256 threads, one tile ahead: K in 2
// stages, V in 3 (V_{j-1} is still read by the wgmma of iteration j while tile j + 1 lands). A
// single barrier per tile publishes tile j (after each thread's fence.proxy.async: cp.async writes
// are generic-proxy, wgmma reads through the async proxy) and certifies that every warpgroup has
// retired the wgmmas of iteration j - 1, whose buffers the prefetch of tile j + 1 then reuses.
//
// Shared-memory layout of K and V tiles (what the wgmma descriptors describe): column blocks of 64
// head-dim elements (128 bytes), block cb at cb * kBlockN * 128 bytes; key row r at r * 128 inside
// it; 16-byte chunk ch of the row stored at chunk ch ^ (r % 8) (the 128-byte swizzle). Q and the O
// staging use SwizzledTile<kD> (flash_mma.cuh), read and written by ordinary instructions.
//
// Key tiles (kBlockN) and registers per thread: hd128 with 128 keys (the default): Q 32 + S 64 +
// O 64 + P 2 x 32, ~230 registers; hd128 with 64 keys (FlashParams::fwd_block_n = 64): Q 32 + S 32 +
// O 64 + P 2 x 16, ~180; hd64 with 128 keys: Q 16 + S 64 + O 32 + P 2 x 32, ~180. One CTA per SM.
// smem = Q (128 x kD) + 2 K + 3 V tiles: hd128 192 KB (128 keys) or 112 KB (64), hd64 96 KB.
#include <array>
#include <atomic>
#include <cmath>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_mma.cuh"
#include "cuda/kernels/flash_wgmma.cuh"

namespace lloco::cuda_kernels {

namespace {

using namespace flash;

constexpr int kThreads = 256;  // 2 warpgroups
constexpr int kBlockM = 128;
constexpr int kKStages = 2, kVStages = 3;

template <int kD, int kBlockN>
constexpr int kTileBytesOf = kBlockN * kD * 2;  // one K or V tile
template <int kD, int kBlockN>
constexpr size_t kSmemBytesOf =
    static_cast<size_t>(kBlockM * kD * 2) + (kKStages + kVStages) * kTileBytesOf<kD, kBlockN>;

// The row-major SwizzledTile<kD> copy for Q (read back by ldmatrix, not by wgmma).
template <int kD, typename T>
__device__ __forceinline__ void load_q_tile(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int tid) {
  using Tile = SwizzledTile<kD>;
  constexpr int kRowStep = kThreads / Tile::kChunks;
  const int row = tid / Tile::kChunks, col = (tid % Tile::kChunks) * 8;
#pragma unroll
  for (int it = 0; it < kBlockM / kRowStep; ++it) {
    const int r = row + it * kRowStep;
    const bool valid = r < rows_valid;
    cp_async_16(smem + Tile::offset(r, col), valid ? gmem + r * row_stride + col : gmem, valid);
  }
}

// q/k/v/o/lse: see FlashParams. Grid (ceil(seqlen_q / 128), heads_q, batch).
template <int kD, int kBlockN, typename T, bool kCausal, bool kEvenN>
__global__ void __launch_bounds__(kThreads, 1) flash_fwd_sm90_kernel(const FlashParams p) {
#if defined(LLOCO_HAS_WGMMA)
  constexpr int kSTiles = kBlockN / 8, kOTiles = kD / 8;  // 8-column groups of S and of O
  constexpr int kPSlices = kBlockN / 16;                  // 16-key A fragments of P
  using Tile = SwizzledTile<kD>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 1024);
  T* s_q = reinterpret_cast<T*>(smem_raw);                          // [kBlockM, kD]; O staging at the end
  T* s_k = s_q + kBlockM * kD;                                      // [kKStages][kBlockN, kD] (wgmma layout)
  T* s_v = s_k + kKStages * kBlockN * kD;                           // [kVStages][kBlockN, kD]
  if (smem_addr(smem_raw) % 1024 != 0) __trap();  // swizzle atoms must be 1024-byte aligned

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wg = warp / 4, wg_warp = warp % 4;  // warpgroup, warp within it
  const int m_block = kCausal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);

  const FwdSeq seq = fwd_seq(p, b);
  const int len_q = seq.len_q, len_k = seq.len_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;
  const T* g_q = static_cast<const T*>(p.q) + seq.q_off + h * p.q_head_stride + m0 * p.q_row_stride;
  const T* g_k = static_cast<const T*>(p.k) + seq.k_off + hk * p.k_head_stride;
  const T* g_v = static_cast<const T*>(p.v) + seq.v_off + hk * p.v_head_stride;
  T* g_o = static_cast<T*>(p.o) + seq.o_off + h * p.o_head_stride + m0 * p.o_row_stride;
  float* g_lse = p.lse + seq.lse_off + h * p.lse_head_stride + m0;

  const int shift = len_k - len_q;  // bottom-right causal: row i sees keys j <= i + shift
  int n_end = len_k;
  if (kCausal) n_end = max(0, min(len_k, min(m0 + kBlockM, len_q) + shift));
  const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

  auto load_kv = [&](int j) {
    const int n0 = j * kBlockN;
    load_tile_sw128<kBlockN, kD, kThreads>(s_k + (j % kKStages) * kBlockN * kD, g_k + n0 * p.k_row_stride,
                                           p.k_row_stride,
                                 len_k - n0, tid);
    load_tile_sw128<kBlockN, kD, kThreads>(s_v + (j % kVStages) * kBlockN * kD, g_v + n0 * p.v_row_stride,
                                           p.v_row_stride,
                                 len_k - n0, tid);
  };
  load_q_tile<kD>(s_q, g_q, p.q_row_stride, len_q - m0, tid);
  if (n_blocks > 0) load_kv(0);
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();  // Q and K/V tile 0 visible to every thread and to the async proxy

  // Q fragments of this warp's 16 rows (row 64 wg + 16 wg_warp of the tile), all head-dim slices.
  const int warp_row = wg * 64 + wg_warp * 16;
  uint32_t q_frag[kD / 16][4];
  {
    const LaneAddr<kD> la(lane & 15, lane >> 4);
    const uint32_t u_q = smem_addr(s_q);
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) ldsm_x4(q_frag[ks], u_q + la.at(warp_row, ks * 2));
  }

  // Accumulator rows of this thread: r = 0 -> tile row warp_row + lane / 4, r = 1 -> + 8.
  float acc_o[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) acc_o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  uint32_t p_prev[kPSlices][4];  // P of the previous key tile as A fragments
  const float scale_log2 = p.scale_log2;
  const uint32_t u_k = smem_addr(s_k), u_v = smem_addr(s_v);
  constexpr uint32_t kTileBytes = kTileBytesOf<kD, kBlockN>;

  // O += P_{j} V_{j}: 16 keys per wgmma; the N-major V operand spans kD columns in 64-column
  // blocks kBlockN * 128 bytes apart (LBO), 8-key groups 1024 bytes apart (SBO).
  auto issue_pv = [&](int j) {
    wgmma_fence();  // orders the rescale of acc_o and the writes of p_prev (ptxas adds it otherwise)
    const uint32_t v_tile = u_v + (j % kVStages) * kTileBytes;
#pragma unroll
    for (int kk = 0; kk < kPSlices; ++kk)
      wgmma_rs<kD, T, 1>(acc_o, p_prev[kk], wgmma_desc_sw128(v_tile + kk * 16 * 128, kBlockN * 128, 1024), true);
    wgmma_commit();
  };

  for (int j = 0; j < n_blocks; ++j) {
    if (j > 0) {
      cp_async_wait<0>();  // this thread's part of tile j landed
      fence_proxy_async();
      __syncthreads();     // tile j complete; every warpgroup retired its wgmmas of iteration j - 1
    }
    if (j + 1 < n_blocks) load_kv(j + 1);  // into buffers whose last readers retired before the barrier
    cp_async_commit();

    // S_j = Q K_j^T, then P_{j-1} V_{j-1} behind it.
    float s[kBlockN / 2];
    const uint32_t k_tile = u_k + (j % kKStages) * kTileBytes;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      // Head-dim slice ks: 64-column block ks / 4, 32 bytes per slice into its 128-byte rows.
      const uint32_t start = k_tile + (ks / 4) * kBlockN * 128 + (ks % 4) * 32;
      wgmma_rs<kBlockN, T, 0>(s, q_frag[ks], wgmma_desc_sw128(start, 16, 1024), ks > 0);
    }
    wgmma_commit();
    if (j > 0) {
      issue_pv(j - 1);
      wgmma_wait<1>();  // S_j done; P_{j-1} V_{j-1} may still run
    } else {
      wgmma_wait<0>();
    }
    wgmma_fence_acc(s);

    const int n0 = j * kBlockN;
    const bool cross_diag = kCausal && n0 + kBlockN - 1 > m0 + warp_row + shift;
    const bool past_end = !kEvenN && n0 + kBlockN > len_k;
    if (cross_diag || past_end) {
#pragma unroll
      for (int i = 0; i < kBlockN / 2; ++i) {
        const int col = n0 + (i / 4) * 8 + (lane % 4) * 2 + (i & 1);
        const int row = m0 + warp_row + lane / 4 + ((i >> 1) & 1) * 8;
        const int limit = kCausal ? min(len_k, row + shift + 1) : len_k;
        if (col >= limit) s[i] = -INFINITY;
      }
    }

    float alpha[2];
    uint32_t p_new[kPSlices][4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = row_max[r];
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) mx = fmaxf(mx, fmaxf(s[4 * t + 2 * r], s[4 * t + 2 * r + 1]));
      mx = quad_max(mx);
      // A row with no key seen yet keeps max -inf: subtract 0 so exp2(-inf) = 0, not NaN.
      const float max_scaled = mx == -INFINITY ? 0.f : mx * scale_log2;
      alpha[r] = exp2_ftz(row_max[r] * scale_log2 - max_scaled);
      row_max[r] = mx;
      row_sum[r] *= alpha[r];
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        const float p0 = exp2_ftz(fmaf(s[4 * t + 2 * r], scale_log2, -max_scaled));
        const float p1 = exp2_ftz(fmaf(s[4 * t + 2 * r + 1], scale_log2, -max_scaled));
        row_sum[r] += p0 + p1;
        // 8-column group t is half of 16-key slice t / 2: registers {r, r + 2} of that A fragment.
        p_new[t / 2][(t % 2) * 2 + r] = pack2<T>(p0, p1);
      }
    }
    // P_{j-1} V_{j-1} is in acc_o. Unconditional (nothing is pending at j = 0): ptxas proves the
    // accumulators complete per control-flow path, and a wait under `if (j > 0)` would make it
    // serialize every wgmma of the loop.
    wgmma_wait<0>();
    wgmma_fence_acc(acc_o);
#pragma unroll
    for (int i = 0; i < kD / 2; ++i) acc_o[i] *= alpha[(i >> 1) & 1];
#pragma unroll
    for (int kk = 0; kk < kPSlices; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e) p_prev[kk][e] = p_new[kk][e];
  }
  if (n_blocks > 0) {
    issue_pv(n_blocks - 1);
    wgmma_wait<0>();
    wgmma_fence_acc(acc_o);
  }
  cp_async_wait<0>();  // only empty groups can remain

  // Epilogue: normalise, stage this warp's 16 rows in its own rows of s_q (only this warp read
  // them, as Q), then 16-byte stores of whole rows.
  float lse[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = quad_sum(row_sum[r]);
    const bool seen = l > 0.f;
    const float inv = seen ? 1.f / l : 0.f;
#pragma unroll
    for (int t = 0; t < kOTiles; ++t) {
      acc_o[4 * t + 2 * r] *= inv;
      acc_o[4 * t + 2 * r + 1] *= inv;
    }
    lse[r] = seen ? (row_max[r] * scale_log2 + log2f(l)) * 0.69314718055994531f : -INFINITY;
  }
#pragma unroll
  for (int t = 0; t < kOTiles; ++t)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp_row + lane / 4 + 8 * r, col = t * 8 + (lane % 4) * 2;
      *reinterpret_cast<uint32_t*>(s_q + Tile::offset(row, col)) =
          pack2<T>(acc_o[4 * t + 2 * r], acc_o[4 * t + 2 * r + 1]);
    }
  __syncwarp();
  store_warp_rows<kD, 16>(g_o, p.o_row_stride, s_q, warp_row, len_q - m0, lane);
  if (lane % 4 == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp_row + lane / 4 + 8 * r;
      if (m0 + row < len_q) g_lse[row] = lse[r];
    }
  }
#else
  __trap();  // built without sm_90a: flash_wgmma_available() keeps the host from launching this
#endif
}

template <int kD, int kBlockN, typename T, bool kCausal, bool kEvenN>
void run_fwd_sm90(const FlashParams& p, cudaStream_t stream) {
  auto kernel = flash_fwd_sm90_kernel<kD, kBlockN, T, kCausal, kEvenN>;
  constexpr size_t smem = kSmemBytesOf<kD, kBlockN>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((p.seqlen_q + kBlockM - 1) / kBlockM), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(p.batch));
  LLOCO_LAUNCH(grid, kThreads, smem, stream, kernel)(p);
}

template <int kD, int kBlockN, typename T>
void dispatch_flags_sm90(const FlashParams& p, cudaStream_t stream) {
  const bool even_n = p.cu_seqlens_k == nullptr && p.seqlen_k % kBlockN == 0;
  auto run = [&](auto causal, auto even) {
    run_fwd_sm90<kD, kBlockN, T, decltype(causal)::value, decltype(even)::value>(p, stream);
  };
  if (p.causal) {
    if (even_n) run(std::true_type{}, std::true_type{});
    else run(std::true_type{}, std::false_type{});
  } else {
    if (even_n) run(std::false_type{}, std::true_type{});
    else run(std::false_type{}, std::false_type{});
  }
}

// Key tile: hd64 always 128 keys; hd128 128 unless p.fwd_block_n asks for 64 (FlashParams).
template <typename T>
void dispatch_head_dim_sm90(const FlashParams& p, cudaStream_t stream) {
  if (p.head_dim == 64)
    dispatch_flags_sm90<64, 128, T>(p, stream);
  else if (p.fwd_block_n == 64)
    dispatch_flags_sm90<128, 64, T>(p, stream);
  else
    dispatch_flags_sm90<128, 128, T>(p, stream);
}

}  // namespace

bool flash_wgmma_available() {
#if defined(LLOCO_SIMT) || defined(LLOCO_CUDA_HAS_SM90A)
  // sm_90a code runs on compute capability 9.0 only. Every automatic launch asks, so the answer is
  // kept per device (0 not asked yet, 1 no, 2 yes).
  static std::array<std::atomic<int8_t>, 64> known{};
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  std::atomic<int8_t>* slot = dev < static_cast<int>(known.size()) ? &known[static_cast<size_t>(dev)] : nullptr;
  if (slot && slot->load(std::memory_order_relaxed) != 0) return slot->load(std::memory_order_relaxed) == 2;
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const bool yes = major == 9 && minor == 0;
  if (slot) slot->store(yes ? 2 : 1, std::memory_order_relaxed);
  return yes;
#else
  return false;
#endif
}

bool flash_uses_wgmma(int kernel_choice) {
  return kernel_choice == 2 || (kernel_choice == 0 && flash_wgmma_available());
}

void launch_flash_fwd_sm90(const FlashParams& p, cudaStream_t stream) {
  LLOCO_CHECK(flash_wgmma_available(), "flash_fwd", "the wgmma forward needs an sm_90a build (LLOCO_CUDA_ARCHS ",
              "with 90a) and a compute capability 9.0 device");
  if (p.is_bf16)
    dispatch_head_dim_sm90<__nv_bfloat16>(p, stream);
  else
    dispatch_head_dim_sm90<__half>(p, stream);
}

}  // namespace lloco::cuda_kernels
