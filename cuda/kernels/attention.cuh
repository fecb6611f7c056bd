// Reference-quality attention on the GPU (the fast flash kernels come later): grouped-query heads
// (query head h reads kv head h / (Hq / Hkv)), bottom-right causal masking (query i sees keys
// j <= i + Tk - Tq), an optional additive mask broadcast through strides, and lse output.
// Fully masked rows give out = 0 and lse = -inf, as in the CPU reference.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"

namespace lloco::cuda_kernels {

struct AttnArgs {
  int64_t B, Hq, Hkv, Tq, Tk, D;
  int64_t q_s[4], k_s[4], v_s[4];  // [B, H, T, D] strides of q, k, v
  int64_t o_s[4];                  // out (fwd) / dout (bwd)
  int64_t y_s[4];                  // bwd only: the forward output
  int64_t lse_s[3];                // [B, Hq, Tq]
  const void* mask = nullptr;      // [B|1, Hq|1, Tq, Tk], stride 0 on broadcast dims
  DType mask_dt = DType::F32;
  int64_t mask_s[4] = {};
  double scale = 1.0;
  bool causal = false;
};

// out [B, Hq, Tq, D], lse [B, Hq, Tq] (any float dtype) from q/k/v of dtype dt
void launch_attention_fwd(void* out, void* lse, DType lse_dt, const void* q, const void* k, const void* v, DType dt,
                          const AttnArgs& a, cudaStream_t stream);

// Bytes of scratch the backward needs (the per-row dot(dout, out) terms, f64 worst case).
size_t attention_bwd_workspace_bytes(const AttnArgs& a);
struct AttnGrads {
  void* dq;
  int64_t dq_s[4];
  void* dk;
  int64_t dk_s[4];
  void* dv;
  int64_t dv_s[4];
};
// dq/dk/dv overwritten; dk/dv sum over the query heads of their group. dout uses a.o_s, out a.y_s.
void launch_attention_bwd(const AttnGrads& g, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const void* lse, DType lse_dt, DType dt, const AttnArgs& a,
                          void* workspace, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
