// Fused ops: one kernel forward and (when the backend has it) one kernel backward. Without a fused
// backward kernel, backward recomputes the composed fallback under autograd (the default rule).
#include <cmath>

#include "core/ops_common.h"

namespace lloco {

using namespace detail;

// Saved statistics (rstd, log-sum-exp) are f32, or f64 for f64 inputs so gradient checks stay exact.

// Backward through the composed fallback: recompute it on detached leaves, then backprop.
static std::vector<Tensor> fallback_backward(const std::function<Tensor(const std::vector<Tensor>&)>& fallback,
                                             const std::vector<Tensor>& saved, const Tensor& g) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : saved) {
    Tensor leaf = t.defined() ? t.detach() : t;
    if (leaf.defined() && dtype_is_float(leaf.dtype())) leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }
  Tensor out;
  {
    EnableGradGuard enable;
    out = fallback(leaves);
  }
  return autograd_grad(out, g, leaves);
}

// ---- rms_norm -----------------------------------------------------------------------------------

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_defined(x, "rms_norm", "x");
  check_defined(weight, "rms_norm", "weight");
  check_float(x, "rms_norm");
  check_same_device(x, weight, "rms_norm");
  check_same_dtype(x, weight, "rms_norm");
  LLOCO_CHECK(weight.dim() == 1, "rms_norm", "weight must have 1 dimension, got ", weight.str());
  LLOCO_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(0), "rms_norm", "last dim of x ", x.str(),
              " vs weight size ", weight.size(0));
  const int64_t D = weight.size(0);
  Tensor x2 = x.detach().contiguous().reshape({-1, D});
  Tensor out = empty(x2.shape(), x.dtype(), x.device());
  Tensor rstd = empty({x2.size(0)}, stats_dtype(x.dtype()), x.device());
  Tensor w = weight.detach().contiguous();
  if (out.numel() > 0) backend_of(x).rms_norm_fwd(to_ref(out), to_ref(rstd), to_ref(x2), to_ref(w), eps, stream_of(x));
  out = out.view(x.shape());
  Shape shape = x.shape();
  return record(out, "rms_norm", {x, weight}, [x2, w, rstd, eps, shape](const Tensor& g) {
    Backend& be = backend_of(x2);
    if (!be.has_kernel("rms_norm_bwd"))
      return fallback_backward([eps, shape](const std::vector<Tensor>& in) { return composed::rms_norm(in[0], in[1], eps); },
                               {x2.view(shape), w}, g);
    Tensor dx = empty(x2.shape(), x2.dtype(), x2.device());
    Tensor dw = empty(w.shape(), w.dtype(), w.device());
    if (dx.numel() > 0)
      be.rms_norm_bwd(to_ref(dx), to_ref(dw), to_ref(g.contiguous().reshape(x2.shape())), to_ref(x2), to_ref(w),
                      to_ref(rstd), stream_of(x2));
    else
      fill_(dw, 0.0);
    return std::vector<Tensor>{dx.view(shape), dw};
  });
}

// ---- rope ---------------------------------------------------------------------------------------

RopeTables rope_tables(const Tensor& positions, int64_t head_dim, double theta, double scaling) {
  check_index(positions, "rope_tables", "positions");
  LLOCO_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope_tables", "head_dim must be even, got ", head_dim);
  LLOCO_CHECK(scaling > 0, "rope_tables", "scaling must be positive, got ", scaling);
  LLOCO_CHECK(positions.dim() == 1 || positions.dim() == 2, "rope_tables", "positions must be [T] or [B, T], got ",
              positions.str());
  Tensor pos = positions.dim() == 1 ? positions.unsqueeze(0) : positions;
  const int64_t B = pos.size(0), T = pos.size(1), half = head_dim / 2;
  std::vector<int64_t> p = pos.to_vector<int64_t>();
  std::vector<float> c(static_cast<size_t>(B * T * half)), s(c.size());
  // f32 arithmetic in the order HF LlamaRotaryEmbedding uses, so tables match it bit for bit.
  for (int64_t i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / static_cast<float>(head_dim));
    for (int64_t bt = 0; bt < B * T; ++bt) {
      const float angle = (static_cast<float>(p[bt]) / static_cast<float>(scaling)) * inv_freq;
      c[bt * half + i] = std::cos(angle);
      s[bt * half + i] = std::sin(angle);
    }
  }
  Device dev = positions.device();
  return RopeTables{from_vector<float>(c, {B, T, half}, DType::F32, dev), from_vector<float>(s, {B, T, half}, DType::F32, dev)};
}

static void check_rope(const Tensor& x, const RopeTables& t) {
  check_defined(x, "rope", "x");
  check_float(x, "rope");
  LLOCO_CHECK(x.dim() == 4, "rope", "x must be [B, H, T, D], got ", x.str());
  LLOCO_CHECK(x.size(3) % 2 == 0, "rope", "head dim must be even, got ", x.size(3));
  LLOCO_CHECK(t.cos.defined() && t.sin.defined() && t.cos.shape() == t.sin.shape() && t.cos.dim() == 3, "rope",
              "tables must be two [B|1, T, D/2] tensors, got ", t.cos.str(), " and ", t.sin.str());
  LLOCO_CHECK((t.cos.size(0) == 1 || t.cos.size(0) == x.size(0)) && t.cos.size(1) == x.size(2) &&
                  t.cos.size(2) == x.size(3) / 2,
              "rope", "tables ", t.cos.str(), " do not fit x ", x.str());
  check_same_device(x, t.cos, "rope");
}

static Tensor rope_raw(const Tensor& x, const RopeTables& t, RopeStyle style, bool inverse) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0)
    backend_of(x).rope(to_ref(out), to_ref(x.detach()), to_ref(t.cos.to(DType::F32)), to_ref(t.sin.to(DType::F32)),
                       style, inverse, stream_of(x));
  return out;
}

Tensor rope(const Tensor& x, const RopeTables& tables, RopeStyle style) {
  check_rope(x, tables);
  RopeTables t{tables.cos.detach(), tables.sin.detach()};
  // A rotation's transpose is the rotation by the opposite angle.
  return record(rope_raw(x, t, style, false), "rope", {x},
                [t, style](const Tensor& g) { return std::vector<Tensor>{rope_raw(g, t, style, true)}; });
}

// ---- attention ----------------------------------------------------------------------------------

namespace {
struct AttentionInputs {
  Tensor q, k, v, mask;  // k/v include the prefix; mask expanded to [B, Hq, Tq, Tk]
  int64_t prefix = 0;
  AttentionParams params;
};

AttentionInputs prepare_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const char* op = "attention";
  for (const Tensor* t : {&q, &k, &v}) {
    check_defined(*t, op, "q/k/v");
    LLOCO_CHECK(t->dim() == 4, op, "q, k, v must be [B, H, T, D], got ", t->str());
    check_same_dtype(q, *t, op);
    check_same_device(q, *t, op);
  }
  check_float(q, op);
  LLOCO_CHECK(k.shape() == v.shape(), op, "k ", k.str(), " and v ", v.str(), " differ");
  LLOCO_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), op, "q ", q.str(), " and k ", k.str(),
              " differ in batch or head dim");
  LLOCO_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, op, "query heads ", q.size(1),
              " not divisible by key/value heads ", k.size(1));
  AttentionInputs in;
  in.q = q;
  in.k = k;
  in.v = v;
  if (o.prefix_k.defined() || o.prefix_v.defined()) {
    LLOCO_CHECK(o.prefix_k.defined() && o.prefix_v.defined() && o.prefix_k.shape() == o.prefix_v.shape(), op,
                "prefix_k and prefix_v must both be given with equal shapes, got ", o.prefix_k.str(), " and ",
                o.prefix_v.str());
    LLOCO_CHECK(o.prefix_k.dim() == 4 && o.prefix_k.size(0) == k.size(0) && o.prefix_k.size(1) == k.size(1) &&
                    o.prefix_k.size(3) == k.size(3),
                op, "prefix ", o.prefix_k.str(), " does not match k ", k.str());
    in.prefix = o.prefix_k.size(2);
    in.k = concat({o.prefix_k, k}, 2);
    in.v = concat({o.prefix_v, v}, 2);
  }
  in.params.causal = o.causal;
  in.params.scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  if (o.mask.defined()) {
    check_same_dtype(q, o.mask, op);
    Shape full{q.size(0), q.size(1), q.size(2), in.k.size(2)};
    Shape bs = broadcast_shapes(o.mask.shape(), full, op);
    LLOCO_CHECK(bs == full, op, "mask ", o.mask.str(), " does not broadcast to ", shape_str(full));
    in.mask = o.mask.detach().expand(full);
  }
  return in;
}

// The kernels address q/k/v through strides and only need the head dim dense, so views such as the
// KV cache's capacity-padded [B, Hkv, C, D] slices reach them without a copy.
}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& opts) {
  AttentionInputs in = prepare_attention(q_in, k_in, v_in, opts);
  Tensor q = dense_head_dim(in.q), k = dense_head_dim(in.k), v = dense_head_dim(in.v);
  const Shape out_shape{q.size(0), q.size(1), q.size(2), q.size(3)};
  Tensor out = empty(out_shape, q.dtype(), q.device());
  Tensor lse = empty({q.size(0), q.size(1), q.size(2)}, stats_dtype(q.dtype()), q.device());
  if (out.numel() > 0)
    backend_of(q).attention_fwd(to_ref(out), to_ref(lse), to_ref(q.detach()), to_ref(k.detach()),
                                to_ref(v.detach()), to_ref(in.mask), in.params, stream_of(q));
  // Gradients flow to q and to the concatenated k/v, whose own nodes split them into prefix + k/v.
  Tensor qd = q.detach(), kd = k.detach(), vd = v.detach(), od = out.detach(), mask = in.mask;
  AttentionParams params = in.params;
  return record(out, "attention", {q, k, v}, [qd, kd, vd, od, lse, mask, params](const Tensor& g) {
    Backend& be = backend_of(qd);
    if (!be.has_kernel("attention_bwd")) {
      AttentionOptions o;
      o.causal = params.causal;
      o.scale = params.scale;
      o.mask = mask;
      return fallback_backward([o](const std::vector<Tensor>& t) { return composed::attention(t[0], t[1], t[2], o); },
                               {qd, kd, vd}, g);
    }
    Tensor dq = empty_like(qd), dk = empty_like(kd), dv = empty_like(vd);
    be.attention_bwd(to_ref(dq), to_ref(dk), to_ref(dv), to_ref(g.contiguous()), to_ref(qd), to_ref(kd), to_ref(vd),
                     to_ref(mask), to_ref(od), to_ref(lse), params, stream_of(qd));
    return std::vector<Tensor>{dq, dk, dv};
  });
}

// ---- cross-entropy ------------------------------------------------------------------------------

static void check_cross_entropy(const Tensor& logits, const Tensor& targets) {
  check_defined(logits, "cross_entropy", "logits");
  check_float(logits, "cross_entropy");
  check_index(targets, "cross_entropy", "targets");
  LLOCO_CHECK(logits.dim() == 2, "cross_entropy", "logits must be [N, V], got ", logits.str());
  LLOCO_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), "cross_entropy", "targets ", targets.str(),
              " vs logits rows ", logits.size(0));
  check_same_device(logits, targets, "cross_entropy");
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  check_cross_entropy(logits, targets);
  if (targets.device().type == DeviceType::CPU)
    for (int64_t t : targets.to_vector<int64_t>())
      LLOCO_CHECK(t == ignore_index || (t >= 0 && t < logits.size(1)), "cross_entropy", "target ", t,
                  " out of range for ", logits.size(1), " classes");
  Tensor l = logits.detach().contiguous(), tg = targets.detach().contiguous();
  const int64_t N = l.size(0);
  const DType acc = stats_dtype(l.dtype());  // loss in f32 (f64 for f64 logits), as training wants
  Tensor rows = empty({N}, acc, l.device());
  Tensor lse = empty({N}, acc, l.device());
  if (N > 0) backend_of(l).cross_entropy_fwd(to_ref(rows), to_ref(lse), to_ref(l), to_ref(tg), ignore_index, stream_of(l));
  rows = record(rows, "cross_entropy", {logits}, [l, tg, lse, ignore_index](const Tensor& g) {
    Backend& be = backend_of(l);
    Tensor dl = empty_like(l);
    if (dl.numel() > 0)
      be.cross_entropy_bwd(to_ref(dl), to_ref(g.contiguous()), to_ref(l), to_ref(lse), to_ref(tg), ignore_index,
                           stream_of(l));
    return std::vector<Tensor>{dl};
  });
  // torch semantics: mean over non-ignored rows (NaN when every row is ignored).
  Tensor valid = compare(BinaryOp::Ne, tg.to(acc), full({}, static_cast<double>(ignore_index), acc, l.device()));
  return div(sum(rows), sum(valid));
}

// ---- swiglu -------------------------------------------------------------------------------------

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  check_defined(gate, "swiglu", "gate");
  check_defined(up, "swiglu", "up");
  check_float(gate, "swiglu");
  check_same_device(gate, up, "swiglu");
  check_same_dtype(gate, up, "swiglu");
  LLOCO_CHECK(gate.shape() == up.shape(), "swiglu", "gate ", gate.str(), " and up ", up.str(), " differ in shape");
  Tensor g = gate.detach().contiguous(), u = up.detach().contiguous();
  Tensor out = empty(g.shape(), g.dtype(), g.device());
  if (out.numel() > 0) backend_of(g).swiglu_fwd(to_ref(out), to_ref(g), to_ref(u), stream_of(g));
  return record(out, "swiglu", {gate, up}, [g, u](const Tensor& grad) {
    Backend& be = backend_of(g);
    if (!be.has_kernel("swiglu_bwd"))
      return fallback_backward([](const std::vector<Tensor>& in) { return composed::swiglu(in[0], in[1]); }, {g, u},
                               grad);
    Tensor dg = empty(g.shape(), g.dtype(), g.device()), du = empty(u.shape(), u.dtype(), u.device());
    if (dg.numel() > 0)
      be.swiglu_bwd(to_ref(dg), to_ref(du), to_ref(grad.contiguous()), to_ref(g), to_ref(u), stream_of(g));
    return std::vector<Tensor>{dg, du};
  });
}

}  // namespace lloco
