// Public ops. Each validates its inputs (errors name the op and both values), allocates the output,
// dispatches to the device's Backend and records autograd. Binary ops broadcast numpy-style.
// Fused ops (rms_norm, swiglu, rope, attention, cross_entropy) have a composed fallback built from
// primitives (namespace composed): the CPU oracle in tests and the default backward.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace lloco {

// ---- elementwise ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor square(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact: 0.5 x (1 + erf(x / sqrt(2))), HF "gelu"
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sin(const Tensor& x);  // no gradient (tables only)
Tensor cos(const Tensor& x);  // no gradient (tables only)
// comparisons return 0/1 in a's dtype, no gradient
Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor cast(const Tensor& x, DType dtype);  // differentiable dtype conversion

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }

// ---- reductions (dims may be negative; empty dims = all) ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Sums x down to `shape` (the inverse of broadcasting); used by binary-op backward.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

// ---- linear algebra ----
// a [..., M, K] @ b [..., K, N] with broadcast batch dims; 1-D operands are promoted like numpy.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] @ weight[out, in]^T (+ bias [out])
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- indexing / shape ----
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index 1-D i32/i64
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);        // index same rank as x
Tensor embedding(const Tensor& weight, const Tensor& ids);               // weight [V, D], ids [...] -> [..., D]
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Inverted dropout with a counter-based mask: identical on every device for the same seed/offset.
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset = 0, bool training = true);
// Differentiable copy (contiguous output).
Tensor copy(const Tensor& x);

// ---- fused ops ----
// x [..., D] * rsqrt(mean(x^2) + eps) * weight [D]; statistics in f32.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
// torch layer_norm over the last dim of x [..., D]: weight [D], bias [D] or undefined; composed, math in f32.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
// silu(gate) * up (LLaMA's MLP activation), gate/up of one shape; math in f32 (f64 for f64).
Tensor swiglu(const Tensor& gate, const Tensor& up);
// Rotary tables for positions [T] or [B, T] (i32/i64): cos/sin [B|1, T, D/2] f32.
// Linear RoPE scaling divides positions by `scaling` (HF rope_scaling {type: linear}).
struct RopeTables { Tensor cos, sin; };
RopeTables rope_tables(const Tensor& positions, int64_t head_dim, double theta, double scaling = 1.0);
// x [B, H, T, D]
Tensor rope(const Tensor& x, const RopeTables& tables, RopeStyle style);
// q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D] (Hq % Hkv == 0). prefix_k/prefix_v [B, Hkv, P, D] are extra
// key/value positions placed before k/v and visible to every query. mask: additive, broadcastable
// to [B, Hq, Tq, P + Tk]. Causal is bottom-right aligned. scale <= 0 means 1/sqrt(D).
struct AttentionOptions {
  bool causal = false;
  double scale = 0.0;
  Tensor mask;
  Tensor prefix_k, prefix_v;
};
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opts = {});
// Packed variable-length attention (flash-attention's varlen API): q [Nq, Hq, D], k/v [Nk, Hkv, D]
// hold B sequences back to back; sequence b owns q rows cu_q[b] .. cu_q[b+1] and k/v rows
// cu_k[b] .. cu_k[b+1] (host offsets, [B + 1], from 0, non-decreasing, ending at or below Nq / Nk).
// Causal masking is bottom-right aligned per sequence. Returns [Nq, Hq, D]; rows of q outside
// every sequence are 0. scale <= 0 means 1/sqrt(D).
Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int64_t>& cu_q,
                        const std::vector<int64_t>& cu_k, bool causal, double scale = 0.0);

// Which LoRA adapter each row of a batch uses (punica's SGMV by segment, BGMV by row). Built once
// per batch: the host copies validate and drive the composed path, the i32 device copies feed the
// kernels. An adapter id < 0 means "no adapter" for those rows (their delta is 0).
struct LoraSegments {
  std::vector<int64_t> indptr;   // [S + 1] row offsets from 0; empty in per-row mode
  std::vector<int64_t> adapter;  // [S] adapter per segment, or [N] per row
  Tensor indptr_dev, adapter_dev;  // i32 on the compute device (indptr_dev undefined per row)
  // Segments: rows indptr[s] .. indptr[s+1] use adapter[s].
  static LoraSegments by_segment(std::vector<int64_t> indptr, std::vector<int64_t> adapter, Device device);
  // Row r uses adapter[r].
  static LoraSegments by_row(std::vector<int64_t> adapter, Device device);
  // Every one of `rows` rows uses `adapter` (the single-adapter case).
  static LoraSegments single(int64_t rows, int64_t adapter, Device device);
  bool per_row() const { return indptr.empty(); }
  int64_t rows() const;
};
// LoRA delta for a batch of rows: x [N, I], a [L, r, I], b [L, O, r] (PEFT's lora_A / lora_B
// weights stacked over L adapters) -> [N, O] with row n = scale * b[l] (a[l] x[n]), l its adapter.
// Differentiable in x, a and b.
Tensor lora_delta(const Tensor& x, const Tensor& a, const Tensor& b, double scale, const LoraSegments& seg);
// linear(x, weight) + lora_delta(x, a, b, scale, seg) for x [..., I] (rows = all leading dims), computed
// in one output buffer (the expand accumulates into the GEMM result). Differentiable in all four.
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& a, const Tensor& b, double scale,
                   const LoraSegments& seg);

// logits [N, V], targets [N] i32/i64 -> mean loss over non-ignored targets (0-d, f32).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

namespace composed {
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor rope(const Tensor& x, const RopeTables& tables, RopeStyle style);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opts = {});
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int64_t>& cu_q,
                        const std::vector<int64_t>& cu_k, bool causal, double scale = 0.0);
Tensor lora_delta(const Tensor& x, const Tensor& a, const Tensor& b, double scale, const LoraSegments& seg);
}  // namespace composed

// Kernel view of a tensor (pointer to its first element, shape, strides).
TensorRef to_ref(const Tensor& t);

// ---- diagnostics ----
// max |a - b| and max |b| (both cast to f64 on the host)
struct DiffStats { double max_abs = 0, max_ref = 0, nmse = 0; };
DiffStats compare_tensors(const Tensor& a, const Tensor& ref);

}  // namespace lloco
