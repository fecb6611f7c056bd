// Flash-attention backward: three launches on one stream.
//   1. prep:    delta[h, row] = dot(dout, out) per query row, and zero the f32 dq accumulator.
//   2. main:    flash_bwd_kernel.cuh (mma.sync) or flash_bwd_sm90.cu (wgmma, Hopper), one CTA per
//               (128-key tile, kv head, batch); writes dk, dv and adds dS K into the dq accumulator
//               with atomics.
//   3. convert: dq = scale * accumulator, cast to the output dtype with dq's strides.
//
// Workspace (f32, offsets rounded up to 256 bytes):
//   [0, A)      dq accumulator [total_q, heads_q, head_dim]
//   [A, A + B)  delta          [heads_q, total_q]
// where a query row is b * seqlen_q + t (dense) or cu_seqlens_q[b] + t (varlen).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/flash_bwd_kernel.cuh"

namespace lloco::cuda_kernels {

namespace {

using flash_bwd::BwdTraits;
using flash_bwd::seq_base;
using flash_bwd::seq_info;
using flash_bwd::SeqInfo;

constexpr int kRowWarps = 4;  // query rows per block in the prep / convert kernels (one warp each)

size_t round_up_256(size_t n) { return (n + 255) / 256 * 256; }
size_t dq_accum_bytes(const FlashBwdParams& p) {
  return round_up_256(static_cast<size_t>(p.total_q) * p.heads_q * p.head_dim * sizeof(float));
}
size_t delta_bytes(const FlashBwdParams& p) {
  return round_up_256(static_cast<size_t>(p.total_q) * p.heads_q * sizeof(float));
}

// Grid (row blocks of the longest sequence, heads_q, batch); a warp handles row t of head h.
template <typename T, int kD>
__global__ void flash_bwd_prep_kernel(const FlashBwdParams p, float* __restrict__ dq_accum,
                                      float* __restrict__ delta) {
  constexpr int kPer = kD / 32;
  const int lane = threadIdx.x & 31, t = blockIdx.x * kRowWarps + (threadIdx.x >> 5);
  const int h = blockIdx.y, b = blockIdx.z;
  const SeqInfo s = seq_info(p, b);
  if (t >= s.seq_q) return;
  const T* dout = static_cast<const T*>(p.dout) + seq_base(p, b, s.q_row0, p.do_batch_stride, p.do_row_stride) +
                  t * p.do_row_stride + h * p.do_head_stride + lane * kPer;
  const T* out = static_cast<const T*>(p.o) + seq_base(p, b, s.q_row0, p.o_batch_stride, p.o_row_stride) +
                 t * p.o_row_stride + h * p.o_head_stride + lane * kPer;
  const Pack<T, kPer> go = *reinterpret_cast<const Pack<T, kPer>*>(dout);
  const Pack<T, kPer> o = *reinterpret_cast<const Pack<T, kPer>*>(out);
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) dot += to_acc<float>(go.v[i]) * to_acc<float>(o.v[i]);
  dot = warp_reduce(dot, SumOp{});
  const int64_t row = s.q_row0 + t;
  if (lane == 0) delta[h * p.total_q + row] = dot;
  float* acc = dq_accum + (row * p.heads_q + h) * kD + lane * kPer;
#pragma unroll
  for (int i = 0; i < kPer; ++i) acc[i] = 0.f;
}

template <typename T, int kD>
__global__ void flash_bwd_convert_dq_kernel(const FlashBwdParams p, const float* __restrict__ dq_accum) {
  constexpr int kPer = kD / 32;
  const int lane = threadIdx.x & 31, t = blockIdx.x * kRowWarps + (threadIdx.x >> 5);
  const int h = blockIdx.y, b = blockIdx.z;
  const SeqInfo s = seq_info(p, b);
  if (t >= s.seq_q) return;
  const float* acc = dq_accum + ((s.q_row0 + t) * p.heads_q + h) * kD + lane * kPer;
  Pack<T, kPer> r;
#pragma unroll
  for (int i = 0; i < kPer; ++i) r.v[i] = from_acc<T>(acc[i] * p.scale);
  T* dq = static_cast<T*>(p.dq) + seq_base(p, b, s.q_row0, p.dq_batch_stride, p.dq_row_stride) +
          t * p.dq_row_stride + h * p.dq_head_stride + lane * kPer;
  *reinterpret_cast<Pack<T, kPer>*>(dq) = r;
}

template <typename T, int kD>
void run_flash_bwd(const FlashBwdParams& p, float* dq_accum, float* delta, cudaStream_t stream) {
  using Tr = BwdTraits<kD>;
  if (p.seqlen_q > 0) {
    dim3 grid((p.seqlen_q + kRowWarps - 1) / kRowWarps, p.heads_q, p.batch);
    LLOCO_LAUNCH(grid, kRowWarps * 32, 0, stream, flash_bwd_prep_kernel<T, kD>)(p, dq_accum, delta);
    CUDA_LAUNCH_CHECK(stream, "flash_bwd prep");
  }
  const bool wgmma = flash_uses_wgmma(p.bwd_kernel);
  if (p.seqlen_k > 0 && wgmma) {
    launch_flash_bwd_main_sm90(p, dq_accum, delta, stream);
    CUDA_LAUNCH_CHECK(stream, "flash_bwd main (wgmma)");
  } else if (p.seqlen_k > 0) {
    auto kernel = flash_bwd::flash_bwd_main_kernel<T, kD>;
    if (Tr::kSmemBytes > 48 * 1024)
      CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(Tr::kSmemBytes)));
    // Key tiles vary slowest: under causal masking the first tiles carry the most query tiles, so
    // they start first (longest-first scheduling shortens the tail).
    dim3 grid(p.heads_kv, p.batch, (p.seqlen_k + Tr::kBlockN - 1) / Tr::kBlockN);
    LLOCO_LAUNCH(grid, Tr::kThreads, Tr::kSmemBytes, stream, kernel)(p, dq_accum, delta);
    CUDA_LAUNCH_CHECK(stream, "flash_bwd main");
  }
  if (p.seqlen_q > 0) {
    dim3 grid((p.seqlen_q + kRowWarps - 1) / kRowWarps, p.heads_q, p.batch);
    LLOCO_LAUNCH(grid, kRowWarps * 32, 0, stream, flash_bwd_convert_dq_kernel<T, kD>)(p, dq_accum);
    CUDA_LAUNCH_CHECK(stream, "flash_bwd convert dq");
  }
}

// Operands move in 16-byte pieces of the head dim (cp.async, packed loads and stores).
bool aligned_rows(const void* ptr, int64_t batch_stride, int64_t row_stride, int64_t head_stride) {
  return aligned16(ptr) && batch_stride % 8 == 0 && row_stride % 8 == 0 && head_stride % 8 == 0;
}

size_t main_smem_bytes(int head_dim) {
  const size_t mma = head_dim == 64 ? BwdTraits<64>::kSmemBytes : BwdTraits<128>::kSmemBytes;
  return std::max(mma, flash_bwd_sm90_smem_bytes(head_dim));
}

int smem_optin_bytes() {
  int device = 0, bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    return 0;
  return bytes;
}

}  // namespace

bool flash_bwd_supported(const FlashBwdParams& p) {
  return flash_supported(p) && aligned_rows(p.dout, p.do_batch_stride, p.do_row_stride, p.do_head_stride) &&
         aligned_rows(p.dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride) &&
         aligned_rows(p.dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride) &&
         aligned_rows(p.dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride) &&
         main_smem_bytes(p.head_dim) <= static_cast<size_t>(smem_optin_bytes());
}

size_t flash_bwd_workspace_bytes(const FlashBwdParams& p) { return dq_accum_bytes(p) + delta_bytes(p); }

void launch_flash_bwd(const FlashBwdParams& p, void* workspace, cudaStream_t stream) {
  if (p.batch == 0 || p.heads_q == 0 || (p.seqlen_q == 0 && p.seqlen_k == 0)) return;
  LLOCO_CHECK(flash_bwd_supported(p), "flash_bwd", "unsupported problem: head_dim ", p.head_dim, ", heads ",
              p.heads_q, "/", p.heads_kv, " (needs flash_supported(), 16-byte aligned dout/dq/dk/dv with strides in ",
              "multiples of 8 elements, and ", main_smem_bytes(p.head_dim),
              " bytes of opt-in shared memory per block; the device allows ", smem_optin_bytes(), ")");
  LLOCO_CHECK((p.cu_seqlens_q == nullptr) == (p.cu_seqlens_k == nullptr), "flash_bwd",
              "cu_seqlens_q and cu_seqlens_k must both be set or both null");
  if (!p.cu_seqlens_q) {
    LLOCO_CHECK_EQ(p.total_q, static_cast<int64_t>(p.batch) * p.seqlen_q, "flash_bwd", "total_q (dense)");
    LLOCO_CHECK_EQ(p.total_k, static_cast<int64_t>(p.batch) * p.seqlen_k, "flash_bwd", "total_k (dense)");
  }
  LLOCO_CHECK(p.heads_q < 65536 && p.batch < 65536 && p.seqlen_k < 65535 * BwdTraits<64>::kBlockN, "flash_bwd",
              "grid too large: heads ", p.heads_q, ", batch ", p.batch, ", seqlen_k ", p.seqlen_k);
  LLOCO_CHECK(p.lse != nullptr, "flash_bwd", "lse is null");
  LLOCO_CHECK(p.bwd_kernel >= 0 && p.bwd_kernel <= 2, "flash_bwd", "bwd_kernel ", p.bwd_kernel,
              " must be 0 (automatic), 1 (mma.sync) or 2 (wgmma)");
  LLOCO_CHECK(workspace != nullptr && aligned16(workspace), "flash_bwd", "workspace must be 16-byte aligned");

  float* dq_accum = static_cast<float*>(workspace);
  float* delta = reinterpret_cast<float*>(static_cast<char*>(workspace) + dq_accum_bytes(p));
  if (p.is_bf16) {
    if (p.head_dim == 64) run_flash_bwd<__nv_bfloat16, 64>(p, dq_accum, delta, stream);
    else run_flash_bwd<__nv_bfloat16, 128>(p, dq_accum, delta, stream);
  } else {
    if (p.head_dim == 64) run_flash_bwd<__half, 64>(p, dq_accum, delta, stream);
    else run_flash_bwd<__half, 128>(p, dq_accum, delta, stream);
  }
}

}  // namespace lloco::cuda_kernels
