// FlashAttention-2 forward on mma.sync tensor cores (sm_80+, the same code runs on sm_90).
//
// One 128-thread CTA per (query tile of kBlockM rows, query head, batch); each warp owns kWarpM
// consecutive 16-row mma tiles of the query tile (warp w: rows 16 kWarpM w .. 16 kWarpM (w + 1) - 1).
// K/V tiles of kBlockN rows stream through a double buffer: tile j + 1 is in flight (cp.async)
// while tile j is used. Per tile: S = Q K^T (K via ldmatrix as the B operand), online softmax in
// registers in the log2 domain (running max m, running sum l, rescale of O), P rounded to bf16/f16
// in registers and fed straight back as the A operand of O += P V (V via ldmatrix.trans). O and l
// stay in f32 until the epilogue, which writes O through smem with 16-byte stores and
// lse = ln(sum exp(scale * s)).
//
// Two query tilings, both 4 warps:
//   kWarpM 1 (kBlockM 64): the Q fragments stay in registers for the whole key loop. Every K/V
//     fragment a warp loads from smem feeds the mma of 16 query rows: 16 FLOP per smem byte.
//   kWarpM 2 (kBlockM 128, FlashAttention-2's tiling for A100/H100): each K/V fragment feeds two
//     16-row tiles: 26 FLOP per smem byte read, counting the Q fragments, which are re-read from
//     smem per key tile to make room for the doubled O and S accumulators. Twice the smem for Q: on sm_90
//     (228 KB / SM) it still fits 2 CTAs / SM, on sm_80 (164 KB) only one, so sm_80 keeps kWarpM 1.
//
// Key tile per head dim (kBlockN) and registers per thread (Q frags in regs only for kWarpM 1):
//   hd64:  kBlockN = 128. kWarpM 1: Q 16 + O 32 + S 64; kWarpM 2: O 64 + S 128. The wide key tile
//          halves the per-tile overhead (barriers, max/sum shuffles, O rescale), which matters at
//          hd64 where each tile carries little mma work per softmax element.
//   hd128: kBlockN = 64. kWarpM 1: Q 32 + O 64 + S 32; kWarpM 2: O 128 + S 64.
// smem = (kBlockM + 4 kBlockN) * kD * 2 bytes: hd64 72 / 80 KB, hd128 80 / 96 KB (kWarpM 1 / 2).
// Registers (CUDA 13, sm_90; scripts/kernel_report.py, table in bench/RESULTS.md): kWarpM 1 uses
// 170-182, kWarpM 2 all 255 with 16-56 bytes of spills. In the hd128 key loop those are 4 global
// base addresses and the 4 running sums, 12 local accesses per ~1040 instructions (256 HMMA).
#include <array>
#include <atomic>
#include <cmath>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_mma.cuh"

namespace lloco::cuda_kernels {

namespace {

using namespace flash;

constexpr int kThreads = 128;  // 4 warps

template <int kD>
constexpr int kBlockNOf = kD == 64 ? 128 : 64;  // key rows per K/V tile (see the header comment)
template <int kD, int kWarpM>
constexpr size_t kSmemBytesOf = static_cast<size_t>(64 * kWarpM + 4 * kBlockNOf<kD>) * kD * 2;  // Q + 2 x (K + V)

// Copies rows [0, rows_valid) of a kRows x kD tile (global row stride in elements) into swizzled
// smem with cp.async; rows >= rows_valid become zeros, so masked keys meet V rows of 0 (not NaN).
// gmem is the tile's first row, which the callers guarantee to be in bounds. Thread tid copies
// chunk tid % kChunks of rows tid / kChunks + i * kRowStep: kRowStep is a multiple of 8, so the
// swizzled column is the same for all of its rows and the addresses advance by constants. The
// global address steps by an opaque stride: otherwise the compiler keeps every row's 64-bit offset
// in registers across the key loop (32 registers for K and V), which spills at kWarpM 2.
template <int kRows, int kD, typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int tid) {
  using Tile = SwizzledTile<kD>;
  constexpr int kRowStep = kThreads / Tile::kChunks;
  static_assert(kRows % kRowStep == 0 && kRowStep % 8 == 0, "tile must split evenly over the CTA");
  const int row = tid / Tile::kChunks, col = (tid % Tile::kChunks) * 8;
  const T* src = gmem + row * row_stride + col;
  int64_t step = kRowStep * row_stride;
  opaque(step);
  T* dst = smem + Tile::offset(row, col);
#pragma unroll
  for (int it = 0; it < kRows / kRowStep; ++it) {
    const bool valid = row + it * kRowStep < rows_valid;
    cp_async_16(dst + it * kRowStep * kD, valid ? src : gmem, valid);
    src += step;
  }
}

// q/k/v/o/lse: see FlashParams. Grid (ceil(seqlen_q / kBlockM), heads_q, batch).
template <int kD, int kWarpM, typename T, bool kCausal, bool kEvenN>
__global__ void __launch_bounds__(kThreads) flash_fwd_kernel(const FlashParams p) {
  constexpr int kBlockM = 64 * kWarpM, kWarpRows = 16 * kWarpM;
  constexpr int kBlockN = kBlockNOf<kD>;
  constexpr int kDTiles = kD / 8, kNTiles = kBlockN / 8;  // 8-wide mma n-tiles of O and of S
  constexpr bool kQInRegs = kWarpM == 1;
  using Tile = SwizzledTile<kD>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 128);
  T* s_q = reinterpret_cast<T*>(smem_raw);  // [kBlockM, kD]; reused per warp for the O tile
  T* s_k = s_q + kBlockM * kD;              // [2][kBlockN, kD]
  T* s_v = s_k + 2 * kBlockN * kD;          // [2][kBlockN, kD]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // Causal: the last query tiles see the most keys; start them first so the grid's tail is short.
  const int m_block = kCausal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);

  const FwdSeq seq = fwd_seq(p, b);
  const int len_q = seq.len_q, len_k = seq.len_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;  // varlen: this sequence is shorter than the longest one
  const T* g_q = static_cast<const T*>(p.q) + seq.q_off + h * p.q_head_stride + m0 * p.q_row_stride;
  const T* g_k = static_cast<const T*>(p.k) + seq.k_off + hk * p.k_head_stride;
  const T* g_v = static_cast<const T*>(p.v) + seq.v_off + hk * p.v_head_stride;
  T* g_o = static_cast<T*>(p.o) + seq.o_off + h * p.o_head_stride + m0 * p.o_row_stride;
  float* g_lse = p.lse + seq.lse_off + h * p.lse_head_stride + m0;

  // Bottom-right causal: query row i sees keys j <= i + shift. Key tiles past the last row's limit
  // are skipped entirely (possibly all of them: those rows get out = 0, lse = -inf).
  const int shift = len_k - len_q;
  int n_end = len_k;
  if (kCausal) n_end = max(0, min(len_k, min(m0 + kBlockM, len_q) + shift));
  const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

  load_tile<kBlockM, kD>(s_q, g_q, p.q_row_stride, len_q - m0, tid);
  cp_async_commit();
  if (n_blocks > 0) {
    load_tile<kBlockN, kD>(s_k, g_k, p.k_row_stride, len_k, tid);
    load_tile<kBlockN, kD>(s_v, g_v, p.v_row_stride, len_k, tid);
  }
  cp_async_commit();
  cp_async_wait<1>();  // Q landed (K/V tile 0 may still be in flight)
  __syncthreads();

  const int warp_row = warp * kWarpRows;  // first tile row of this warp
  // ldmatrix row addresses as 32-bit shared offsets (LaneAddr): A operands (Q) and transposed B
  // operands (V) read rows lane % 16, chunk lane / 16 of a 16 x 16 block; plain B operands (K)
  // rows lane % 8 (+8 for lanes 16..31), chunk (lane / 8) % 2.
  const uint32_t u_q = smem_addr(s_q), u_k = smem_addr(s_k), u_v = smem_addr(s_v);
  const LaneAddr<kD> lane_a(lane & 15, lane >> 4), lane_b((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
  // A fragment of query rows warp_row + 16 mt .. + 15, head-dim columns 16 ks .. 16 ks + 15.
  auto load_q = [&](uint32_t(&a)[4], const LaneAddr<kD>& la, int mt, int ks) {
    ldsm_x4(a, u_q + la.at(warp_row + mt * 16, ks * 2));
  };
  uint32_t q_frag[kQInRegs ? kD / 16 : 1][4];
  if constexpr (kQInRegs) {
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) load_q(q_frag[ks], lane_a, 0, ks);
  }

  // Thread state for its rows r = 0, 1 of each m-tile mt (tile rows warp_row + 16 mt + lane / 4
  // + 8r); O columns dt * 8 + 2 * (lane % 4) + {0, 1} (C fragment layout, flash_mma.cuh).
  float acc_o[kWarpM][kDTiles][4];
#pragma unroll
  for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.f;
  float row_max[kWarpM][2], row_sum[kWarpM][2];  // raw (unscaled) max; this thread's partial sum
#pragma unroll
  for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.f;  // quad-reduced at the end
    }
  const float scale_log2 = p.scale_log2;

  for (int j = 0; j < n_blocks; ++j) {
    const int buf = j & 1;
    if (j + 1 < n_blocks) {  // prefetch tile j + 1 into the other buffer (freed by the trailing barrier)
      const int n_next = (j + 1) * kBlockN;
      load_tile<kBlockN, kD>(s_k + (buf ^ 1) * kBlockN * kD, g_k + n_next * p.k_row_stride, p.k_row_stride,
                             len_k - n_next, tid);
      load_tile<kBlockN, kD>(s_v + (buf ^ 1) * kBlockN * kD, g_v + n_next * p.v_row_stride, p.v_row_stride,
                             len_k - n_next, tid);
    }
    cp_async_commit();   // possibly empty: keeps "tile j is the older group" true
    cp_async_wait<1>();  // tile j landed (this thread's copies) ...
    __syncthreads();     // ... and everyone's
    const uint32_t k_tile = u_k + buf * kBlockN * kD * 2, v_tile = u_v + buf * kBlockN * kD * 2;
    LaneAddr<kD> la = lane_a, lb = lane_b;
    opaque(la.base);
    opaque(lb.base);

    float s[kWarpM][kNTiles][4];
#pragma unroll
    for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t qa[kWarpM][4];
#pragma unroll
      for (int mt = 0; mt < kWarpM; ++mt) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[mt][e] = q_frag[ks][e];
        } else {
          load_q(qa[mt], la, mt, ks);
        }
      }
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t r[4];
        ldsm_x4(r, k_tile + lb.at(np * 16, ks * 2));
        const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
#pragma unroll
        for (int mt = 0; mt < kWarpM; ++mt) {
          mma_16816<T>(s[mt][2 * np], qa[mt], b0);
          mma_16816<T>(s[mt][2 * np + 1], qa[mt], b1);
        }
      }
    }

    // Element masks only on tiles that cross the causal diagonal of the tile's first row or run
    // past the keys.
    const int n0 = j * kBlockN;
    const bool cross_diag = kCausal && n0 + kBlockN - 1 > m0 + shift;
    const bool past_end = !kEvenN && n0 + kBlockN > len_k;
    if (cross_diag || past_end) {
#pragma unroll
      for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = n0 + nt * 8 + (lane % 4) * 2 + (e & 1);
            const int row = m0 + warp_row + mt * 16 + lane / 4 + (e >> 1) * 8;
            const int limit = kCausal ? min(len_k, row + shift + 1) : len_k;
            if (col >= limit) s[mt][nt][e] = -INFINITY;
          }
    }

    uint32_t p_frag[kWarpM][kNTiles][2];  // P = exp(S - max) as bf16/f16 pairs, one per (n-tile, row r)
#pragma unroll
    for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = row_max[mt][r];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        mx = quad_max(mx);
        // A row that has seen no key yet keeps max -inf: subtract 0 instead, so exp2(-inf) = 0
        // rather than exp2(-inf + inf) = NaN (needs scale_log2 > 0, checked by the launcher).
        const float max_scaled = mx == -INFINITY ? 0.f : mx * scale_log2;
        const float alpha = exp2_ftz(row_max[mt][r] * scale_log2 - max_scaled);
        row_max[mt][r] = mx;
        row_sum[mt][r] *= alpha;
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          acc_o[mt][dt][2 * r] *= alpha;
          acc_o[mt][dt][2 * r + 1] *= alpha;
        }
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
          const float p0 = exp2_ftz(fmaf(s[mt][nt][2 * r], scale_log2, -max_scaled));
          const float p1 = exp2_ftz(fmaf(s[mt][nt][2 * r + 1], scale_log2, -max_scaled));
          row_sum[mt][r] += p0 + p1;
          p_frag[mt][nt][r] = pack2<T>(p0, p1);  // packed now: the f32 scores die here (registers)
        }
      }

    // O += P V: the P registers of n-tiles 2kk, 2kk+1 are the A fragment of key block kk.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t a[kWarpM][4];
#pragma unroll
      for (int mt = 0; mt < kWarpM; ++mt) {
        a[mt][0] = p_frag[mt][2 * kk][0];
        a[mt][1] = p_frag[mt][2 * kk][1];
        a[mt][2] = p_frag[mt][2 * kk + 1][0];
        a[mt][3] = p_frag[mt][2 * kk + 1][1];
      }
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t r[4];
        ldsm_x4_trans(r, v_tile + la.at(kk * 16, dp * 2));
        const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
#pragma unroll
        for (int mt = 0; mt < kWarpM; ++mt) {
          mma_16816<T>(acc_o[mt][2 * dp], a[mt], b0);
          mma_16816<T>(acc_o[mt][2 * dp + 1], a[mt], b1);
        }
      }
    }
    __syncthreads();  // all warps are done with buffer `buf` before iteration j + 1 refills it
  }
  cp_async_wait<0>();  // only empty groups can remain; leave nothing in flight at exit

  // Epilogue: normalise, stage this warp's rows of O in its own rows of s_q (no other warp reads
  // them: each warp loads only its own Q rows), then 16-byte stores of whole rows.
  float lse[kWarpM][2];
#pragma unroll
  for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = quad_sum(row_sum[mt][r]);
      const bool seen = l > 0.f;  // false for a row whose keys are all masked (or len_k == 0)
      const float inv = seen ? 1.f / l : 0.f;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        acc_o[mt][dt][2 * r] *= inv;
        acc_o[mt][dt][2 * r + 1] *= inv;
      }
      // ln(sum exp(scale * s)) = (max * scale_log2 + log2(l)) * ln(2).
      lse[mt][r] = seen ? (row_max[mt][r] * scale_log2 + log2f(l)) * 0.69314718055994531f : -INFINITY;
    }
#pragma unroll
  for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = warp_row + mt * 16 + lane / 4 + 8 * r, col = dt * 8 + (lane % 4) * 2;
        *reinterpret_cast<uint32_t*>(s_q + Tile::offset(row, col)) =
            pack2<T>(acc_o[mt][dt][2 * r], acc_o[mt][dt][2 * r + 1]);
      }
  __syncwarp();
  store_warp_rows<kD, kWarpRows>(g_o, p.o_row_stride, s_q, warp_row, len_q - m0, lane);
  if (lane % 4 == 0) {
#pragma unroll
    for (int mt = 0; mt < kWarpM; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = warp_row + mt * 16 + lane / 4 + 8 * r;
        if (m0 + row < len_q) g_lse[row] = lse[mt][r];
      }
  }
}

// ---- host side -------------------------------------------------------------------------------------------

template <typename F>
void bool_switch(bool v, F&& f) {
  if (v)
    f(std::true_type{});
  else
    f(std::false_type{});
}

template <int kD, int kWarpM, typename T, bool kCausal, bool kEvenN>
void run_fwd(const FlashParams& p, cudaStream_t stream) {
  auto kernel = flash_fwd_kernel<kD, kWarpM, T, kCausal, kEvenN>;
  constexpr size_t smem = kSmemBytesOf<kD, kWarpM>;
  constexpr int block_m = 64 * kWarpM;
  if (smem > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((p.seqlen_q + block_m - 1) / block_m), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(p.batch));
  LLOCO_LAUNCH(grid, kThreads, smem, stream, kernel)(p);
}

template <int kD, typename T>
void dispatch_flags(const FlashParams& p, int block_m, cudaStream_t stream) {
  // Dense problems whose key length fills whole tiles need no bounds mask; varlen lengths vary.
  const bool even_n = p.cu_seqlens_k == nullptr && p.seqlen_k % kBlockNOf<kD> == 0;
  bool_switch(p.causal, [&](auto causal) {
    bool_switch(even_n, [&](auto even) {
      constexpr bool kCausal = decltype(causal)::value, kEven = decltype(even)::value;
      if (block_m == 128)
        run_fwd<kD, 2, T, kCausal, kEven>(p, stream);
      else
        run_fwd<kD, 1, T, kCausal, kEven>(p, stream);
    });
  });
}

template <typename T>
void dispatch_head_dim(const FlashParams& p, int block_m, cudaStream_t stream) {
  if (p.head_dim == 64)
    dispatch_flags<64, T>(p, block_m, stream);
  else
    dispatch_flags<128, T>(p, block_m, stream);
}

// Compute capability major of the current device, queried once per device.
int device_cc_major() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  static std::array<std::atomic<int>, 64> cache{};  // 0 = not yet known
  auto query = [dev] {
    int major = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    return major;
  };
  if (dev < 0 || dev >= static_cast<int>(cache.size())) return query();
  int known = cache[dev].load(std::memory_order_relaxed);
  if (known == 0) {
    known = query();
    cache[dev].store(known, std::memory_order_relaxed);
  }
  return known;
}

// The query tile (see the header comment): 128 rows on sm_90+ when the grid of 128-row tiles
// still gives every SM its 2 CTAs; else 64 rows (more, smaller CTAs fill the GPU better).
int choose_block_m(const FlashParams& p) {
  if (p.fwd_block_m != 0) return p.fwd_block_m;
  if (device_cc_major() < 9) return 64;
  const int64_t ctas_128 = (p.seqlen_q + 127) / 128 * int64_t(p.heads_q) * p.batch;
  return ctas_128 >= 2 * int64_t(device_sm_count()) ? 128 : 64;
}

bool strides_ok(int64_t batch, int64_t row, int64_t head) { return batch % 8 == 0 && row % 8 == 0 && head % 8 == 0; }

}  // namespace

bool flash_supported(const FlashParams& p) {
  if (p.head_dim != 64 && p.head_dim != 128) return false;
  if (p.heads_q <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return false;
  // Every 16-byte cp.async / store must be aligned: 16-byte bases, strides in whole 8-element chunks.
  if (!aligned16(p.q) || !aligned16(p.k) || !aligned16(p.v) || !aligned16(p.o)) return false;
  if (!strides_ok(p.q_batch_stride, p.q_row_stride, p.q_head_stride) ||
      !strides_ok(p.k_batch_stride, p.k_row_stride, p.k_head_stride) ||
      !strides_ok(p.v_batch_stride, p.v_row_stride, p.v_head_stride) ||
      !strides_ok(p.o_batch_stride, p.o_row_stride, p.o_head_stride))
    return false;
  return device_cc_major() >= 8;
}

void launch_flash_fwd(const FlashParams& p, cudaStream_t stream) {
  LLOCO_CHECK(flash_supported(p), "flash_fwd", "unsupported problem: head_dim ", p.head_dim, ", heads ", p.heads_q,
              "/", p.heads_kv, " (needs head_dim 64 or 128, heads_q % heads_kv == 0, 16-byte aligned pointers, ",
              "strides in multiples of 8 elements, sm_80+)");
  LLOCO_CHECK((p.cu_seqlens_q == nullptr) == (p.cu_seqlens_k == nullptr), "flash_fwd",
              "cu_seqlens_q and cu_seqlens_k must both be set or both be null");
  LLOCO_CHECK(p.lse != nullptr, "flash_fwd", "lse output is null");
  LLOCO_CHECK(p.scale > 0.f && std::abs(p.scale_log2 - p.scale * 1.4426950408889634f) <= 1e-5f * p.scale_log2,
              "flash_fwd", "scale_log2 ", p.scale_log2, " must be scale ", p.scale, " * log2(e) with scale > 0");
  LLOCO_CHECK(p.batch >= 0 && p.batch < 65536 && p.heads_q < 65536 && p.seqlen_q >= 0 && p.seqlen_k >= 0,
              "flash_fwd", "grid out of range: batch ", p.batch, ", heads_q ", p.heads_q, ", seqlen_q ", p.seqlen_q,
              ", seqlen_k ", p.seqlen_k);
  LLOCO_CHECK(p.fwd_block_m == 0 || p.fwd_block_m == 64 || p.fwd_block_m == 128, "flash_fwd",
              "fwd_block_m ", p.fwd_block_m, " must be 0 (auto), 64 or 128");
  LLOCO_CHECK(p.fwd_kernel >= 0 && p.fwd_kernel <= 2, "flash_fwd", "fwd_kernel ", p.fwd_kernel,
              " must be 0 (auto), 1 (mma.sync) or 2 (wgmma)");
  LLOCO_CHECK(p.fwd_block_n == 0 || p.fwd_block_n == 64 || p.fwd_block_n == 128, "flash_fwd", "fwd_block_n ",
              p.fwd_block_n, " must be 0 (auto), 64 or 128");
  if (p.batch == 0 || p.seqlen_q == 0) return;
  if (flash_uses_wgmma(p.fwd_kernel)) {
    launch_flash_fwd_sm90(p, stream);
    CUDA_LAUNCH_CHECK(stream, "flash_fwd_sm90");
    return;
  }
  const int block_m = choose_block_m(p);
  if (p.is_bf16)
    dispatch_head_dim<__nv_bfloat16>(p, block_m, stream);
  else
    dispatch_head_dim<__half>(p, block_m, stream);
  CUDA_LAUNCH_CHECK(stream, "flash_fwd");
}

}  // namespace lloco::cuda_kernels
