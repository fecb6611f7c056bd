// Which kernel family runs an attention call on CUDA (chosen per call in cuda/backend_attention.cpp):
//   "decode"  split-KV decode (kernels/flash_decode.cu): forward only, no mask, bf16/f16, Tq <= 16, and
//             either Tk >= 512 (at least two 256-key chunks, so splitting the keys pays) or a head dim
//             the tensor-core kernels lack (any multiple of 8 up to 256)
//   "flash"   tensor-core flash kernels (kernels/flash_fwd.cu, flash_bwd.cu): no mask, bf16/f16,
//             flash_supported() (head dim 64/128, aligned strides, sm_80+)
//   "simple"  reference kernels (kernels/attention.cu): everything else (f32/f64, masks, other shapes)
// LLOCO_ATTENTION=simple|flash|auto (read once; default auto) forces a family for debugging and
// benchmarks: "simple" always takes the reference kernels, "flash" takes decode or flash and throws,
// naming the reason, on a problem neither supports.
// LLOCO_FLASH_KERNEL=mma|wgmma|auto (read once; default auto) picks the tensor-core kernels of the
// "flash" path: mma.sync (sm_80+) or wgmma (sm_90a builds on compute capability 9.0; forcing it
// elsewhere makes the call throw, naming the requirement); auto takes wgmma where it runs.
#pragma once
#include "core/backend.h"

namespace lloco {

// For attention_fwd/bwd with q [B, Hq, Tq, D], k [B, Hkv, Tk, D] and an optional mask (data null
// when absent), assuming v is laid out like k and out like q (as the attention op allocates them).
// Throws exactly when the call would (LLOCO_ATTENTION=flash on an unsupported problem).
const char* attention_path(const TensorRef& q, const TensorRef& k, const TensorRef& mask, bool backward);
// The same for attention_varlen with packed q [Nq, Hq, D], k [Nk, Hkv, D]: "flash" or "simple".
const char* attention_varlen_path(const TensorRef& q, const TensorRef& k, bool backward);

// The tensor-core kernels the "flash" path launches now (LLOCO_FLASH_KERNEL and the device):
// "wgmma" or "mma.sync" (forward and backward choose alike).
const char* flash_kernel_name();

// Test hook: re-read LLOCO_ATTENTION and LLOCO_FLASH_KERNEL (after setenv), instead of keeping the
// first values read.
void reload_attention_mode();

}  // namespace lloco
