// Composed fallbacks of the fused ops, built only from primitives: the test oracle and the
// backward used when a backend lacks a fused backward kernel. Written for clarity, not speed.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/ops_common.h"

namespace lloco::composed {

// Statistics in f32 (f64 for f64 inputs), as the fused kernels keep them.

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  const DType acc = detail::stats_dtype(x.dtype());
  Tensor xf = x.to(acc);
  Tensor inv = rsqrt(add(mean(square(xf), {-1}, true), eps));
  return mul(mul(xf, inv), weight.to(acc)).to(x.dtype());
}

Tensor swiglu(const Tensor& gate, const Tensor& up) { return mul(silu(gate), up); }

Tensor rope(const Tensor& x, const RopeTables& tables, RopeStyle style) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), half = D / 2;
  Tensor c = tables.cos.to(x.dtype()).unsqueeze(1);  // [B|1, 1, T, D/2]
  Tensor s = tables.sin.to(x.dtype()).unsqueeze(1);
  if (style == RopeStyle::HalfRotate) {
    Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
    return concat({sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))}, -1);
  }
  Tensor pairs = x.reshape({B, H, T, half, 2});
  Tensor x1 = pairs.narrow(-1, 0, 1).squeeze(-1), x2 = pairs.narrow(-1, 1, 1).squeeze(-1);
  return stack({sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))}, -1).reshape({B, H, T, D});
}

Tensor attention(const Tensor& q, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& opts) {
  Tensor k = k_in, v = v_in;
  if (opts.prefix_k.defined()) {
    k = concat({opts.prefix_k, k}, 2);
    v = concat({opts.prefix_v, v}, 2);
  }
  const int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2), group = Hq / Hkv;
  if (group > 1) {  // repeat each key/value head for its group of query heads
    k = k.unsqueeze(2).expand({B, Hkv, group, Tk, D}).reshape({B, Hq, Tk, D});
    v = v.unsqueeze(2).expand({B, Hkv, group, Tk, D}).reshape({B, Hq, Tk, D});
  }
  const double scale = opts.scale > 0 ? opts.scale : 1.0 / std::sqrt(static_cast<double>(D));
  Tensor scores = mul(matmul(q, k.transpose(-1, -2)), scale);
  if (opts.mask.defined()) scores = add(scores, opts.mask);
  if (opts.causal) {
    std::vector<float> m(static_cast<size_t>(Tq * Tk), 0.0f);
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = std::max<int64_t>(0, i + (Tk - Tq) + 1); j < Tk; ++j)
        m[i * Tk + j] = -std::numeric_limits<float>::infinity();
    scores = add(scores, from_vector<float>(m, {Tq, Tk}, q.dtype(), q.device()));
    if (Tq > Tk) {
      // The first Tq - Tk queries see no key: softmax over all -inf would be NaN, and the fused
      // kernels define such rows as 0 (with zero gradients), so do the same here.
      std::vector<float> sees(static_cast<size_t>(Tq));
      for (int64_t i = 0; i < Tq; ++i) sees[i] = i + (Tk - Tq) >= 0 ? 1.0f : 0.0f;
      const Tensor visible = from_vector<float>(sees, {Tq, 1}, q.dtype(), q.device());
      scores = where(visible, scores, zeros({}, q.dtype(), q.device()));
      return mul(matmul(softmax(scores, -1), v), visible);
    }
  }
  return matmul(softmax(scores, -1), v);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const DType acc = detail::stats_dtype(logits.dtype());
  Tensor logp = log_softmax(logits.to(acc), -1);
  Tensor tf = targets.to(acc);
  Tensor ignore = full({}, static_cast<double>(ignore_index), acc, logits.device());
  Tensor valid = compare(BinaryOp::Ne, tf, ignore);
  Tensor safe = where(valid, tf, zeros({}, acc, logits.device())).to(targets.dtype());
  Tensor picked = gather(logp, 1, safe.unsqueeze(1)).squeeze(1);
  return div(neg(sum(mul(picked, valid))), sum(valid));
}

}  // namespace lloco::composed

namespace lloco {

// No fused kernel: BERT-sized models spend their time in the GEMMs, and composing keeps autograd free.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  detail::check_defined(x, op, "x");
  detail::check_defined(weight, op, "weight");
  detail::check_float(x, op);
  detail::check_same_device(x, weight, op);
  LLOCO_CHECK(weight.dim() == 1, op, "weight must have 1 dimension, got ", weight.str());
  LLOCO_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(0), op, "last dim of x ", x.str(), " vs weight size ",
              weight.size(0));
  LLOCO_CHECK(eps >= 0, op, "eps must be >= 0, got ", eps);
  if (bias.defined()) {
    detail::check_same_device(x, bias, op);
    LLOCO_CHECK(bias.shape() == weight.shape(), op, "bias ", bias.str(), " vs weight ", weight.str());
  }
  const DType acc = detail::stats_dtype(x.dtype());
  const Tensor xf = x.to(acc);
  const Tensor centered = sub(xf, mean(xf, {-1}, true));
  const Tensor inv_std = rsqrt(add(mean(square(centered), {-1}, true), eps));  // biased variance, as torch
  Tensor y = mul(mul(centered, inv_std), weight.to(acc));
  if (bias.defined()) y = add(y, bias.to(acc));
  return y.to(x.dtype());
}

}  // namespace lloco
