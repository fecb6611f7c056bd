// CUDA backend vs CPU backend for the fused kernels: cross-entropy, RMSNorm, SwiGLU, RoPE,
// attention, AdamW. Shapes are odd on purpose (tails, partial tiles, fully masked rows, GQA groups).
#include <cmath>
#include <limits>

#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using FusedTest = CudaTest;

DType stats_of(DType dt) { return dt == DType::F64 ? DType::F64 : DType::F32; }
double acc_tol(DType dt, double f32_tol) { return dt == DType::F64 ? 1e-11 : f32_tol; }

TEST_F(FusedTest, CrossEntropyForwardBackward) {
  struct Case {
    int64_t N, V;
    Layout layout;
  };
  const int64_t ignore = -100;
  for (const Case& c : {Case{6, 32000, Layout::Contig}, Case{9, 1001, Layout::Contig}, Case{4, 515, Layout::Padded}})
    for (DType dt : float_dtypes()) {
      Buf logits = make_input({c.N, c.V}, dt, c.layout, [&](int64_t) { return std::normal_distribution<>(0, 2)(rng()); });
      Buf targets = make_index({c.N}, DType::I64, 0, c.V - 1);
      reinterpret_cast<int64_t*>(targets.host.data())[1] = ignore;
      targets.upload();
      Buf loss = make_output({c.N}, stats_of(dt)), lse = make_output({c.N}, stats_of(dt));
      cpu().cross_entropy_fwd(loss.href(), lse.href(), logits.href(), targets.href(), ignore, stream());
      gpu().cross_entropy_fwd(loss.dref(), lse.dref(), logits.dref(), targets.dref(), ignore, stream());
      std::string what = "ce V=" + std::to_string(c.V);
      expect_close(lse, acc_tol(dt, 2e-6), acc_tol(dt, 1e-5), what + " lse");
      expect_close(loss, acc_tol(dt, 2e-6), acc_tol(dt, 2e-5), what + " loss");

      Buf dloss = make_input({c.N}, stats_of(dt));
      Buf dlogits = make_output({c.N, c.V}, dt, c.layout);
      cpu().cross_entropy_bwd(dlogits.href(), dloss.href(), logits.href(), lse.href(), targets.href(), ignore, stream());
      gpu().cross_entropy_bwd(dlogits.dref(), dloss.dref(), logits.dref(), lse.dref(), targets.dref(), ignore, stream());
      expect_close(dlogits, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-8), what + " dlogits");
    }
}

TEST_F(FusedTest, RmsNormForwardBackward) {
  for (int64_t D : {4096, 4100, 100})
    for (DType dt : float_dtypes()) {
      const int64_t N = 33;
      Buf x = make_input({N, D}, dt), w = make_input({D}, dt);
      Buf out = make_output({N, D}, dt), rstd = make_output({N}, stats_of(dt));
      cpu().rms_norm_fwd(out.href(), rstd.href(), x.href(), w.href(), 1e-5, stream());
      gpu().rms_norm_fwd(out.dref(), rstd.dref(), x.dref(), w.dref(), 1e-5, stream());
      std::string what = "rms_norm D=" + std::to_string(D);
      expect_close(rstd, acc_tol(dt, 4e-6), 0, what + " rstd");
      expect_close(out, std::max(ulp_tol(dt), acc_tol(dt, 8e-6)), acc_tol(dt, 1e-6), what + " out");

      Buf dy = make_input({N, D}, dt);
      Buf dx = make_output({N, D}, dt), dw = make_output({D}, dt);
      cpu().rms_norm_bwd(dx.href(), dw.href(), dy.href(), x.href(), w.href(), rstd.href(), stream());
      gpu().rms_norm_bwd(dx.dref(), dw.dref(), dy.dref(), x.dref(), w.dref(), rstd.dref(), stream());
      expect_close_normalized(dx, std::max(2 * ulp_tol(dt), acc_tol(dt, 2e-5)), what + " dx");
      expect_close_normalized(dw, std::max(2 * ulp_tol(dt), acc_tol(dt, 2e-5)), what + " dweight");
    }
}

// The 1-D view from element 1 of b's storage: misaligned for 16-byte packs (element 0 stays poisoned).
TensorRef from_second(TensorRef r, const Buf& b) {
  r.data = static_cast<uint8_t*>(r.data) + dtype_size(b.dtype);
  r.shape[0] -= 1;
  return r;
}

TEST_F(FusedTest, SwigluForwardBackward) {
  // Whole packs, packs + tail, and a row shorter than one pack.
  const std::vector<std::vector<int64_t>> shapes = {{33, 4096}, {7, 1003}, {1, 5}};
  for (const auto& shape : shapes)
    for (DType dt : float_dtypes()) {
      // Wide gate values reach both saturated ends of the sigmoid.
      Buf gate = make_input(shape, dt, Layout::Contig, [](int64_t) { return std::normal_distribution<>(0, 4)(rng()); });
      Buf up = make_input(shape, dt), out = make_output(shape, dt);
      cpu().swiglu_fwd(out.href(), gate.href(), up.href(), stream());
      gpu().swiglu_fwd(out.dref(), gate.dref(), up.dref(), stream());
      std::string what = std::string("swiglu ") + dtype_name(dt) + " [" + std::to_string(shape[0]) + ", " +
                         std::to_string(shape[1]) + "]";
      expect_close(out, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-6), what + " out");

      Buf dout = make_input(shape, dt);
      Buf dgate = make_output(shape, dt), dup = make_output(shape, dt);
      cpu().swiglu_bwd(dgate.href(), dup.href(), dout.href(), gate.href(), up.href(), stream());
      gpu().swiglu_bwd(dgate.dref(), dup.dref(), dout.dref(), gate.dref(), up.dref(), stream());
      expect_close(dgate, std::max(2 * ulp_tol(dt), acc_tol(dt, 8e-6)), acc_tol(dt, 1e-6), what + " dgate");
      expect_close(dup, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-6), what + " dup");
    }
}

TEST_F(FusedTest, SwigluMisalignedBuffers) {
  const int64_t n = 1 + 8 * 37 + 5;  // storage; the views start at element 1
  for (DType dt : float_dtypes()) {
    Buf gate = make_input({n}, dt), up = make_input({n}, dt), dout = make_input({n}, dt);
    Buf out = make_output({n}, dt), dgate = make_output({n}, dt), dup = make_output({n}, dt);
    cpu().swiglu_fwd(from_second(out.href(), out), from_second(gate.href(), gate), from_second(up.href(), up),
                     stream());
    gpu().swiglu_fwd(from_second(out.dref(), out), from_second(gate.dref(), gate), from_second(up.dref(), up),
                     stream());
    cpu().swiglu_bwd(from_second(dgate.href(), dgate), from_second(dup.href(), dup), from_second(dout.href(), dout),
                     from_second(gate.href(), gate), from_second(up.href(), up), stream());
    gpu().swiglu_bwd(from_second(dgate.dref(), dgate), from_second(dup.dref(), dup), from_second(dout.dref(), dout),
                     from_second(gate.dref(), gate), from_second(up.dref(), up), stream());
    std::string what = std::string("swiglu misaligned ") + dtype_name(dt);
    expect_close(out, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-6), what + " out");
    expect_close(dgate, std::max(2 * ulp_tol(dt), acc_tol(dt, 8e-6)), acc_tol(dt, 1e-6), what + " dgate");
    expect_close(dup, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-6), what + " dup");
  }
}

TEST_F(FusedTest, RopeStylesInverseAndStridedViews) {
  const int64_t B = 2, H = 3, T = 37, D = 64;
  for (DType dt : float_dtypes())
    for (RopeStyle style : {RopeStyle::HalfRotate, RopeStyle::Interleaved})
      for (bool inverse : {false, true})
        for (int64_t tb : {int64_t{1}, B}) {
          // x is a [B, H, T, D] view of [B, T, H, D] storage (how q/k come out of the projection).
          Buf x = make_input({B, T, H, D}, dt);
          std::swap(x.shape[1], x.shape[2]);
          std::swap(x.strides[1], x.strides[2]);
          std::uniform_real_distribution<double> angle(-3.1, 3.1);
          std::vector<double> angles(static_cast<size_t>(tb * T * D / 2));
          for (double& a : angles) a = angle(rng());
          Buf cos = make_input({tb, T, D / 2}, DType::F32, Layout::Contig, [&](int64_t i) { return std::cos(angles[i]); });
          Buf sin = make_input({tb, T, D / 2}, DType::F32, Layout::Contig, [&](int64_t i) { return std::sin(angles[i]); });
          Buf out = make_output({B, H, T, D}, dt);
          cpu().rope(out.href(), x.href(), cos.href(), sin.href(), style, inverse, stream());
          gpu().rope(out.dref(), x.dref(), cos.dref(), sin.dref(), style, inverse, stream());
          expect_close(out, std::max(ulp_tol(dt), acc_tol(dt, 4e-6)), acc_tol(dt, 1e-6),
                       std::string("rope/") + dtype_name(dt) + (inverse ? " inverse" : ""));
        }
}

struct AttnCase {
  int64_t B, Hq, Hkv, Tq, Tk, D;
  bool causal, mask;
};

// mask [1, 1, Tq, Tk] expanded to [B, Hq, Tq, Tk] (stride 0), with some -inf entries
Buf make_mask(const AttnCase& c, DType dt) {
  std::bernoulli_distribution drop(0.15);
  Buf m = make_input({1, 1, c.Tq, c.Tk}, dt, Layout::Contig, [&](int64_t) {
    return drop(rng()) ? -std::numeric_limits<double>::infinity() : std::normal_distribution<>(0, 1)(rng());
  });
  m.shape = {c.B, c.Hq, c.Tq, c.Tk};
  m.strides[0] = m.strides[1] = 0;
  return m;
}

TEST_F(FusedTest, AttentionForwardBackward) {
  const std::vector<AttnCase> cases = {
      {2, 4, 2, 5, 9, 16, true, true},     {1, 2, 2, 130, 130, 64, true, false}, {1, 3, 1, 7, 3, 32, true, false},
      {2, 2, 1, 6, 11, 80, false, true},   {1, 4, 4, 1, 200, 128, true, false},  {1, 2, 1, 9, 9, 8, false, false},
  };
  for (const AttnCase& c : cases)
    for (DType dt : float_dtypes()) {
      Buf q = make_input({c.B, c.Hq, c.Tq, c.D}, dt), k = make_input({c.B, c.Hkv, c.Tk, c.D}, dt);
      Buf v = make_input({c.B, c.Hkv, c.Tk, c.D}, dt, Layout::Padded);
      Buf mask = c.mask ? make_mask(c, dt) : Buf{};
      TensorRef hm = c.mask ? mask.href() : none_ref(), dm = c.mask ? mask.dref() : none_ref();
      AttentionParams p;
      p.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
      p.causal = c.causal;
      Buf out = make_output({c.B, c.Hq, c.Tq, c.D}, dt), lse = make_output({c.B, c.Hq, c.Tq}, stats_of(dt));
      cpu().attention_fwd(out.href(), lse.href(), q.href(), k.href(), v.href(), hm, p, stream());
      gpu().attention_fwd(out.dref(), lse.dref(), q.dref(), k.dref(), v.dref(), dm, p, stream());
      std::string what = "attention Tq=" + std::to_string(c.Tq) + " Tk=" + std::to_string(c.Tk) + " D=" +
                         std::to_string(c.D) + (c.causal ? " causal" : "") + (c.mask ? " mask" : "");
      expect_close(lse, acc_tol(dt, 2e-6), acc_tol(dt, 1e-5), what + " lse");
      expect_close_normalized(out, std::max(2 * ulp_tol(dt), acc_tol(dt, 1e-5)), what + " out");

      // The backward reads the forward's out/lse; take the CPU's so both backends see equal inputs.
      out.upload();
      lse.upload();
      Buf dout = make_input({c.B, c.Hq, c.Tq, c.D}, dt);
      Buf dq = make_output(q.shape, dt), dk = make_output(k.shape, dt), dv = make_output(v.shape, dt);
      cpu().attention_bwd(dq.href(), dk.href(), dv.href(), dout.href(), q.href(), k.href(), v.href(), hm, out.href(),
                          lse.href(), p, stream());
      gpu().attention_bwd(dq.dref(), dk.dref(), dv.dref(), dout.dref(), q.dref(), k.dref(), v.dref(), dm, out.dref(),
                          lse.dref(), p, stream());
      double tol = std::max(4 * ulp_tol(dt), acc_tol(dt, 2e-5));
      expect_close_normalized(dq, tol, what + " dq");
      expect_close_normalized(dk, tol, what + " dk");
      expect_close_normalized(dv, tol, what + " dv");
    }
}

TEST_F(FusedTest, AdamWStep) {
  AdamWParams p{1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - std::pow(0.9, 3), 1 - std::pow(0.999, 3)};
  const std::pair<DType, DType> combos[] = {{DType::F32, DType::F32}, {DType::F32, DType::BF16},
                                            {DType::BF16, DType::BF16}, {DType::F16, DType::F32},
                                            {DType::F64, DType::F64}};
  for (auto [pt, gt] : combos)
    for (int64_t n : {int64_t{100003}, int64_t{6}}) {
      Buf w = make_input({n}, pt), g = make_input({n}, gt), m = make_input({n}, pt);
      Buf v = make_input({n}, pt, Layout::Contig, [](int64_t) { return std::fabs(std::normal_distribution<>(0, 1)(rng())); });
      cpu().adamw_step(w.href(), g.href(), m.href(), v.href(), p, stream());
      gpu().adamw_step(w.dref(), g.dref(), m.dref(), v.dref(), p, stream());
      std::string what = std::string("adamw param ") + dtype_name(pt) + " grad " + dtype_name(gt);
      // f32 math against the CPU's f64: results that nearly cancel keep an absolute error ~1e-7.
      double tol = std::max(ulp_tol(pt), acc_tol(pt, 2e-6)), atol = acc_tol(pt, 5e-7);
      expect_close(w, tol, atol, what + " w");
      expect_close(m, tol, atol, what + " m");
      expect_close(v, tol, atol, what + " v");
    }
}

}  // namespace
}  // namespace lloco::cuda_test
