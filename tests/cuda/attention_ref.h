// Reference answers for the attention kernel tests, the way flash-attention's own tests judge a
// kernel: the exact result for the (already rounded) low-precision inputs, computed in f64 on the
// CPU, and the same computation done naively in the inputs' dtype (composed ops on the CPU, every
// op rounding to bf16/f16). A kernel passes when its error against the exact result is at most a
// small multiple of the naive computation's error.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "cuda/kernels/flash.h"

namespace lloco::cuda_test {

struct AttnShape {
  int64_t B, Hq, Hkv, Tq, Tk, D;
  bool causal;
  std::string str() const;
};

struct AttnData {
  Tensor q, k, v;  // CPU, [B, H, T, D] contiguous, in the test dtype
  Tensor dout;     // CPU, [B, Hq, Tq, D], the incoming gradient
};
AttnData random_attention_data(const AttnShape& s, DType dtype, uint64_t seed);

struct AttnOutputs {
  Tensor out, lse;  // [B, Hq, Tq, D], [B, Hq, Tq] (lse undefined for attention_plain)
  Tensor dq, dk, dv;  // undefined unless with_grads
};
// Exact: CPU attention in f64 on the inputs' values. scale <= 0 means 1/sqrt(D).
AttnOutputs attention_exact(const AttnData& d, bool causal, double scale, bool with_grads);
// Naive: composed attention (matmul, softmax, matmul) in the inputs' dtype on the CPU.
AttnOutputs attention_plain(const AttnData& d, bool causal, double scale, bool with_grads);

// The problem-size part of FlashParams: batch, heads, (max) lengths, head dim, default softmax
// scale (1/sqrt(D), and its log2 form), causal flag and element type. Pointers and strides stay
// with the caller.
void set_flash_problem(cuda_kernels::FlashParams& p, int64_t B, int64_t Hq, int64_t Hkv, int64_t Tq, int64_t Tk,
                       int64_t D, bool causal, DType dtype);

// max |got - ref| over all elements, both read as f64 (got may live on the GPU). A NaN in got, or an
// infinity that ref does not have at the same place, gives +inf; equal infinities count as 0.
double max_abs_err(const Tensor& got, const Tensor& ref);

}  // namespace lloco::cuda_test
