// Split-KV decode attention: a few new query rows (Tq <= 16) against a long KV cache. The work is
// bandwidth-bound (~1 FLOP per byte of K/V at Tq = 1), so it runs on CUDA cores and is organised
// around streaming K and V once:
//
//   grid (row_blocks * num_splits, Hkv, B), 128 threads. A CTA owns one kv head, one chunk of keys
//   and up to kRows = 16 query rows of that head's group (row r = g * Tq + t: group member g, new
//   query t), so every K/V row is read once per CTA for the whole group. Tiles of kN keys are
//   copied into shared memory with 16-byte cp.async loads (coalesced along D) kStages deep; per tile
//     1. scores: thread (key j, row lane) dots its K row with the pre-scaled f32 queries,
//     2. online softmax: one warp per row, exp2 domain,
//     3. P @ V: thread (8-column chunk, slot) accumulates f32 rows; when rows are few the spare
//        slots take every key_split-th key and are summed at the end.
//   Each CTA writes its chunk's normalised partial output (f32) and log2-sum-exp to the workspace;
//   the combine kernel (one warp per query row) merges the splits by their lse and writes out + lse.
//
// Occupancy (dynamic smem, from the layout below): D <= 64 and D <= 128 use ~63 KB per CTA
// (3 stages of 16 KB K+V tiles + queries + scores): 3 CTAs (12 warps) per SM on sm_90 (228 KB), 2 on
// sm_80 (164 KB), i.e. 32 KB of loads in flight per CTA. D <= 256 uses 2 stages of 33 KB (~85 KB):
// 2 CTAs per SM on sm_90, 1 on sm_80.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_mma.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 16;               // query rows (group members x new queries) per CTA
constexpr int kMinChunk = 256;          // keys per split at least: shorter chunks cost more in combine than they gain
constexpr int kTargetCtasPerSm = 2;     // splits fill this many CTAs per SM (3 fit on sm_90 for D <= 128)
constexpr float kLn2 = 0.693147180559945309f;

// Compile-time shape of one kernel variant: kMaxD is the head dim rounded up to 64 / 128 / 256.
template <int kMaxD>
struct DecodeTraits {
  static constexpr int kN = 4096 / kMaxD < 32 ? 32 : 4096 / kMaxD;  // keys per tile (8 KB of K at D <= 128)
  static constexpr int kStages = kMaxD <= 128 ? 3 : 2;
  static constexpr int kPitch = kMaxD + 8;  // smem row pitch (elements): +16 B spreads rows over the banks
  static constexpr int kChunks = kMaxD / 8;  // 16-byte vectors per row
  static constexpr int kSlots = kThreads / kChunks;  // P@V: threads per column chunk
  static constexpr int kRowsPerSlot = (kRows + kSlots - 1) / kSlots;
  static constexpr int kRowLanes = kThreads / kN;  // scores: threads per key
  static constexpr int kRowsPerLane = (kRows + kRowLanes - 1) / kRowLanes;
  static constexpr int kKeysPerLane = kN / 32;  // softmax: keys per lane of the row's warp
  static constexpr size_t kTileBytes = size_t(kN) * kPitch * 2;  // one K (or V) tile, 2-byte elements
  static constexpr size_t kKvBytes = size_t(kStages) * 2 * kTileBytes;
  static constexpr size_t kSmemBytes = kKvBytes + (size_t(kRows) * kMaxD + size_t(kRows) * kN + 3 * kRows) * 4;
  static_assert(kN % 32 == 0 && kThreads % kN == 0 && kThreads % kChunks == 0, "tile shape");
  // The end-of-kernel reduction of the P@V slots reuses the K/V buffers.
  static_assert(size_t(kSlots > kRows ? kSlots : kRows) * kMaxD * 4 <= kKvBytes, "reduction buffer");
};

int max_d_for(int head_dim) { return head_dim <= 64 ? 64 : (head_dim <= 128 ? 128 : 256); }
int tile_keys_for(int head_dim) {
  switch (max_d_for(head_dim)) {
    case 64: return DecodeTraits<64>::kN;
    case 128: return DecodeTraits<128>::kN;
    default: return DecodeTraits<256>::kN;
  }
}
__host__ __device__ inline int row_blocks(const FlashParams& p) {
  return (p.heads_q / p.heads_kv * p.seqlen_q + kRows - 1) / kRows;
}
// Keys per split: a whole number of tiles, so splits past the end of the cache are empty.
int chunk_keys(const FlashParams& p, int num_splits) {
  const int n = tile_keys_for(p.head_dim);
  const int per = (p.seqlen_k + num_splits - 1) / num_splits;
  return std::max(n, (per + n - 1) / n * n);
}

template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&f)[8]) {
  const Pack<T, 8> v = *reinterpret_cast<const Pack<T, 8>*>(p);
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = to_acc<float>(v.v[e]);
}

template <typename T, int kMaxD>
__global__ void __launch_bounds__(kThreads) flash_decode_split_kernel(FlashParams p, int num_splits, int chunk,
                                                                      float* o_ws, float* lse_ws) {
  using Tr = DecodeTraits<kMaxD>;
  constexpr int kN = Tr::kN, kPitch = Tr::kPitch, kStages = Tr::kStages;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem, 16);
  T* kv_s = reinterpret_cast<T*>(smem);                       // [kStages][2 (K, V)][kN][kPitch]
  float* q_s = reinterpret_cast<float*>(smem + Tr::kKvBytes);  // [kRows][kMaxD], times scale * log2(e)
  float* s_s = q_s + kRows * kMaxD;                            // [kRows][kN] scores, then probabilities
  float* alpha_s = s_s + kRows * kN;                           // [kRows] rescale of the running output
  float* m_s = alpha_s + kRows;                                // [kRows] final running max (log2 units)
  float* l_s = m_s + kRows;                                    // [kRows] final running sum

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int nrb = row_blocks(p);
  const int rb = blockIdx.x % nrb, split = blockIdx.x / nrb, hk = blockIdx.y, b = blockIdx.z;
  const int group = p.heads_q / p.heads_kv, D = p.head_dim, nchunks = D / 8;
  const int rows = min(kRows, group * p.seqlen_q - rb * kRows);
  const int key_begin = min(split * chunk, p.seqlen_k), key_end = min(key_begin + chunk, p.seqlen_k);
  const int n_tiles = (key_end - key_begin + kN - 1) / kN;
  const int causal_shift = p.seqlen_k - p.seqlen_q;  // query t sees keys j <= t + shift

  const T* kg = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* vg = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  // Thread tid copies the 16-byte chunk tid % kChunks of rows tid / kChunks + i * kRowStep: compile-
  // time shifts and pointer steps, where a flat index over n_valid * nchunks would divide by the
  // runtime chunk count (about 20 instructions per cp.async). Chunks past the head dim stay idle.
  constexpr int kRowStep = kThreads / Tr::kChunks;
  static_assert(kN % kRowStep == 0, "a tile is whole passes of the CTA");
  const int copy_chunk = tid % Tr::kChunks, copy_row = tid / Tr::kChunks;
  const int64_t k_step = kRowStep * p.k_row_stride, v_step = kRowStep * p.v_row_stride;
  auto load_tile = [&](int tile, int stage) {
    if (copy_chunk >= nchunks) return;
    const int j0 = key_begin + tile * kN, n_valid = min(kN, key_end - j0);
    T* ks = kv_s + stage * 2 * kN * kPitch + copy_row * kPitch + copy_chunk * 8;
    T* vs = ks + kN * kPitch;
    const T* kp = kg + (j0 + copy_row) * p.k_row_stride + copy_chunk * 8;
    const T* vp = vg + (j0 + copy_row) * p.v_row_stride + copy_chunk * 8;
#pragma unroll
    for (int i = 0; i < kN / kRowStep; ++i) {
      if (copy_row + i * kRowStep < n_valid) {
        flash::cp_async_16(ks + i * kRowStep * kPitch, kp, true);
        flash::cp_async_16(vs + i * kRowStep * kPitch, vp, true);
      }
      kp += k_step;
      vp += v_step;
    }
  };
  // Start the K/V stream first, then stage the queries while it is in flight.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_tiles) load_tile(s, s);
    flash::cp_async_commit();  // empty groups too, so the wait count below stays uniform
  }
  for (int i = tid; i < rows * nchunks; i += kThreads) {
    const int r = i / nchunks, c = i % nchunks, rg = rb * kRows + r;
    const int h = hk * group + rg / p.seqlen_q, t = rg % p.seqlen_q;
    float f[8];
    load8(static_cast<const T*>(p.q) + b * p.q_batch_stride + t * p.q_row_stride + h * p.q_head_stride + c * 8, f);
#pragma unroll
    for (int e = 0; e < 8; ++e) q_s[r * kMaxD + c * 8 + e] = f[e] * p.scale_log2;
  }

  // Softmax state of the rows this warp owns (rows warp, warp + kWarps, ...), uniform over the warp.
  constexpr int kRowsPerWarp = kRows / kWarps;
  float m_run[kRowsPerWarp], l_run[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m_run[i] = neg_inf<float>();
    l_run[i] = 0.f;
  }
  // P@V: this thread's column chunk, row slot (rows rs, rs + row_slots, ...) and key phase ks.
  int row_slots = 1;
  while (row_slots < rows && row_slots < Tr::kSlots) row_slots *= 2;
  const int key_split = Tr::kSlots / row_slots;
  const int pc = tid % Tr::kChunks, slot = tid / Tr::kChunks, rs = slot % row_slots, ks = slot / row_slots;
  float acc[Tr::kRowsPerSlot][8];
#pragma unroll
  for (int i = 0; i < Tr::kRowsPerSlot; ++i)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[i][e] = 0.f;

  for (int it = 0; it < n_tiles; ++it) {
    flash::cp_async_wait<kStages - 2>();
    // Tile `it` has landed for every thread, and every thread is done with tile it - 1, whose stage
    // the next load overwrites, and with the probabilities in s_s.
    __syncthreads();
    if (it + kStages - 1 < n_tiles) load_tile(it + kStages - 1, (it + kStages - 1) % kStages);
    flash::cp_async_commit();
    const T* ks_tile = kv_s + (it % kStages) * 2 * kN * kPitch;
    const T* vs_tile = ks_tile + kN * kPitch;
    const int j0 = key_begin + it * kN, n_valid = min(kN, key_end - j0);

    {  // 1. scores s[r][j] in log2 units; -inf where masked or past the chunk
      const int j = tid % kN, rl = tid / kN;
      float dot[Tr::kRowsPerLane];
#pragma unroll
      for (int i = 0; i < Tr::kRowsPerLane; ++i) dot[i] = 0.f;
      if (j < n_valid) {
        const T* krow = ks_tile + j * kPitch;
#pragma unroll 4
        for (int c = 0; c < nchunks; ++c) {
          float kf[8];
          load8(krow + c * 8, kf);
#pragma unroll
          for (int i = 0; i < Tr::kRowsPerLane; ++i) {
            const int r = rl + i * Tr::kRowLanes;
            if (r < rows) {
              const float4 qa = *reinterpret_cast<const float4*>(q_s + r * kMaxD + c * 8);
              const float4 qb = *reinterpret_cast<const float4*>(q_s + r * kMaxD + c * 8 + 4);
              dot[i] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                        qb.z * kf[6] + qb.w * kf[7];
            }
          }
        }
      }
#pragma unroll
      for (int i = 0; i < Tr::kRowsPerLane; ++i) {
        const int r = rl + i * Tr::kRowLanes;
        if (r < rows) {
          const int t = (rb * kRows + r) % p.seqlen_q;
          const bool visible = j < n_valid && (!p.causal || j0 + j <= t + causal_shift);
          s_s[r * kN + j] = visible ? dot[i] : neg_inf<float>();
        }
      }
    }
    __syncthreads();
    // 2. online softmax, one warp per row
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + i * kWarps;
      if (r < rows) {
        float sv[Tr::kKeysPerLane], tile_max = neg_inf<float>();
#pragma unroll
        for (int u = 0; u < Tr::kKeysPerLane; ++u) {
          sv[u] = s_s[r * kN + lane + 32 * u];
          tile_max = fmaxf(tile_max, sv[u]);
        }
        const float m_new = fmaxf(m_run[i], warp_reduce(tile_max, MaxOp{}));
        float alpha = 1.f, psum = 0.f;
        if (m_new != neg_inf<float>()) {  // else nothing visible yet: p = 0, the output stays 0
          alpha = flash::exp2_ftz(m_run[i] - m_new);
#pragma unroll
          for (int u = 0; u < Tr::kKeysPerLane; ++u) {
            sv[u] = flash::exp2_ftz(sv[u] - m_new);
            psum += sv[u];
          }
        } else {
#pragma unroll
          for (int u = 0; u < Tr::kKeysPerLane; ++u) sv[u] = 0.f;
        }
#pragma unroll
        for (int u = 0; u < Tr::kKeysPerLane; ++u) s_s[r * kN + lane + 32 * u] = sv[u];
        l_run[i] = l_run[i] * alpha + warp_reduce(psum, SumOp{});
        m_run[i] = m_new;
        if (lane == 0) alpha_s[r] = alpha;
      }
    }
    __syncthreads();
    // 3. acc = acc * alpha + P @ V over this thread's keys (ks, ks + key_split, ...)
    if (pc < nchunks) {
#pragma unroll
      for (int i = 0; i < Tr::kRowsPerSlot; ++i) {
        const int r = rs + i * row_slots;
        if (r < rows) {
          const float a = alpha_s[r];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[i][e] *= a;
        }
      }
      for (int j = ks; j < n_valid; j += key_split) {
        float vf[8];
        load8(vs_tile + j * kPitch + pc * 8, vf);
#pragma unroll
        for (int i = 0; i < Tr::kRowsPerSlot; ++i) {
          const int r = rs + i * row_slots;
          if (r < rows) {
            const float pr = s_s[r * kN + j];
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[i][e] += pr * vf[e];
          }
        }
      }
    }
  }
  flash::cp_async_wait<0>();  // only empty groups can be pending; drained before the buffers are reused
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + i * kWarps;
    if (r < rows && lane == 0) {
      m_s[r] = m_run[i];
      l_s[r] = l_run[i];
    }
  }
  __syncthreads();
  // Sum the key phases: red[ks][r][d] (key_split * rows <= max(kSlots, kRows) rows of kMaxD floats).
  float* red = reinterpret_cast<float*>(smem);
  if (pc < nchunks) {
#pragma unroll
    for (int i = 0; i < Tr::kRowsPerSlot; ++i) {
      const int r = rs + i * row_slots;
      if (r < rows)
#pragma unroll
        for (int e = 0; e < 8; ++e) red[(ks * rows + r) * kMaxD + pc * 8 + e] = acc[i][e];
    }
  }
  __syncthreads();
  // Workspace rows are the query rows (b, h, t) in [B, Hq, Tq] order, each with num_splits slots.
  for (int i = tid; i < rows * D; i += kThreads) {
    const int r = i / D, d = i % D, rg = rb * kRows + r;
    const int64_t row = (int64_t(b) * p.heads_q + hk * group + rg / p.seqlen_q) * p.seqlen_q + rg % p.seqlen_q;
    float sum = 0.f;
    for (int k = 0; k < key_split; ++k) sum += red[(k * rows + r) * kMaxD + d];
    const float l = l_s[r];
    o_ws[(row * num_splits + split) * D + d] = l > 0.f ? sum / l : 0.f;
    if (d == 0) lse_ws[row * num_splits + split] = l > 0.f ? m_s[r] + log2f(l) : neg_inf<float>();
  }
}

// One warp per query row: out = sum_s w_s o_s / sum_s w_s with w_s = 2^(lse_s - max lse).
template <typename T>
__global__ void __launch_bounds__(kThreads) flash_decode_combine_kernel(FlashParams p, int num_splits,
                                                                        const float* o_ws, const float* lse_ws) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= int64_t(p.batch) * p.heads_q * p.seqlen_q) return;
  const int t = static_cast<int>(row % p.seqlen_q), h = static_cast<int>(row / p.seqlen_q % p.heads_q);
  const int b = static_cast<int>(row / (int64_t(p.seqlen_q) * p.heads_q));
  const float* ls = lse_ws + row * num_splits;
  float m = neg_inf<float>();
  for (int s = lane; s < num_splits; s += 32) m = fmaxf(m, ls[s]);
  m = warp_reduce(m, MaxOp{});
  float l = 0.f;
  if (m != neg_inf<float>())
    for (int s = lane; s < num_splits; s += 32) l += exp2f(ls[s] - m);
  l = warp_reduce(l, SumOp{});
  T* orow = static_cast<T*>(p.o) + b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride;
  const float* orow_ws = o_ws + row * num_splits * p.head_dim;
  for (int d = lane; d < p.head_dim; d += 32) {
    float acc = 0.f;
    if (l > 0.f)
      for (int s = 0; s < num_splits; ++s) acc += exp2f(ls[s] - m) * orow_ws[s * p.head_dim + d];
    orow[d] = from_acc<T>(l > 0.f ? acc / l : 0.f);
  }
  if (lane == 0 && p.lse)
    p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t] = l > 0.f ? (m + log2f(l)) * kLn2 : neg_inf<float>();
}

template <typename T, int kMaxD>
void launch_split(const FlashParams& p, int num_splits, float* o_ws, float* lse_ws, cudaStream_t stream) {
  using Tr = DecodeTraits<kMaxD>;
  auto kernel = flash_decode_split_kernel<T, kMaxD>;
  static const bool configured = [&] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Tr::kSmemBytes)));
    return true;
  }();
  (void)configured;
  dim3 grid(static_cast<unsigned>(row_blocks(p) * num_splits), static_cast<unsigned>(p.heads_kv),
            static_cast<unsigned>(p.batch));
  LLOCO_LAUNCH(grid, kThreads, Tr::kSmemBytes, stream, kernel)(p, num_splits, chunk_keys(p, num_splits), o_ws, lse_ws);
}

bool strides_ok(int64_t a, int64_t b, int64_t c) { return a % 8 == 0 && b % 8 == 0 && c % 8 == 0; }

}  // namespace

bool flash_decode_supported(const FlashParams& p) {
  return p.cu_seqlens_q == nullptr && p.cu_seqlens_k == nullptr && p.seqlen_q >= 1 &&
         p.seqlen_q <= kFlashDecodeMaxQ && p.seqlen_k >= 0 && p.head_dim >= 8 && p.head_dim <= 256 &&
         p.head_dim % 8 == 0 && p.heads_kv > 0 && p.heads_kv < 65536 && p.heads_q % p.heads_kv == 0 &&
         p.batch >= 0 && p.batch < 65536 && aligned16(p.q) && aligned16(p.k) && aligned16(p.v) &&
         strides_ok(p.q_batch_stride, p.q_row_stride, p.q_head_stride) &&
         strides_ok(p.k_batch_stride, p.k_row_stride, p.k_head_stride) &&
         strides_ok(p.v_batch_stride, p.v_row_stride, p.v_head_stride);
}

int flash_decode_num_splits(const FlashParams& p, int num_sms) {
  const int64_t ctas = int64_t(p.batch) * p.heads_kv * row_blocks(p);
  const int64_t target = int64_t(kTargetCtasPerSm) * num_sms;
  if (ctas <= 0 || ctas >= target) return 1;
  const int by_length = std::max(1, p.seqlen_k / kMinChunk);
  const int want = static_cast<int>(std::min<int64_t>((target + ctas - 1) / ctas, by_length));
  // Chunks are whole tiles; report the splits that are actually non-empty.
  return std::max(1, (p.seqlen_k + chunk_keys(p, want) - 1) / chunk_keys(p, want));
}

size_t flash_decode_workspace_bytes(const FlashParams& p, int num_splits) {
  const size_t rows = size_t(p.batch) * p.heads_q * p.seqlen_q;
  return rows * num_splits * (size_t(p.head_dim) + 1) * sizeof(float);
}

void launch_flash_decode(const FlashParams& p, int num_splits, void* workspace, cudaStream_t stream) {
  LLOCO_CHECK(flash_decode_supported(p), "flash_decode", "unsupported problem: Tq ", p.seqlen_q, " (max ",
              kFlashDecodeMaxQ, "), head_dim ", p.head_dim, " (multiple of 8 up to 256), heads ", p.heads_q, "/",
              p.heads_kv, ", dense batches, 16-byte aligned pointers and strides");
  LLOCO_CHECK(num_splits >= 1 && num_splits < 65536, "flash_decode", "num_splits ", num_splits, " out of range");
  if (p.batch == 0 || p.heads_q == 0) return;
  LLOCO_CHECK(int64_t(row_blocks(p)) * num_splits < (int64_t(1) << 31), "flash_decode", "grid too large");
  float* o_ws = static_cast<float*>(workspace);
  float* lse_ws = o_ws + size_t(p.batch) * p.heads_q * p.seqlen_q * num_splits * p.head_dim;
  const int max_d = max_d_for(p.head_dim);
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    if (max_d == 64) launch_split<T, 64>(p, num_splits, o_ws, lse_ws, stream);
    else if (max_d == 128) launch_split<T, 128>(p, num_splits, o_ws, lse_ws, stream);
    else launch_split<T, 256>(p, num_splits, o_ws, lse_ws, stream);
    CUDA_LAUNCH_CHECK(stream, "flash_decode split");
    const int64_t rows = int64_t(p.batch) * p.heads_q * p.seqlen_q;
    LLOCO_LAUNCH(static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, stream, flash_decode_combine_kernel<T>)(
        p, num_splits, o_ws, lse_ws);
    CUDA_LAUNCH_CHECK(stream, "flash_decode combine");
  };
  if (p.is_bf16) launch(__nv_bfloat16{});
  else launch(__half{});
}

}  // namespace lloco::cuda_kernels
