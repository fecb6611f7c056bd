// Flash-attention on tensor cores (sm_80+): the POD parameter structs and the raw-pointer launchers
// for the forward (train + prefill), backward and split-KV decode kernels. Shared by the kernel
// files (flash_fwd.cu, flash_bwd.cu, flash_decode.cu) and the binding (cuda/backend_attention.cpp).
//
// Addressing: element (b, t, h, d) of q/k/v/o lives at base + b * batch_stride + t * row_stride
// + h * head_stride + d (the head dim is contiguous). That covers [B, H, T, D] and [B, T, H, D]
// tensors and KV-cache views with a capacity stride without copies. With cu_seqlens set
// (varlen), batch strides are ignored and sequence b starts at row cu_seqlens[b].
//
// Semantics match the CPU reference (core/cpu/attention.cpp): query head h reads kv head
// h / (heads_q / heads_kv); causal masking is bottom-right aligned (query i sees key j when
// j <= i + seqlen_k - seqlen_q, per sequence); a query row that sees no key gets out = 0 and
// lse = -inf. lse is natural-log sum-exp of the scaled scores, f32.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace lloco::cuda_kernels {

struct FlashParams {
  const void* q = nullptr;  // [B, Tq, Hq, D] by strides
  const void* k = nullptr;  // [B, Tk, Hkv, D]
  const void* v = nullptr;  // [B, Tk, Hkv, D]
  void* o = nullptr;        // [B, Tq, Hq, D], same dtype as q
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;
  // lse(b, h, t) = lse[b * lse_batch_stride + h * lse_head_stride + row(t)], where row(t) = t, or
  // cu_seqlens_q[b] + t with varlen (dense: [B, Hq, Tq]; varlen: [Hq, total_q], batch stride 0).
  float* lse = nullptr;
  int64_t lse_batch_stride = 0, lse_head_stride = 0;
  const int32_t* cu_seqlens_q = nullptr;  // [B + 1] device pointers; both set or both null
  const int32_t* cu_seqlens_k = nullptr;
  int batch = 0, heads_q = 0, heads_kv = 0;
  int seqlen_q = 0, seqlen_k = 0;  // per sequence; the maxima with varlen
  int head_dim = 0;
  float scale = 0.f;       // softmax scale (1/sqrt(D) by default)
  float scale_log2 = 0.f;  // scale * log2(e): kernels use exp2
  bool causal = false;
  bool is_bf16 = true;  // bf16, else f16
  // Forward kernel: 0 lets launch_flash_fwd choose (the wgmma kernel where flash_wgmma_available,
  // else mma.sync); 1 forces the mma.sync kernel, 2 the wgmma one (tests and benchmarks compare them).
  int fwd_kernel = 0;
  // Query tile of the mma.sync forward: 0 lets launch_flash_fwd choose per device and grid; 64 or
  // 128 forces one. Ignored by the wgmma forward (128 rows), the backward and decode kernels.
  int fwd_block_m = 0;
  // Key tile of the wgmma forward at head dim 128: 0 (automatic) and 128 take 128 keys, 64 takes
  // 64 (fewer registers, twice the barriers per key). Head dim 64 always takes 128; the other
  // kernels ignore it.
  int fwd_block_n = 0;
};

struct FlashBwdParams : FlashParams {
  const void* dout = nullptr;  // like o
  int64_t do_batch_stride = 0, do_row_stride = 0, do_head_stride = 0;
  void* dq = nullptr;  // like q (overwritten)
  int64_t dq_batch_stride = 0, dq_row_stride = 0, dq_head_stride = 0;
  void* dk = nullptr;  // like k (overwritten; summed over the query heads of a group)
  int64_t dk_batch_stride = 0, dk_row_stride = 0, dk_head_stride = 0;
  void* dv = nullptr;  // like v
  int64_t dv_batch_stride = 0, dv_row_stride = 0, dv_head_stride = 0;
  // Total rows of q and k over the batch (B * T dense, cu_seqlens[B] varlen): sizes the workspace.
  int64_t total_q = 0, total_k = 0;
  // Backward main kernel: 0 lets launch_flash_bwd choose (wgmma where flash_wgmma_available, else
  // mma.sync), 1 forces mma.sync, 2 wgmma.
  int bwd_kernel = 0;
};

// Whether the tensor-core kernels handle this problem (head_dim 64 or 128, device sm_80+). Other
// shapes go to the simple reference kernel (cuda/kernels/attention.cu).
bool flash_supported(const FlashParams& p);

// out + lse.
void launch_flash_fwd(const FlashParams& p, cudaStream_t stream);

// The Hopper kernels on wgmma (flash_fwd_sm90.cu, flash_bwd_sm90.cu) run when the build has sm_90a
// code (LLOCO_CUDA_ARCHS with 90a) and the current device is compute capability 9.0.
bool flash_wgmma_available();
// Whether a fwd_kernel / bwd_kernel choice (0 automatic, 1 mma.sync, 2 wgmma) runs the wgmma kernel:
// the one rule launch_flash_fwd, launch_flash_bwd and the attention dispatch report share.
bool flash_uses_wgmma(int kernel_choice);
// The wgmma forward. Same contract as launch_flash_fwd, whose checks it relies on (launch_flash_fwd
// routes to it).
void launch_flash_fwd_sm90(const FlashParams& p, cudaStream_t stream);

// flash_supported(p), plus what only the backward needs: 16-byte aligned dout/dq/dk/dv with
// strides in multiples of 8 elements, and enough opt-in shared memory per block on this device
// (hd128 needs 145 KB: sm_80/sm_90, not sm_86/sm_89).
bool flash_bwd_supported(const FlashBwdParams& p);
// f32 scratch the backward needs (dq accumulators, per-row dot(dout, out), ...).
size_t flash_bwd_workspace_bytes(const FlashBwdParams& p);
// dq, dk, dv from dout, q, k, v, o, lse. workspace: flash_bwd_workspace_bytes(p) bytes, any contents.
void launch_flash_bwd(const FlashBwdParams& p, void* workspace, cudaStream_t stream);
// The wgmma backward main loop (flash_bwd_sm90.cu), called by launch_flash_bwd between its prep and
// convert kernels: dq_accum [total_q, heads_q, head_dim] (zeroed), delta [heads_q, total_q].
void launch_flash_bwd_main_sm90(const FlashBwdParams& p, float* dq_accum, const float* delta, cudaStream_t stream);
size_t flash_bwd_sm90_smem_bytes(int head_dim);

// Decode: a few query rows (seqlen_q <= kFlashDecodeMaxQ) against a long KV cache, dense batches
// only (cu_seqlens null). The keys are split into num_splits chunks processed in parallel, then
// merged with their log-sum-exps.
constexpr int kFlashDecodeMaxQ = 16;
bool flash_decode_supported(const FlashParams& p);
// A split count that fills the GPU (num_sms multiprocessors); 1 when the grid is already full.
int flash_decode_num_splits(const FlashParams& p, int num_sms);
size_t flash_decode_workspace_bytes(const FlashParams& p, int num_splits);
void launch_flash_decode(const FlashParams& p, int num_splits, void* workspace, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
