// Helpers shared by the CPU reference kernels: dtype-generic element load/store (computing in
// double, so one rounding per output) and a parallel strided iterator over same-shaped views.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/backend.h"
#include "core/dtype.h"

namespace lloco::cpu_impl {

inline double load(const void* base, DType dt, int64_t off) {
  switch (dt) {
    case DType::F32: return static_cast<const float*>(base)[off];
    case DType::F64: return static_cast<const double*>(base)[off];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(base)[off]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(base)[off]);
    case DType::I32: return static_cast<const int32_t*>(base)[off];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(base)[off]);
  }
  return 0.0;
}

inline void store(void* base, DType dt, int64_t off, double v) {
  switch (dt) {
    case DType::F32: static_cast<float*>(base)[off] = static_cast<float>(v); break;
    case DType::F64: static_cast<double*>(base)[off] = v; break;
    case DType::F16: static_cast<uint16_t*>(base)[off] = float_to_half(static_cast<float>(v)); break;
    case DType::BF16: static_cast<uint16_t*>(base)[off] = float_to_bf16(static_cast<float>(v)); break;
    case DType::I32: static_cast<int32_t*>(base)[off] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(base)[off] = static_cast<int64_t>(v); break;
  }
}

inline int64_t load_index(const TensorRef& idx, int64_t off) {
  return idx.dtype == DType::I64 ? static_cast<const int64_t*>(idx.data)[off]
                                 : static_cast<int64_t>(static_cast<const int32_t*>(idx.data)[off]);
}

inline bool is_contiguous(const TensorRef& r) {
  int64_t expected = 1;
  for (int i = r.ndim - 1; i >= 0; --i) {
    if (r.shape[i] == 1) continue;
    if (r.strides[i] != expected) return false;
    expected *= r.shape[i];
  }
  return true;
}

// Elements per parallel chunk: below this, fork/join costs more than the work saves.
constexpr int64_t kGrain = 1 << 16;

// Calls f(i, offsets) for every element i (row-major over `shape`) with the element offset of each
// of the N refs, which all share `shape` (strides may differ, including 0 for broadcast).
template <size_t N, typename F>
void for_each_element(const TensorRef& shape, const std::array<const TensorRef*, N>& refs, F&& f) {
  const int64_t n = shape.numel();
  const int nd = shape.ndim;
  if (n == 0) return;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n / kGrain, 64 * omp_get_max_threads()));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    int64_t idx[8] = {};
    std::array<int64_t, N> off{};
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % shape.shape[d];
      rem /= shape.shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx[d] * refs[k]->strides[d];
    }
    for (int64_t i = begin; i < end; ++i) {
      f(i, off);
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < shape.shape[d]) {
          for (size_t k = 0; k < N; ++k) off[k] += refs[k]->strides[d];
          break;
        }
        for (size_t k = 0; k < N; ++k) off[k] -= (shape.shape[d] - 1) * refs[k]->strides[d];
        idx[d] = 0;
      }
    }
  }
}

// Offset of the element at linear index i (row-major over ref's shape) in ref's storage.
inline int64_t offset_of(const TensorRef& ref, int64_t i) {
  int64_t off = 0;
  for (int d = ref.ndim - 1; d >= 0; --d) {
    off += (i % ref.shape[d]) * ref.strides[d];
    i /= ref.shape[d];
  }
  return off;
}

// ---- kernel entry points (one file each) ----
void elementwise_unary(UnaryOp op, TensorRef out, TensorRef in, double param);
void elementwise_binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b);
void reduce(ReduceOp op, TensorRef out, TensorRef in);
void softmax(TensorRef out, TensorRef in, int dim, bool log);
// Products with an f16 / bf16 right operand and more than kHalfSkinnyMaxRows rows (prefill, training)
// widen it to f32 a panel of output columns at a time, at most `half_panel_bytes` of f32, and multiply
// through Eigen's GEMM (core/cpu/matmul.cpp). Tests pass a small budget to cross panel edges.
constexpr int64_t kHalfSkinnyMaxRows = 96;
constexpr int64_t kHalfPanelBytes = int64_t{24} << 20;
void matmul(TensorRef out, TensorRef a, TensorRef b, bool accumulate = false,
            int64_t half_panel_bytes = kHalfPanelBytes);  // out (+)= a @ b
void cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets, int64_t ignore_index);
void cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse, TensorRef targets,
                       int64_t ignore_index);
void rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef weight, double eps);
void rms_norm_bwd(TensorRef dx, TensorRef dweight, TensorRef dy, TensorRef x, TensorRef weight, TensorRef rstd);
void swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up);
void swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up);
void rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style, bool inverse);
void attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                   const AttentionParams& p);
void attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                   TensorRef v, TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p);
// core/cpu/attention_varlen.cpp
void attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef cu_q,
                          TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p);
void attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                          TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q, TensorRef cu_k,
                          const VarlenParams& vp, const AttentionParams& p);
// core/cpu/lora.cpp
void lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter,
                 const LoraMatmulParams& p);
void lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter,
                      double scale);

}  // namespace lloco::cpu_impl
