#include "tests/cuda/attention_ref.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"

namespace lloco::cuda_test {

std::string AttnShape::str() const {
  std::ostringstream os;
  os << "B" << B << " Hq" << Hq << " Hkv" << Hkv << " Tq" << Tq << " Tk" << Tk << " D" << D
     << (causal ? " causal" : " full");
  return os.str();
}

AttnData random_attention_data(const AttnShape& s, DType dtype, uint64_t seed) {
  AttnData d;
  d.q = randn({s.B, s.Hq, s.Tq, s.D}, seed * 4 + 0, DType::F32).to(dtype);
  d.k = randn({s.B, s.Hkv, s.Tk, s.D}, seed * 4 + 1, DType::F32).to(dtype);
  d.v = randn({s.B, s.Hkv, s.Tk, s.D}, seed * 4 + 2, DType::F32).to(dtype);
  d.dout = randn({s.B, s.Hq, s.Tq, s.D}, seed * 4 + 3, DType::F32).to(dtype);
  return d;
}

namespace {
AttnOutputs run(const AttnData& d, DType dtype, bool causal, double scale, bool with_grads, bool composed_path) {
  Tensor q = d.q.to(dtype), k = d.k.to(dtype), v = d.v.to(dtype);
  if (with_grads) {
    q.requires_grad_();
    k.requires_grad_();
    v.requires_grad_();
  }
  AttentionOptions o;
  o.causal = causal;
  o.scale = scale;
  AttnOutputs r;
  r.out = composed_path ? composed::attention(q, k, v, o) : attention(q, k, v, o);
  if (!composed_path) {
    // The f64 log-sum-exp straight from the CPU reference kernel (the op keeps it internal).
    AttentionParams p;
    p.causal = causal;
    p.scale = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    Tensor out = empty(q.shape(), DType::F64);
    r.lse = empty({q.size(0), q.size(1), q.size(2)}, DType::F64);
    backend_for(DeviceType::CPU).attention_fwd(to_ref(out), to_ref(r.lse), to_ref(q.detach()), to_ref(k.detach()),
                                               to_ref(v.detach()), TensorRef{}, p, Stream{});
  }
  if (with_grads) {
    r.out.backward(d.dout.to(dtype));
    r.dq = q.grad();
    r.dk = k.grad();
    r.dv = v.grad();
  }
  r.out = r.out.detach();
  return r;
}
}  // namespace

AttnOutputs attention_exact(const AttnData& d, bool causal, double scale, bool with_grads) {
  return run(d, DType::F64, causal, scale, with_grads, false);
}

AttnOutputs attention_plain(const AttnData& d, bool causal, double scale, bool with_grads) {
  return run(d, d.q.dtype(), causal, scale, with_grads, true);
}

void set_flash_problem(cuda_kernels::FlashParams& p, int64_t B, int64_t Hq, int64_t Hkv, int64_t Tq, int64_t Tk,
                       int64_t D, bool causal, DType dtype) {
  p.batch = static_cast<int>(B);
  p.heads_q = static_cast<int>(Hq);
  p.heads_kv = static_cast<int>(Hkv);
  p.seqlen_q = static_cast<int>(Tq);
  p.seqlen_k = static_cast<int>(Tk);
  p.head_dim = static_cast<int>(D);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  p.scale = static_cast<float>(scale);
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);  // log2(e)
  p.causal = causal;
  p.is_bf16 = dtype == DType::BF16;
}

double max_abs_err(const Tensor& got, const Tensor& ref) {
  LLOCO_CHECK(got.shape() == ref.shape(), "max_abs_err", "shapes ", got.str(), " vs ", ref.str());
  const std::vector<double> g = got.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> r = ref.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  double worst = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i])) return std::numeric_limits<double>::infinity();
    if (std::isinf(g[i]) || std::isinf(r[i])) {
      if (g[i] != r[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::abs(g[i] - r[i]));
  }
  return worst;
}

}  // namespace lloco::cuda_test
