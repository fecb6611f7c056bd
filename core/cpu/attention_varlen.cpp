// CPU reference varlen attention: each packed sequence runs through the dense reference kernel
// (core/cpu/attention.cpp, which parallelises over heads and rows) on strided views of its rows, so
// varlen and dense attention agree exactly. Rows outside every sequence get zero gradients.
#include "core/cpu/cpu_common.h"

namespace lloco::cpu_impl {

namespace {

void* advance(void* base, DType dt, int64_t elements) {
  return static_cast<char*>(base) + elements * static_cast<int64_t>(dtype_size(dt));
}

// Rows row0 .. row0 + rows of a packed [N, H, D] view as a dense [1, H, rows, D] view.
TensorRef sequence_view(const TensorRef& packed, int64_t row0, int64_t rows) {
  TensorRef r;
  r.data = advance(packed.data, packed.dtype, row0 * packed.strides[0]);
  r.dtype = packed.dtype;
  r.ndim = 4;
  const int64_t shape[4] = {1, packed.shape[1], rows, packed.shape[2]};
  const int64_t strides[4] = {0, packed.strides[1], packed.strides[0], packed.strides[2]};
  for (int i = 0; i < 4; ++i) {
    r.shape[i] = shape[i];
    r.strides[i] = strides[i];
  }
  return r;
}

// Columns row0 .. row0 + rows of the [Hq, Nq] log-sum-exp as the dense kernel's [1, Hq, rows].
TensorRef lse_view(const TensorRef& lse, int64_t row0, int64_t rows) {
  TensorRef r;
  r.data = advance(lse.data, lse.dtype, row0 * lse.strides[1]);
  r.dtype = lse.dtype;
  r.ndim = 3;
  r.shape[0] = 1;
  r.shape[1] = lse.shape[0];
  r.shape[2] = rows;
  r.strides[0] = 0;
  r.strides[1] = lse.strides[0];
  r.strides[2] = lse.strides[1];
  return r;
}

// Zeroes rows `from` .. N of a packed [N, H, D] view.
void zero_rows_from(const TensorRef& packed, int64_t from) {
  for (int64_t n = from; n < packed.shape[0]; ++n)
    for (int64_t h = 0; h < packed.shape[1]; ++h)
      for (int64_t d = 0; d < packed.shape[2]; ++d)
        store(packed.data, packed.dtype, n * packed.strides[0] + h * packed.strides[1] + d * packed.strides[2], 0.0);
}

struct Span {
  int64_t start, len;
};
Span span(const TensorRef& cu, int64_t b) {
  const int64_t lo = load_index(cu, b * cu.strides[0]), hi = load_index(cu, (b + 1) * cu.strides[0]);
  return {lo, hi - lo};
}

}  // namespace

void attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef cu_q,
                          TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p) {
  const TensorRef no_mask;
  for (int64_t b = 0; b < vp.batch; ++b) {
    const Span sq = span(cu_q, b), sk = span(cu_k, b);
    if (sq.len == 0) continue;
    attention_fwd(sequence_view(out, sq.start, sq.len), lse_view(lse, sq.start, sq.len),
                  sequence_view(q, sq.start, sq.len), sequence_view(k, sk.start, sk.len),
                  sequence_view(v, sk.start, sk.len), no_mask, p);
  }
}

void attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                          TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q, TensorRef cu_k,
                          const VarlenParams& vp, const AttentionParams& p) {
  const TensorRef no_mask;
  for (int64_t b = 0; b < vp.batch; ++b) {
    const Span sq = span(cu_q, b), sk = span(cu_k, b);
    const TensorRef q_b = sequence_view(q, sq.start, sq.len), k_b = sequence_view(k, sk.start, sk.len);
    const TensorRef v_b = sequence_view(v, sk.start, sk.len);
    // The dense kernel overwrites dq/dk/dv of the sequence, so an empty side still zeroes the other.
    attention_bwd(sequence_view(dq, sq.start, sq.len), sequence_view(dk, sk.start, sk.len),
                  sequence_view(dv, sk.start, sk.len), sequence_view(dout, sq.start, sq.len), q_b, k_b, v_b, no_mask,
                  sequence_view(out, sq.start, sq.len), lse_view(lse, sq.start, sq.len), p);
  }
  const int64_t q_covered = load_index(cu_q, vp.batch * cu_q.strides[0]);
  const int64_t k_covered = load_index(cu_k, vp.batch * cu_k.strides[0]);
  zero_rows_from(dq, q_covered);
  zero_rows_from(dk, k_covered);
  zero_rows_from(dv, k_covered);
}

}  // namespace lloco::cpu_impl
