// Flash-attention backward main loop for Hopper on warpgroup MMA (wgmma, sm_90a). Same grid,
// workspace and results as the mma.sync main kernel (flash_bwd_kernel.cuh); launch_flash_bwd runs
// the prep and convert kernels around either one and picks this one where flash_wgmma_available().
//
// One 256-thread CTA (2 warpgroups) per (key tile of kBlockN = 128 keys, kv head, batch); warpgroup
// wg owns keys 64 wg .. 64 wg + 63, so its dK/dV rows stay in f32 registers for the whole CTA (summed
// over the group's query heads, written once). Per query tile of kBlockM = 64 rows, per warpgroup:
//   S^T  = K Q^T       wgmma, A = K rows (K-major smem), B = Q (K-major smem)
//   dP^T = V dO^T      wgmma, A = V rows, B = dO; issued right behind S^T
//   P^T  = exp2(S^T * scale_log2 - lse)                     (masked: 0; runs while dP^T computes)
//   dV  += P^T dO      wgmma, A = P^T from registers (the S^T accumulator layout is the A layout),
//                      B = dO (N-major smem)
//   dS^T = P^T (dP^T - delta)                               (runs while dV computes)
//   dK  += dS^T Q      wgmma, A = dS^T from registers, B = Q (N-major)
//   dQ   = dS K        dS^T goes through shared memory ([key][query], read back as an M-major A);
//                      hd128: warpgroup wg computes dQ columns 64 wg .. over all 128 keys; hd64: all
//                      64 columns over its own 64 keys, then the two partials swap halves through
//                      shared memory so each warpgroup adds 32 columns. Added into the f32
//                      workspace with atomics.
// The softmax scale is applied once at the end: to dK here, to dQ in the convert kernel.
//
// Q and dO tiles stream through 2 stages by cp.async from all threads, one tile ahead; one barrier
// at the top of each iteration publishes tile it (after each thread's fence.proxy.async) and
// certifies that both warpgroups retired every wgmma of iteration it - 1 (its stage and dS^T); a
// second one publishes dS^T before the dQ product; hd64 has a third, for the dQ half swap.
//
// Shared memory, the tiles in the wgmma tile layout of flash_wgmma.cuh (1024-byte aligned):
//   K, V [kBlockN][kD]; Q, dO [2 stages][kBlockM][kD]; dS^T [kBlockN][kBlockM]; lse (log2 units),
//   delta [2 stages][kBlockM] f32; hd64: the dQ swap buffer (16 KB). hd128: 145 KB, hd64: 97 KB;
//   one CTA per SM (up to 255 registers).
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_bwd_kernel.cuh"
#include "cuda/kernels/flash_mma.cuh"
#include "cuda/kernels/flash_wgmma.cuh"

namespace lloco::cuda_kernels {

namespace {

using namespace flash;
using flash_bwd::atomic_add_pair;
using flash_bwd::BwdWalk;
using flash_bwd::seq_base;
using flash_bwd::SeqInfo;

constexpr int kThreads = 256;  // 2 warpgroups
constexpr int kBlockN = 128;   // keys per CTA (the mma.sync kernel's, so the grids match)
constexpr int kBlockM = 64;    // queries per iteration

template <int kD>
struct Sm90BwdSmem {
  static constexpr uint32_t kKVBytes = kBlockN * kD * 2;
  static constexpr uint32_t kQBytes = kBlockM * kD * 2;  // one stage of Q or dO
  static constexpr uint32_t kDsBytes = kBlockN * kBlockM * 2;
  static constexpr uint32_t kStatsBytes = 4 * kBlockM * sizeof(float);
  // hd64: the dQ half-swap buffer, [2 warpgroups][16 accumulators][128 threads] f32.
  static constexpr uint32_t kSwapBytes = kD == 64 ? 2 * 16 * 128 * sizeof(float) : 0;
  static constexpr size_t kBytes = 2 * kKVBytes + 4 * kQBytes + kDsBytes + kStatsBytes + kSwapBytes;
};

// hd64 dQ: each warpgroup holds a partial dQ [64 queries, 64 columns] over its own 64 keys. Warpgroup
// W adds columns 32 W .. 32 W + 31 to the workspace, summed over both partials, so the CTA issues
// half the atomics of adding both partials. Both warpgroups have the same accumulator layout, so
// thread t of one trades with thread t of the other: accumulators 16 W' .. 16 W' + 15 hold the
// columns of warpgroup W'. Step 1: write the other warpgroup's columns to swap[W].
template <int W>
__device__ __forceinline__ void dq_swap_out(const float (&acc)[32], float* swap, int t) {
#pragma unroll
  for (int i = 0; i < 16; ++i) swap[(W * 16 + i) * 128 + t] = acc[16 * (1 - W) + i];
}
// Step 2 (after a barrier): add the other warpgroup's partial of this warpgroup's columns.
template <int W>
__device__ __forceinline__ void dq_swap_in(float (&acc)[32], const float* swap, int t) {
#pragma unroll
  for (int i = 0; i < 16; ++i) acc[16 * W + i] += swap[((1 - W) * 16 + i) * 128 + t];
}

// dq_accum: [total_q, heads_q, D] f32 (zeroed, summed here, unscaled); delta: [heads_q, total_q].
template <int kD, typename T>
__global__ void __launch_bounds__(kThreads, 1)
    flash_bwd_sm90_kernel(const FlashBwdParams p, float* __restrict__ dq_accum, const float* __restrict__ delta) {
#if defined(LLOCO_HAS_WGMMA)
  using Smem = Sm90BwdSmem<kD>;
  constexpr int kSlices = kBlockM / 16;  // 16-query A fragments of P^T and dS^T
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 1024);
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + kBlockN * kD;
  T* sQ = sV + kBlockN * kD;        // [2][kBlockM * kD]
  T* sdO = sQ + 2 * kBlockM * kD;   // [2][kBlockM * kD]
  T* sdS = sdO + 2 * kBlockM * kD;  // [kBlockN][kBlockM], dS^T
  float* s_lse = reinterpret_cast<float*>(sdS + kBlockN * kBlockM);  // [2][kBlockM]
  float* s_delta = s_lse + 2 * kBlockM;                               // [2][kBlockM]
  float* s_swap = s_delta + 2 * kBlockM;                              // hd64: [2][16][128]
  if (smem_addr(smem_raw) % 1024 != 0) __trap();  // swizzle atoms must be 1024-byte aligned

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, wg = warp / 4, wg_warp = warp % 4;
  const int g = lane / 4, c = lane % 4;
  const int hk = blockIdx.x, b = blockIdx.y, n0 = blockIdx.z * kBlockN;
  const BwdWalk<kBlockM> w(p, b, hk, n0);
  const SeqInfo& s = w.s;
  if (n0 >= s.seq_k) return;  // varlen: this sequence is shorter than the longest one
  const int n_iter = w.n_iter, causal_off = w.causal_off;

  const auto [q, dout, k, v] = w.template operands<T>(p, b, n0);

  auto load_q_do = [&](int it, int stage) {
    const int h = w.head(it), m0 = w.m0(it), rows = min(kBlockM, s.seq_q - m0);
    load_tile_sw128<kBlockM, kD, kThreads>(sQ + stage * kBlockM * kD, q + h * p.q_head_stride + m0 * p.q_row_stride,
                                           p.q_row_stride, rows, tid);
    load_tile_sw128<kBlockM, kD, kThreads>(sdO + stage * kBlockM * kD,
                                           dout + h * p.do_head_stride + m0 * p.do_row_stride, p.do_row_stride,
                                           rows, tid);
  };

  if (n_iter > 0) {  // else no query sees these keys: dK = dV = 0
    const int keys_valid = min(kBlockN, s.seq_k - n0);
    load_tile_sw128<kBlockN, kD, kThreads>(sK, k, p.k_row_stride, keys_valid, tid);
    load_tile_sw128<kBlockN, kD, kThreads>(sV, v, p.v_row_stride, keys_valid, tid);
    load_q_do(0, 0);
    float lse2, dlt;
    w.row_stats(p, delta, 0, tid, lse2, dlt);
    if (tid < kBlockM) {
      s_lse[tid] = lse2;
      s_delta[tid] = dlt;
    }
  }
  cp_async_commit();

  // Accumulator rows of this thread: tile key key_row (r = 0) and key_row + 8 (r = 1).
  const int key_row = 64 * wg + 16 * wg_warp + g;
  float acc_dk[kD / 2], acc_dv[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) acc_dk[i] = acc_dv[i] = 0.f;
  const uint32_t u_k0 = smem_addr(sK), u_v0 = smem_addr(sV), u_ds0 = smem_addr(sdS);
  const uint32_t u_q0 = smem_addr(sQ), u_do0 = smem_addr(sdO);

  for (int it = 0; it < n_iter; ++it) {
    const int stage = it & 1, h = w.head(it), m0 = w.m0(it);
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // tile `it` visible to both proxies; iteration it - 1 retired everywhere
    float next_lse2 = 0.f, next_delta = 0.f;
    if (it + 1 < n_iter) {
      load_q_do(it + 1, stage ^ 1);
      w.row_stats(p, delta, it + 1, tid, next_lse2, next_delta);
    }
    cp_async_commit();
    // Opaque bases: each wgmma's descriptor is rebuilt from them next to its use (a few integer ops)
    // instead of 40+ distinct 64-bit descriptors being hoisted into registers for the whole loop.
    uint32_t u_k = u_k0, u_v = u_v0, u_ds = u_ds0, u_q = u_q0 + stage * Smem::kQBytes;
    uint32_t u_do = u_do0 + stage * Smem::kQBytes;
    opaque(u_k), opaque(u_v), opaque(u_ds), opaque(u_q), opaque(u_do);
    const float* c_lse = s_lse + stage * kBlockM;
    const float* c_delta = s_delta + stage * kBlockM;

    // S^T and dP^T for this warpgroup's 64 keys, 16 head-dim columns per wgmma: A rows start 64 wg
    // rows into the K / V tile, column block ks / 4, 32 bytes per slice.
    float st[kBlockM / 2], dpt[kBlockM / 2];
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint32_t a_off = (ks / 4) * kBlockN * 128 + wg * 64 * 128 + (ks % 4) * 32;
      const uint32_t b_off = (ks / 4) * kBlockM * 128 + (ks % 4) * 32;
      wgmma_ss<kBlockM, T, 0, 0>(st, wgmma_desc_sw128(u_k + a_off, 16, 1024), wgmma_desc_sw128(u_q + b_off, 16, 1024),
                                 ks > 0);
    }
    wgmma_commit();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint32_t a_off = (ks / 4) * kBlockN * 128 + wg * 64 * 128 + (ks % 4) * 32;
      const uint32_t b_off = (ks / 4) * kBlockM * 128 + (ks % 4) * 32;
      wgmma_ss<kBlockM, T, 0, 0>(dpt, wgmma_desc_sw128(u_v + a_off, 16, 1024),
                                 wgmma_desc_sw128(u_do + b_off, 16, 1024), ks > 0);
    }
    wgmma_commit();
    wgmma_wait<1>();  // S^T done; dP^T may still run
    wgmma_fence_acc(st);

    // P^T (f32, kept for dS^T) and its A fragments: 8-query group t is half of slice t / 2.
    const bool need_mask = n0 + kBlockN > s.seq_k || (p.causal && n0 + kBlockN - 1 > m0 + causal_off);
    uint32_t p_frag[kSlices][4];
#pragma unroll
    for (int t = 0; t < kBlockM / 8; ++t)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int col = 8 * t + 2 * c, key = n0 + key_row + 8 * r;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float x = st[4 * t + 2 * r + e];
          if (need_mask && (key >= s.seq_k || (p.causal && key > m0 + col + e + causal_off)))
            x = __int_as_float(0xff800000);
          st[4 * t + 2 * r + e] = exp2_ftz(fmaf(x, p.scale_log2, -c_lse[col + e]));
        }
        p_frag[t / 2][(t % 2) * 2 + r] = pack2<T>(st[4 * t + 2 * r], st[4 * t + 2 * r + 1]);
      }

    // dV += P^T dO: 16 queries per wgmma; dO is N-major, 64-column blocks kBlockM * 128 bytes apart.
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kSlices; ++kk)
      wgmma_rs<kD, T, 1>(acc_dv, p_frag[kk], wgmma_desc_sw128(u_do + kk * 16 * 128, kBlockM * 128, 1024), true);
    wgmma_commit();
    wgmma_wait<1>();  // dP^T done; dV may still run
    wgmma_fence_acc(dpt);

    // dS^T = P^T (dP^T - delta): A fragments for dK, and the [key][query] tile for dQ.
    uint32_t ds_frag[kSlices][4];
#pragma unroll
    for (int t = 0; t < kBlockM / 8; ++t)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int i = 4 * t + 2 * r, col = 8 * t + 2 * c;
        ds_frag[t / 2][(t % 2) * 2 + r] =
            pack2<T>(st[i] * (dpt[i] - c_delta[col]), st[i + 1] * (dpt[i + 1] - c_delta[col + 1]));
      }
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kSlices; ++kk)
      wgmma_rs<kD, T, 1>(acc_dk, ds_frag[kk], wgmma_desc_sw128(u_q + kk * 16 * 128, kBlockM * 128, 1024), true);
    wgmma_commit();
    // Row key_row + 8 r of dS^T: 64 queries = one 128-byte swizzled row; group t is chunk t.
#pragma unroll
    for (int t = 0; t < kBlockM / 8; ++t)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = key_row + 8 * r;
        st_shared_for_wgmma(u_ds + row * 128 + ((t ^ (row % 8)) * 16) + 4 * c, ds_frag[t / 2][(t % 2) * 2 + r]);
      }
    fence_proxy_async();
    __syncthreads();  // dS^T of both warpgroups written and visible to the async proxy

    // dQ = dS K: A = dS (M-major: dS^T rows are keys, 8-key groups 1024 bytes apart); B = K (N-major).
    float acc_dq[32];
    wgmma_fence();
    if constexpr (kD == 128) {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk)
        wgmma_ss<64, T, 1, 1>(acc_dq, wgmma_desc_sw128(u_ds + kk * 16 * 128, kBlockN * 128, 1024),
                              wgmma_desc_sw128(u_k + wg * kBlockN * 128 + kk * 16 * 128, kBlockN * 128, 1024),
                              kk > 0);
    } else {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t key_off = (64 * wg + 16 * kk) * 128;
        wgmma_ss<64, T, 1, 1>(acc_dq, wgmma_desc_sw128(u_ds + key_off, kBlockN * 128, 1024),
                              wgmma_desc_sw128(u_k + key_off, kBlockN * 128, 1024), kk > 0);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();  // dQ, dK and dV of this tile done: stage and dS^T free for the next barrier
    wgmma_fence_acc(acc_dq);
    // hd128: this warpgroup's 64 columns (8 groups of 8). hd64: 32 columns (4 groups), after the swap.
    constexpr int kGroups = kD == 128 ? 8 : 4;
    if constexpr (kD == 64) {
      const int t = tid % 128;
      if (wg == 0) dq_swap_out<0>(acc_dq, s_swap, t);
      else dq_swap_out<1>(acc_dq, s_swap, t);
      __syncthreads();
      if (wg == 0) {
        dq_swap_in<0>(acc_dq, s_swap, t);
      } else {
        dq_swap_in<1>(acc_dq, s_swap, t);
#pragma unroll
        for (int i = 0; i < 16; ++i) acc_dq[i] = acc_dq[16 + i];  // warpgroup 1's columns first
      }
    }
    const int col0 = kGroups * 8 * wg + 2 * c;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = 16 * wg_warp + g + 8 * r;
      if (m0 + row < s.seq_q) {
        float* dst = dq_accum + ((s.q_row0 + m0 + row) * p.heads_q + h) * kD + col0;
#pragma unroll
        for (int j = 0; j < kGroups; ++j)
          atomic_add_pair(dst + 8 * j, acc_dq[4 * j + 2 * r], acc_dq[4 * j + 2 * r + 1]);
      }
    }
    // The other stage's stats were last read in iteration it - 1 (before this iteration's barrier).
    if (tid < kBlockM && it + 1 < n_iter) {
      s_lse[(stage ^ 1) * kBlockM + tid] = next_lse2;
      s_delta[(stage ^ 1) * kBlockM + tid] = next_delta;
    }
  }
  cp_async_wait<0>();  // only empty groups can remain
  wgmma_fence_acc(acc_dk);
  wgmma_fence_acc(acc_dv);

  // dK (scaled), dV rows of this thread; keys past the sequence end are not written.
  T* dk_out = static_cast<T*>(p.dk) + seq_base(p, b, s.k_row0, p.dk_batch_stride, p.dk_row_stride) +
              hk * p.dk_head_stride;
  T* dv_out = static_cast<T*>(p.dv) + seq_base(p, b, s.k_row0, p.dv_batch_stride, p.dv_row_stride) +
              hk * p.dv_head_stride;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = n0 + key_row + 8 * r;
    if (key >= s.seq_k) continue;
    T* dk_row = dk_out + key * p.dk_row_stride + 2 * c;
    T* dv_row = dv_out + key * p.dv_row_stride + 2 * c;
#pragma unroll
    for (int t = 0; t < kD / 8; ++t) {
      const int i = 4 * t + 2 * r;
      *reinterpret_cast<uint32_t*>(dk_row + 8 * t) = pack2<T>(acc_dk[i] * p.scale, acc_dk[i + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv_row + 8 * t) = pack2<T>(acc_dv[i], acc_dv[i + 1]);
    }
  }
#else
  (void)p, (void)dq_accum, (void)delta;
  __trap();  // built without sm_90a: flash_wgmma_available() keeps the host from launching this
#endif
}

template <int kD, typename T>
void run_bwd_sm90(const FlashBwdParams& p, float* dq_accum, const float* delta, cudaStream_t stream) {
  auto kernel = flash_bwd_sm90_kernel<kD, T>;
  constexpr size_t smem = Sm90BwdSmem<kD>::kBytes;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(p.heads_kv), static_cast<unsigned>(p.batch),
                  static_cast<unsigned>((p.seqlen_k + kBlockN - 1) / kBlockN));
  LLOCO_LAUNCH(grid, kThreads, smem, stream, kernel)(p, dq_accum, delta);
}

}  // namespace

size_t flash_bwd_sm90_smem_bytes(int head_dim) {
  return head_dim == 64 ? Sm90BwdSmem<64>::kBytes : Sm90BwdSmem<128>::kBytes;
}

void launch_flash_bwd_main_sm90(const FlashBwdParams& p, float* dq_accum, const float* delta, cudaStream_t stream) {
  LLOCO_CHECK(flash_wgmma_available(), "flash_bwd", "the wgmma backward needs an sm_90a build (LLOCO_CUDA_ARCHS ",
              "with 90a) and a compute capability 9.0 device");
  if (p.is_bf16) {
    if (p.head_dim == 64) run_bwd_sm90<64, __nv_bfloat16>(p, dq_accum, delta, stream);
    else run_bwd_sm90<128, __nv_bfloat16>(p, dq_accum, delta, stream);
  } else {
    if (p.head_dim == 64) run_bwd_sm90<64, __half>(p, dq_accum, delta, stream);
    else run_bwd_sm90<128, __half>(p, dq_accum, delta, stream);
  }
}

}  // namespace lloco::cuda_kernels
