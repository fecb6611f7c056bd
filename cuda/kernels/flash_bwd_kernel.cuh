// Flash-attention backward main loop (FlashAttention-2 scheme on mma.sync, sm_80+).
//
// One CTA per (key tile of kBlockN = 128 keys, kv head, batch): 8 warps, warp w owns keys
// 16w..16w+15 of the tile, so its dK/dV rows stay in registers (f32) for the whole CTA and are
// written once at the end, summed over the group's query heads without atomics. The CTA loops over
// (query head of the group) x (query tiles of kBlockM rows that can see the key tile), and per tile:
//   S^T = K Q^T            (warp: 16 keys x kBlockM queries, A = K rows, B = Q)
//   P^T = exp2(S^T * scale_log2 - lse * log2(e))      (masked: 0)
//   dV += P^T dO           (P^T stays in registers as the A operand; B = dO via ldmatrix.trans)
//   dP^T = V dO^T          (A = V rows, B = dO)
//   dS^T = P^T (dP^T - delta)
//   dK += dS^T Q           (A = dS^T in registers; B = Q via ldmatrix.trans)
//   dQ += dS K             (dS^T goes through shared memory; warp w then owns a 16 x (D / 2) block
//                           of the kBlockM x D product and adds it into the f32 workspace with atomics)
// The softmax scale is applied once at the end: to dK here, to dQ in the conversion kernel.
//
// Shared memory (16-bit elements, XOR-swizzled rows: SwizzledTile in flash_mma.cuh):
//   K, V [kBlockN][D]; Q, dO [2 stages][kBlockM][D] (cp.async double buffer); dS^T [kBlockN][kBlockM];
//   lse (log2 units), delta [2 stages][kBlockM] f32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_mma.cuh"

namespace lloco::cuda_kernels::flash_bwd {

using flash::cp_async_16;
using flash::cp_async_commit;
using flash::cp_async_wait;
using flash::pack2;
using flash::SwizzledTile;
using flash::exp2_ftz;
using flash::LaneAddr;
using flash::ldsm_x4;
using flash::ldsm_x4_trans;

template <int kD>
struct BwdTraits {
  static constexpr int kWarps = 8;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockN = 16 * kWarps;
  static constexpr int kBlockM = 64;  // queries per iteration
  // dQ = dS K: warp w computes rows 16 * (w % (kBlockM / 16)).., kDqCols columns from kDqCols * (w / ...).
  static constexpr int kDqCols = kD * kBlockM / (16 * kWarps);
  static constexpr int kKVElems = kBlockN * kD;
  static constexpr int kQElems = kBlockM * kD;
  static constexpr int kDsElems = kBlockN * kBlockM;
  static constexpr size_t kSmemBytes =
      (2 * kKVElems + 4 * kQElems + kDsElems) * sizeof(uint16_t) + 4 * kBlockM * sizeof(float);
  static_assert(kD == 64 || kD == 128, "head dim 64 or 128");
  static_assert(kDqCols % 16 == 0 && (kBlockM / 16) * (kD / kDqCols) == kWarps, "dQ blocks cover the tile");
};

// st.shared on a 32-bit shared-window address (the main loop keeps its addresses as 32-bit
// offsets, see flash::LaneAddr); the memory clobber keeps it in program order around barriers.
__device__ __forceinline__ void sts_u32(uint32_t addr, uint32_t v) {
#if defined(LLOCO_SIMT)
  std::memcpy(::lloco::simt::shared_pointer(addr, 4), &v, 4);
#else
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
#endif
}

// Two adjacent n-tiles from one ldsm_x4 result: r[0..1] is n-tile 0's B, r[2..3] n-tile 1's.
template <typename T>
__device__ __forceinline__ void mma_pair(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&r)[4]) {
  const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
  flash::mma_16816<T>(d0, a, b0);
  flash::mma_16816<T>(d1, a, b1);
}

// C fragments of n-tiles 2kk and 2kk+1 -> A fragment of k block kk.
template <typename T, int kTiles>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&acc)[kTiles][4], int kk) {
  a[0] = pack2<T>(acc[2 * kk][0], acc[2 * kk][1]);
  a[1] = pack2<T>(acc[2 * kk][2], acc[2 * kk][3]);
  a[2] = pack2<T>(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
  a[3] = pack2<T>(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
}

__device__ __forceinline__ void atomic_add_pair(float* dst, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(x, y));
#else
  atomicAdd(dst, x);
  atomicAdd(dst + 1, y);
#endif
}

// Rows [0, rows_valid) of a [kRows][kD] global tile -> swizzled smem; rows beyond are zero-filled.
template <int kRows, int kD, int kThreads, typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int tid) {
  constexpr int kChunks = kD / 8;
  static_assert(kRows * kChunks % kThreads == 0, "tile chunks divide evenly over the threads");
#pragma unroll
  for (int i = 0; i < kRows * kChunks / kThreads; ++i) {
    const int idx = tid + i * kThreads, row = idx / kChunks, chunk = idx % kChunks;
    const bool valid = row < rows_valid;
    const T* src = valid ? gmem + row * row_stride + chunk * 8 : gmem;
    cp_async_16(smem + SwizzledTile<kD>::offset(row, chunk * 8), src, valid);
  }
}

// Lengths and first rows of sequence b (rows index the packed varlen tensors and the workspace).
struct SeqInfo {
  int seq_q, seq_k;
  int64_t q_row0, k_row0;
};

__device__ __forceinline__ SeqInfo seq_info(const FlashBwdParams& p, int b) {
  if (p.cu_seqlens_q) {
    const int q0 = p.cu_seqlens_q[b], k0 = p.cu_seqlens_k[b];
    return {p.cu_seqlens_q[b + 1] - q0, p.cu_seqlens_k[b + 1] - k0, q0, k0};
  }
  return {p.seqlen_q, p.seqlen_k, int64_t(b) * p.seqlen_q, int64_t(b) * p.seqlen_k};
}

// Offset of sequence b's row 0 in a tensor: varlen rows are packed, dense batches use the stride.
__device__ __forceinline__ int64_t seq_base(const FlashBwdParams& p, int b, int64_t row0, int64_t batch_stride,
                                            int64_t row_stride) {
  return p.cu_seqlens_q ? row0 * row_stride : b * batch_stride;
}

// The work of one backward CTA (key tile n0 of kv head hk, sequence b): iteration `it` visits query
// head head(it) and the query tile starting at row m0(it); the group's heads outer, inner the tiles
// that can see the keys (under causal masking the earlier ones see none and are skipped).
template <int kBlockM>
struct BwdWalk {
  SeqInfo s;
  int hk, group, causal_off, m_first, tiles_per_head, n_iter;
  const float* lse;  // sequence b's lse: add h * lse_head_stride + row

  __device__ BwdWalk(const FlashBwdParams& p, int b, int hk_, int n0) : s(seq_info(p, b)), hk(hk_) {
    group = p.heads_q / p.heads_kv;
    causal_off = s.seq_k - s.seq_q;  // query i sees key j iff j <= i + causal_off
    const int m_tiles = (s.seq_q + kBlockM - 1) / kBlockM;
    // The first query that sees key n0 is n0 - causal_off; earlier tiles are fully masked.
    m_first = p.causal ? min(max(n0 - causal_off, 0) / kBlockM, m_tiles) : 0;
    tiles_per_head = m_tiles - m_first;
    n_iter = group * tiles_per_head;
    lse = p.lse + b * p.lse_batch_stride + (p.cu_seqlens_q ? s.q_row0 : 0);
  }
  __device__ int head(int it) const { return hk * group + it / tiles_per_head; }
  // Sequence b's first row of q and dout (all heads), and the CTA's key tile of k and v (head hk).
  template <typename T>
  struct Operands {
    const T *q, *dout, *k, *v;
  };
  template <typename T>
  __device__ Operands<T> operands(const FlashBwdParams& p, int b, int n0) const {
    return {static_cast<const T*>(p.q) + seq_base(p, b, s.q_row0, p.q_batch_stride, p.q_row_stride),
            static_cast<const T*>(p.dout) + seq_base(p, b, s.q_row0, p.do_batch_stride, p.do_row_stride),
            static_cast<const T*>(p.k) + seq_base(p, b, s.k_row0, p.k_batch_stride, p.k_row_stride) +
                hk * p.k_head_stride + n0 * p.k_row_stride,
            static_cast<const T*>(p.v) + seq_base(p, b, s.k_row0, p.v_batch_stride, p.v_row_stride) +
                hk * p.v_head_stride + n0 * p.v_row_stride};
  }
  __device__ int m0(int it) const { return (m_first + it % tiles_per_head) * kBlockM; }
  // Row r of tile it: lse in log2 units, +inf for padding rows and rows that see no key (lse = -inf),
  // so P = 0 there; and delta = dot(dout, out) (delta: [heads_q, total_q]).
  __device__ void row_stats(const FlashBwdParams& p, const float* delta, int it, int r, float& lse2,
                            float& dlt) const {
    lse2 = __int_as_float(0x7f800000);
    dlt = 0.f;
    const int h = head(it), row = m0(it) + r;
    if (r < kBlockM && row < s.seq_q) {
      const float l = lse[h * p.lse_head_stride + row];
      if (l != __int_as_float(0xff800000)) lse2 = l * 1.4426950408889634f;
      dlt = delta[h * p.total_q + s.q_row0 + row];
    }
  }
};

// dq_accum: [total_q, heads_q, D] f32 (zeroed, summed here, unscaled); delta: [heads_q, total_q].
template <typename T, int kD>
__global__ void __launch_bounds__(BwdTraits<kD>::kThreads, 1)
    flash_bwd_main_kernel(const FlashBwdParams p, float* __restrict__ dq_accum, const float* __restrict__ delta) {
  using Tr = BwdTraits<kD>;
  constexpr int kN = Tr::kBlockN, kM = Tr::kBlockM, kThreads = Tr::kThreads;
  using Ds = SwizzledTile<kM>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 128);
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + Tr::kKVElems;
  T* sQ = sV + Tr::kKVElems;       // [2][kM][kD]
  T* sdO = sQ + 2 * Tr::kQElems;   // [2][kM][kD]
  T* sdS = sdO + 2 * Tr::kQElems;  // [kN][kM], dS^T
  float* s_lse = reinterpret_cast<float*>(sdS + Tr::kDsElems);  // [2][kM]
  float* s_delta = s_lse + 2 * kM;                              // [2][kM]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int hk = blockIdx.x, b = blockIdx.y, n0 = blockIdx.z * kN;
  const BwdWalk<kM> w(p, b, hk, n0);
  const SeqInfo& s = w.s;
  if (n0 >= s.seq_k) return;  // varlen: this sequence is shorter than the longest one
  const int n_iter = w.n_iter, causal_off = w.causal_off;

  const auto [q, dout, k, v] = w.template operands<T>(p, b, n0);
  const int keys_valid = min(kN, s.seq_k - n0);

  auto load_q_do = [&](int it, int stage) {
    const int h = w.head(it), m0 = w.m0(it), rows = min(kM, s.seq_q - m0);
    load_tile<kM, kD, kThreads>(sQ + stage * Tr::kQElems, q + h * p.q_head_stride + m0 * p.q_row_stride,
                                p.q_row_stride, rows, tid);
    load_tile<kM, kD, kThreads>(sdO + stage * Tr::kQElems, dout + h * p.do_head_stride + m0 * p.do_row_stride,
                                p.do_row_stride, rows, tid);
  };

  if (n_iter > 0) {  // else no query sees these keys: dK = dV = 0
    load_tile<kN, kD, kThreads>(sK, k, p.k_row_stride, keys_valid, tid);
    load_tile<kN, kD, kThreads>(sV, v, p.v_row_stride, keys_valid, tid);
    load_q_do(0, 0);
    float lse2, dlt;
    w.row_stats(p, delta, 0, tid, lse2, dlt);
    if (tid < kM) {
      s_lse[tid] = lse2;
      s_delta[tid] = dlt;
    }
  }
  cp_async_commit();

  float dk[kD / 8][4] = {}, dv[kD / 8][4] = {};  // rows 16 * warp + g (+8), cols 8 * nt + 2c (+1)
  const int key_lo = n0 + warp * 16 + g;
  const uint32_t uK = flash::smem_addr(sK), uV = flash::smem_addr(sV), uDs = flash::smem_addr(sdS);
  // A operands and transposed B operands read rows lane % 16, chunk lane / 16 of a 16 x 16 block;
  // plain B operands rows lane % 8 (+8 for lanes 16..31), chunk (lane / 8) % 2.
  const LaneAddr<kD> la(lane & 15, lane >> 4), lb((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
  const LaneAddr<kM> lds((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
  // This lane's dS^T fragment slot: row 16 * warp + g, column pair 2c of n-tile nt at ds_at ^ (nt << 4).
  const uint32_t ds_at = static_cast<uint32_t>(Ds::offset(warp * 16 + g, 2 * c) * 2);
  for (int it = 0; it < n_iter; ++it) {
    const int stage = it & 1, h = w.head(it), m0 = w.m0(it);
    cp_async_wait<0>();
    __syncthreads();  // tile `it` visible; every warp is done with iteration it - 1 (its stage and dS)
    float next_lse2 = 0.f, next_delta = 0.f;
    if (it + 1 < n_iter) {
      load_q_do(it + 1, stage ^ 1);
      w.row_stats(p, delta, it + 1, tid, next_lse2, next_delta);
    }
    cp_async_commit();
    const uint32_t uQ = flash::smem_addr(sQ + stage * Tr::kQElems), udO = flash::smem_addr(sdO + stage * Tr::kQElems);
    const float* c_lse = s_lse + stage * kM;
    const float* c_delta = s_delta + stage * kM;

    // S^T = K Q^T: rows = this warp's keys, cols = queries.
    float st[kM / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t a[4];
      ldsm_x4(a, uK + la.at(warp * 16, kk * 2));
#pragma unroll
      for (int np = 0; np < kM / 16; ++np) {
        uint32_t r[4];
        ldsm_x4(r, uQ + lb.at(np * 16, kk * 2));
        mma_pair<T>(st[2 * np], st[2 * np + 1], a, r);
      }
    }

    // P^T. Masks only where the tile crosses the causal diagonal or the end of the keys.
    const bool need_mask = n0 + kN > s.seq_k || (p.causal && n0 + kN - 1 > m0 + causal_off);
#pragma unroll
    for (int nt = 0; nt < kM / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * c + (e & 1);
        float x = st[nt][e];
        if (need_mask) {
          const int key = key_lo + (e >> 1) * 8;
          if (key >= s.seq_k || (p.causal && key > m0 + col + causal_off)) x = __int_as_float(0xff800000);
        }
        st[nt][e] = exp2_ftz(fmaf(x, p.scale_log2, -c_lse[col]));
      }

    // dV += P^T dO.
#pragma unroll
    for (int kk = 0; kk < kM / 16; ++kk) {
      uint32_t a[4];
      acc_to_a<T>(a, st, kk);
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t r[4];
        ldsm_x4_trans(r, udO + la.at(kk * 16, dp * 2));
        mma_pair<T>(dv[2 * dp], dv[2 * dp + 1], a, r);
      }
    }

    // dP^T = V dO^T.
    float dpt[kM / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t a[4];
      ldsm_x4(a, uV + la.at(warp * 16, kk * 2));
#pragma unroll
      for (int np = 0; np < kM / 16; ++np) {
        uint32_t r[4];
        ldsm_x4(r, udO + lb.at(np * 16, kk * 2));
        mma_pair<T>(dpt[2 * np], dpt[2 * np + 1], a, r);
      }
    }

    // dS^T = P^T (dP^T - delta), kept in dpt and stored (16-bit) for the dQ product.
#pragma unroll
    for (int nt = 0; nt < kM / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[nt][e] = st[nt][e] * (dpt[nt][e] - c_delta[nt * 8 + 2 * c + (e & 1)]);
      const uint32_t at = uDs + (ds_at ^ static_cast<uint32_t>(nt << 4));
      sts_u32(at, pack2<T>(dpt[nt][0], dpt[nt][1]));
      sts_u32(at + 8 * kM * 2, pack2<T>(dpt[nt][2], dpt[nt][3]));
    }

    // dK += dS^T Q.
#pragma unroll
    for (int kk = 0; kk < kM / 16; ++kk) {
      uint32_t a[4];
      acc_to_a<T>(a, dpt, kk);
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t r[4];
        ldsm_x4_trans(r, uQ + la.at(kk * 16, dp * 2));
        mma_pair<T>(dk[2 * dp], dk[2 * dp + 1], a, r);
      }
    }
    __syncthreads();  // dS^T complete

    // dQ (rows rt * 16.., cols cg * kDqCols..) = dS K over the tile's keys; A = dS read transposed.
    constexpr int kDqCols = Tr::kDqCols;
    const int rt = warp % (kM / 16), cg = warp / (kM / 16);
    float dq[kDqCols / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) {
      uint32_t a[4];
      ldsm_x4_trans(a, uDs + lds.at(kk * 16, rt * 2));
#pragma unroll
      for (int np = 0; np < kDqCols / 16; ++np) {
        uint32_t r[4];
        ldsm_x4_trans(r, uK + la.at(kk * 16, (cg * kDqCols + np * 16) / 8));
        mma_pair<T>(dq[2 * np], dq[2 * np + 1], a, r);
      }
    }
    float* dq_tile = dq_accum + ((s.q_row0 + m0) * p.heads_q + h) * kD + cg * kDqCols + 2 * c;
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = rt * 16 + g + hr * 8;
      if (m0 + row < s.seq_q) {
        float* dst = dq_tile + int64_t(row) * p.heads_q * kD;
#pragma unroll
        for (int nt = 0; nt < kDqCols / 8; ++nt) atomic_add_pair(dst + nt * 8, dq[nt][2 * hr], dq[nt][2 * hr + 1]);
      }
    }
    // The other stage's stats were last read in iteration it - 1 (before this iteration's barrier).
    if (tid < kM && it + 1 < n_iter) {
      s_lse[(stage ^ 1) * kM + tid] = next_lse2;
      s_delta[(stage ^ 1) * kM + tid] = next_delta;
    }
  }

  // dK (scaled), dV rows of this warp; keys past the sequence end are not written.
  T* dk_out = static_cast<T*>(p.dk) + seq_base(p, b, s.k_row0, p.dk_batch_stride, p.dk_row_stride) +
              hk * p.dk_head_stride;
  T* dv_out = static_cast<T*>(p.dv) + seq_base(p, b, s.k_row0, p.dv_batch_stride, p.dv_row_stride) +
              hk * p.dv_head_stride;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = key_lo + hr * 8;
    if (key >= s.seq_k) continue;
    T* dk_row = dk_out + key * p.dk_row_stride + 2 * c;
    T* dv_row = dv_out + key * p.dv_row_stride + 2 * c;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt) {
      *reinterpret_cast<uint32_t*>(dk_row + nt * 8) = pack2<T>(dk[nt][2 * hr] * p.scale, dk[nt][2 * hr + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv_row + nt * 8) = pack2<T>(dv[nt][2 * hr], dv[nt][2 * hr + 1]);
    }
  }
}

}  // namespace lloco::cuda_kernels::flash_bwd
