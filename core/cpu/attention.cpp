// CPU reference attention (forward and backward), f64 accumulation. Grouped-query heads: query
// head h reads key/value head h / (Hq / Hkv). Causal masking is bottom-right aligned: query i may
// see key j when j <= i + (Tk - Tq), which covers KV-cache decode and a visible prefix.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_common.h"
#include "core/cpu/half_convert.h"

namespace lloco::cpu_impl {

namespace {

struct Geometry {
  int64_t B, Hq, Hkv, Tq, Tk, D, group, causal_offset;
};

Geometry geometry(const TensorRef& q, const TensorRef& k) {
  Geometry g{q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], 0, 0};
  g.group = g.Hq / g.Hkv;
  g.causal_offset = g.Tk - g.Tq;
  return g;
}

// Keys query row i may see: all of them, or the first i + (Tk - Tq) + 1 when causal.
int64_t visible_keys(const Geometry& g, bool causal, int64_t i) {
  return causal ? std::clamp<int64_t>(i + g.causal_offset + 1, 0, g.Tk) : g.Tk;
}

inline double at(const TensorRef& r, int64_t b, int64_t h, int64_t t, int64_t d) {
  return load(r.data, r.dtype, b * r.strides[0] + h * r.strides[1] + t * r.strides[2] + d * r.strides[3]);
}

// Row (b, h, i) of a [B, H, T, D] operand into dst (f64).
void load_row(std::vector<double>& dst, const TensorRef& r, int64_t b, int64_t h, int64_t i, int64_t D) {
  for (int64_t d = 0; d < D; ++d) dst[d] = at(r, b, h, i, d);
}

// Rows [0, T) x [0, D) of head h of one [B, H, T, D] operand as a dense array of KV (row stride ld),
// built once per (batch, kv head). KV is float for f32/f16/bf16 operands (exact, and half the bytes
// of f64: in decode the whole cache passes through here every step) and double for f64 ones. An f32
// operand with unit stride along D is read in place; half rows are widened a row at a time.
template <typename KV>
struct HeadRows {
  std::vector<KV> buffer;
  const KV* data = nullptr;
  int64_t ld = 0;

  void gather(const TensorRef& r, int64_t b, int64_t h, int64_t T, int64_t D) {
    const int64_t first = b * r.strides[0] + h * r.strides[1];
    const bool unit_d = r.strides[3] == 1;
    if constexpr (std::is_same_v<KV, float>) {
      if (unit_d && r.dtype == DType::F32) {
        data = static_cast<const float*>(r.data) + first;
        ld = r.strides[2];
        return;
      }
    }
    buffer.resize(static_cast<size_t>(T * D));
    data = buffer.data();
    ld = D;
    if constexpr (std::is_same_v<KV, float>) {
      if (unit_d && (r.dtype == DType::BF16 || r.dtype == DType::F16)) {
        const auto* src = static_cast<const uint16_t*>(r.data) + first;
        for (int64_t t = 0; t < T; ++t) widen_half(src + t * r.strides[2], buffer.data() + t * D, D, r.dtype);
        return;
      }
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) buffer[t * D + d] = static_cast<KV>(at(r, b, h, t, d));
  }
  const KV* row(int64_t t) const { return data + t * ld; }
};

// Dot product in f64 with independent partial sums (vectorizable; the order differs from a
// sequential sum only by f64 rounding, far below any tolerance the reference is used with).
template <typename KV>
inline double dot(const double* a, const KV* b, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t d = 0; d < n; ++d) sum += a[d] * static_cast<double>(b[d]);
  return sum;
}

// One task per (batch, kv head): its keys and values are gathered once (HeadRows), then every query
// row of the heads that share them is scored, softmaxed and summed against those rows in f64.
template <typename KV>
void attention_fwd_as(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                      const AttentionParams& p) {
  const Geometry g = geometry(q, k);
  const int64_t D = g.D;
#pragma omp parallel if (q.numel() * k.shape[2] > kGrain)
  {
    std::vector<double> s(static_cast<size_t>(g.Tk)), acc(static_cast<size_t>(D)), qrow(static_cast<size_t>(D));
    HeadRows<KV> keys, values;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t hk = 0; hk < g.Hkv; ++hk) {
        keys.gather(k, b, hk, g.Tk, D);
        values.gather(v, b, hk, g.Tk, D);
        for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h)
          for (int64_t i = 0; i < g.Tq; ++i) {
            load_row(qrow, q, b, h, i, D);
            const int64_t visible = visible_keys(g, p.causal, i);
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j < visible; ++j) {
              s[j] = dot(qrow.data(), keys.row(j), D) * p.scale;
              if (mask.data) s[j] += at(mask, b, h, i, j);
              mx = std::max(mx, s[j]);
            }
            std::fill(acc.begin(), acc.end(), 0.0);
            double l = -std::numeric_limits<double>::infinity();
            if (mx > -std::numeric_limits<double>::infinity()) {  // fully masked rows output zeros
              double sum = 0.0;
              for (int64_t j = 0; j < visible; ++j) {
                const double w = std::exp(s[j] - mx);
                sum += w;
                const KV* vrow = values.row(j);
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) acc[d] += w * static_cast<double>(vrow[d]);
              }
              for (double& a : acc) a /= sum;
              l = mx + std::log(sum);
            }
            store(lse.data, lse.dtype, b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2], l);
            for (int64_t d = 0; d < D; ++d)
              store(out.data, out.dtype,
                    b * out.strides[0] + h * out.strides[1] + i * out.strides[2] + d * out.strides[3], acc[d]);
          }
      }
  }
}

}  // namespace

void attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                   const AttentionParams& p) {
  if (k.dtype == DType::F64 || v.dtype == DType::F64)
    attention_fwd_as<double>(out, lse, q, k, v, mask, p);
  else
    attention_fwd_as<float>(out, lse, q, k, v, mask, p);
}

namespace {

// One task per (batch, kv head): it owns dk/dv of that head, so no races between threads. Keys and
// values are gathered once (HeadRows); each query row recomputes its probabilities from the saved
// log-sum-exp and adds its share to dq (its own row), dk and dv (f64 accumulators of the head).
template <typename KV>
void attention_bwd_as(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                      TensorRef v, TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p) {
  const Geometry g = geometry(q, k);
  const int64_t D = g.D;
#pragma omp parallel if (q.numel() * k.shape[2] > kGrain)
  {
    std::vector<double> qrow(static_cast<size_t>(D)), dorow(static_cast<size_t>(D)), orow(static_cast<size_t>(D));
    std::vector<double> dqrow(static_cast<size_t>(D)), dkacc, dvacc;
    HeadRows<KV> keys, values;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t hk = 0; hk < g.Hkv; ++hk) {
        keys.gather(k, b, hk, g.Tk, D);
        values.gather(v, b, hk, g.Tk, D);
        dkacc.assign(static_cast<size_t>(g.Tk * D), 0.0);
        dvacc.assign(static_cast<size_t>(g.Tk * D), 0.0);
        for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h)
          for (int64_t i = 0; i < g.Tq; ++i) {
            const double l = load(lse.data, lse.dtype, b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2]);
            std::fill(dqrow.begin(), dqrow.end(), 0.0);
            if (l > -std::numeric_limits<double>::infinity()) {  // a row with no visible key has zero grads
              load_row(qrow, q, b, h, i, D);
              load_row(dorow, dout, b, h, i, D);
              load_row(orow, out, b, h, i, D);
              const double delta = dot(dorow.data(), orow.data(), D);  // sum_d dO * O
              const int64_t visible = visible_keys(g, p.causal, i);
              for (int64_t j = 0; j < visible; ++j) {
                double score = dot(qrow.data(), keys.row(j), D) * p.scale;
                if (mask.data) score += at(mask, b, h, i, j);
                const double pij = std::exp(score - l);
                if (pij == 0.0) continue;
                const double ds = pij * (dot(dorow.data(), values.row(j), D) - delta) * p.scale;
                const KV* krow = keys.row(j);
                double* dkj = dkacc.data() + j * D;
                double* dvj = dvacc.data() + j * D;
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) {
                  dvj[d] += pij * dorow[d];
                  dqrow[d] += ds * static_cast<double>(krow[d]);
                  dkj[d] += ds * qrow[d];
                }
              }
            }
            for (int64_t d = 0; d < D; ++d)
              store(dq.data, dq.dtype, b * dq.strides[0] + h * dq.strides[1] + i * dq.strides[2] + d * dq.strides[3],
                    dqrow[d]);
          }
        for (int64_t j = 0; j < g.Tk; ++j)
          for (int64_t d = 0; d < D; ++d) {
            store(dk.data, dk.dtype, b * dk.strides[0] + hk * dk.strides[1] + j * dk.strides[2] + d * dk.strides[3],
                  dkacc[j * D + d]);
            store(dv.data, dv.dtype, b * dv.strides[0] + hk * dv.strides[1] + j * dv.strides[2] + d * dv.strides[3],
                  dvacc[j * D + d]);
          }
      }
  }
}

}  // namespace

void attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                   TensorRef v, TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p) {
  if (k.dtype == DType::F64 || v.dtype == DType::F64)
    attention_bwd_as<double>(dq, dk, dv, dout, q, k, v, mask, out, lse, p);
  else
    attention_bwd_as<float>(dq, dk, dv, dout, q, k, v, mask, out, lse, p);
}

}  // namespace lloco::cpu_impl
