// Packed variable-length attention (flash-attention's varlen API): one fused kernel forward and
// backward over B sequences stored back to back, and its composed fallback built from per-sequence
// dense attention (the test oracle and the backward when a backend lacks the fused kernel).
#include <cmath>
#include <limits>

#include "core/ops_common.h"

namespace lloco {

using namespace detail;

namespace {

constexpr const char* kOp = "attention_varlen";

// Offsets [B + 1] from 0, non-decreasing, ending at or below `rows`; `which` names the field.
void check_offsets(const std::vector<int64_t>& cu, int64_t rows, const char* which, const char* rows_name) {
  LLOCO_CHECK(cu.size() >= 2, kOp, which, " must hold B + 1 >= 2 offsets, got ", cu.size());
  LLOCO_CHECK(cu.front() == 0, kOp, which, "[0] must be 0, got ", cu.front());
  for (size_t b = 0; b + 1 < cu.size(); ++b)
    LLOCO_CHECK(cu[b] <= cu[b + 1], kOp, which, " must be non-decreasing, got ", which, "[", b, "] = ", cu[b],
                " > ", which, "[", b + 1, "] = ", cu[b + 1]);
  LLOCO_CHECK(cu.back() <= rows, kOp, which, "[B] = ", cu.back(), " exceeds ", rows_name, " = ", rows);
  LLOCO_CHECK(cu.back() <= std::numeric_limits<int32_t>::max(), kOp, which, "[B] = ", cu.back(),
              " does not fit the i32 offsets the kernels read");
}

int64_t longest(const std::vector<int64_t>& cu) {
  int64_t m = 0;
  for (size_t b = 0; b + 1 < cu.size(); ++b) m = std::max(m, cu[b + 1] - cu[b]);
  return m;
}


// Backward through the composed fallback: recompute it on detached leaves, then backprop.
std::vector<Tensor> composed_backward(const std::vector<Tensor>& saved, const std::vector<int64_t>& cu_q,
                                      const std::vector<int64_t>& cu_k, bool causal, double scale, const Tensor& g) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : saved) leaves.push_back(t.detach().requires_grad_(true));
  Tensor out;
  {
    EnableGradGuard enable;
    out = composed::attention_varlen(leaves[0], leaves[1], leaves[2], cu_q, cu_k, causal, scale);
  }
  std::vector<Tensor> grads = autograd_grad(out, g, leaves);
  // Inputs the output never reached (no query row with a key) get an explicit zero gradient.
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = zeros(saved[i].shape(), saved[i].dtype(), saved[i].device());
  return grads;
}

}  // namespace

Tensor attention_varlen(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const std::vector<int64_t>& cu_q,
                        const std::vector<int64_t>& cu_k, bool causal, double scale) {
  for (const Tensor* t : {&q_in, &k_in, &v_in}) {
    check_defined(*t, kOp, "q/k/v");
    LLOCO_CHECK(t->dim() == 3, kOp, "q, k, v must be [N, H, D], got ", t->str());
    check_same_dtype(q_in, *t, kOp);
    check_same_device(q_in, *t, kOp);
  }
  check_float(q_in, kOp);
  LLOCO_CHECK(k_in.shape() == v_in.shape(), kOp, "k ", k_in.str(), " and v ", v_in.str(), " differ");
  LLOCO_CHECK(q_in.size(2) == k_in.size(2), kOp, "head dim of q ", q_in.str(), " vs k ", k_in.str());
  LLOCO_CHECK(k_in.size(1) > 0 && q_in.size(1) % k_in.size(1) == 0, kOp, "query heads ", q_in.size(1),
              " not divisible by key/value heads ", k_in.size(1));
  LLOCO_CHECK(cu_q.size() == cu_k.size(), kOp, "cu_q has ", cu_q.size(), " offsets but cu_k has ", cu_k.size());
  check_offsets(cu_q, q_in.size(0), "cu_q", "q rows");
  check_offsets(cu_k, k_in.size(0), "cu_k", "k rows");

  const Tensor q = dense_head_dim(q_in), k = dense_head_dim(k_in), v = dense_head_dim(v_in);
  const int64_t Nq = q.size(0), Hq = q.size(1), D = q.size(2), covered = cu_q.back();
  const Device dev = q.device();
  const Tensor cu_q_dev = from_vector<int64_t>(cu_q, {static_cast<int64_t>(cu_q.size())}, DType::I32, dev);
  const Tensor cu_k_dev = from_vector<int64_t>(cu_k, {static_cast<int64_t>(cu_k.size())}, DType::I32, dev);
  VarlenParams vp;
  vp.batch = static_cast<int64_t>(cu_q.size()) - 1;
  vp.max_q = longest(cu_q);
  vp.max_k = longest(cu_k);
  AttentionParams params;
  params.causal = causal;
  params.scale = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(D));

  Tensor out = empty({Nq, Hq, D}, q.dtype(), dev);   // [Nq, Hq, D]
  Tensor lse = empty({Hq, Nq}, stats_dtype(q.dtype()), dev);  // [Hq, Nq]
  // The kernel writes only rows inside a sequence; rows past cu_q[B] are 0 (lse -inf: no keys).
  if (covered < Nq) {
    fill_(out.narrow(0, covered, Nq - covered), 0.0);
    fill_(lse.narrow(1, covered, Nq - covered), -std::numeric_limits<double>::infinity());
  }
  const Tensor qd = q.detach(), kd = k.detach(), vd = v.detach();
  if (covered > 0 && out.numel() > 0)
    backend_of(q).attention_varlen_fwd(to_ref(out), to_ref(lse), to_ref(qd), to_ref(kd), to_ref(vd), to_ref(cu_q_dev),
                                       to_ref(cu_k_dev), vp, params, stream_of(q));

  const Tensor od = out.detach();
  return record(out, kOp, {q, k, v},
                [qd, kd, vd, od, lse, cu_q_dev, cu_k_dev, cu_q, cu_k, vp, params](const Tensor& g) {
                  Backend& be = backend_of(qd);
                  if (!be.has_kernel("attention_varlen_bwd"))
                    return composed_backward({qd, kd, vd}, cu_q, cu_k, params.causal, params.scale, g);
                  if (qd.numel() == 0 || cu_q.back() == 0)  // no query row attends: every gradient is 0
                    return std::vector<Tensor>{zeros(qd.shape(), qd.dtype(), qd.device()),
                                               zeros(kd.shape(), kd.dtype(), kd.device()),
                                               zeros(vd.shape(), vd.dtype(), vd.device())};
                  Tensor dq = empty_like(qd), dk = empty_like(kd), dv = empty_like(vd);
                  be.attention_varlen_bwd(to_ref(dq), to_ref(dk), to_ref(dv), to_ref(g.contiguous()), to_ref(qd),
                                          to_ref(kd), to_ref(vd), to_ref(od), to_ref(lse), to_ref(cu_q_dev),
                                          to_ref(cu_k_dev), vp, params, stream_of(qd));
                  return std::vector<Tensor>{dq, dk, dv};
                });
}

namespace composed {

Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int64_t>& cu_q,
                        const std::vector<int64_t>& cu_k, bool causal, double scale) {
  const int64_t Nq = q.size(0), Hq = q.size(1), D = q.size(2);
  AttentionOptions o;
  o.causal = causal;
  o.scale = scale;
  // [N, H, D] rows of one sequence as a [1, H, T, D] batch of one.
  auto as_batch = [](const Tensor& t, int64_t start, int64_t len) {
    return t.narrow(0, start, len).permute({1, 0, 2}).unsqueeze(0);
  };
  std::vector<Tensor> parts;
  for (size_t b = 0; b + 1 < cu_q.size(); ++b) {
    const int64_t Tq = cu_q[b + 1] - cu_q[b], Tk = cu_k[b + 1] - cu_k[b];
    if (Tq == 0) continue;
    if (Tk == 0) {  // no keys to attend to: the rows are 0
      parts.push_back(zeros({Tq, Hq, D}, q.dtype(), q.device()));
      continue;
    }
    Tensor o_b = composed::attention(as_batch(q, cu_q[b], Tq), as_batch(k, cu_k[b], Tk), as_batch(v, cu_k[b], Tk), o);
    parts.push_back(o_b.squeeze(0).permute({1, 0, 2}));  // [Tq, Hq, D]
  }
  if (cu_q.back() < Nq) parts.push_back(zeros({Nq - cu_q.back(), Hq, D}, q.dtype(), q.device()));
  return parts.empty() ? zeros({Nq, Hq, D}, q.dtype(), q.device()) : lloco::concat(parts, 0);
}

}  // namespace composed

}  // namespace lloco
