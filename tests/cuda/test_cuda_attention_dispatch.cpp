// attention() and attention_varlen() on CUDA tensors, through the public ops: each case asserts
// which kernel family ran (attention_path: decode / flash / simple) and compares forward and
// backward with the CPU reference. bf16/f16: the error of out, dq, dk and dv is at most 2x that of
// the same computation done naively in the dtype, both against f64 (issue #6); f32 is held tight.
// LLOCO_ATTENTION and LLOCO_FLASH_KERNEL are re-read through reload_attention_mode(): every test
// starts from "auto" (SetUp unsets them), so the suite does not depend on the caller's environment.
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "cuda/attention_dispatch.h"
#include "cuda/kernels/flash.h"
#include "tests/cuda/attention_ref.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

class AttentionDispatchTest : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    unsetenv("LLOCO_ATTENTION");
    unsetenv("LLOCO_FLASH_KERNEL");
    reload_attention_mode();
  }
  void TearDown() override {
    unsetenv("LLOCO_ATTENTION");
    unsetenv("LLOCO_FLASH_KERNEL");
    reload_attention_mode();
  }
};

struct Grads {
  Tensor out, dq, dk, dv;
};

// attention() with gradients on copies of q/k/v/mask/dout in `dt` on `dev`; composed = the naive op.
Grads run_dense(const AttnData& d, const Tensor& mask, bool causal, DType dt, Device dev, bool composed_path) {
  Tensor q = d.q.to(dt).to(dev), k = d.k.to(dt).to(dev), v = d.v.to(dt).to(dev);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  AttentionOptions o;
  o.causal = causal;
  if (mask.defined()) o.mask = mask.to(dt).to(dev);
  Grads g;
  g.out = composed_path ? composed::attention(q, k, v, o) : attention(q, k, v, o);
  g.out.backward(d.dout.to(dt).to(dev));
  g.out = g.out.detach();
  g.dq = q.grad();
  g.dk = k.grad();
  g.dv = v.grad();
  return g;
}

// Judges `got` against the f64 result: for half types within `factor` x the naive error (+1e-4),
// for f32 within `f32_tol`.
void expect_near_exact(const Tensor& got, const Tensor& exact, const Tensor& naive, DType dt, double factor,
                       double f32_tol, const std::string& what) {
  const double err = max_abs_err(got, exact);
  if (dt == DType::F32) {
    EXPECT_LE(err, f32_tol) << what;
  } else {
    const double err_naive = max_abs_err(naive, exact);
    EXPECT_LE(err, factor * err_naive + 1e-4) << what << " (naive error " << err_naive << ")";
  }
}

struct DenseCase {
  DType dt;
  int64_t B, Hq, Hkv, Tq, Tk, D;
  bool causal, masked;
  const char* fwd_path;
  const char* bwd_path;
};

void check_dense(const DenseCase& c, uint64_t seed) {
  const AttnShape s{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D, c.causal};
  SCOPED_TRACE(s.str() + " " + dtype_name(c.dt) + (c.masked ? " masked" : ""));
  const AttnData d = random_attention_data(s, c.dt, seed);
  const Tensor mask = c.masked ? randn({1, c.Hq, c.Tq, c.Tk}, seed + 99, DType::F32).to(c.dt) : Tensor();
  const Tensor qd = d.q.to(cuda()), kd = d.k.to(cuda());
  const Tensor maskd = mask.defined() ? mask.to(cuda()) : Tensor();
  const TensorRef mref = maskd.defined() ? to_ref(maskd) : TensorRef{};
  EXPECT_STREQ(attention_path(to_ref(qd), to_ref(kd), mref, false), c.fwd_path);
  EXPECT_STREQ(attention_path(to_ref(qd), to_ref(kd), mref, true), c.bwd_path);

  const Grads got = run_dense(d, mask, c.causal, c.dt, cuda(), false);
  const Grads exact = run_dense(d, mask, c.causal, DType::F64, cpu(), false);
  const Grads naive = run_dense(d, mask, c.causal, c.dt, cpu(), true);
  expect_near_exact(got.out, exact.out, naive.out, c.dt, 2, 2e-5, "out");
  expect_near_exact(got.dq, exact.dq, naive.dq, c.dt, 2, 1e-4, "dq");
  expect_near_exact(got.dk, exact.dk, naive.dk, c.dt, 2, 1e-4, "dk");
  expect_near_exact(got.dv, exact.dv, naive.dv, c.dt, 2, 1e-4, "dv");
}

TEST_F(AttentionDispatchTest, DenseOpPicksPathAndMatchesReference) {
  const DenseCase cases[] = {
      // tensor-core kernels both ways
      {DType::BF16, 2, 4, 2, 70, 70, 64, true, false, "flash", "flash"},
      {DType::F16, 1, 4, 4, 33, 150, 128, false, false, "flash", "flash"},
      // decode forward (few queries, long cache, GQA), flash backward
      {DType::BF16, 1, 8, 2, 1, 1500, 128, true, false, "decode", "flash"},
      {DType::F16, 2, 4, 1, 3, 700, 64, false, false, "decode", "flash"},
      // few queries but a short cache: not worth splitting, flash forward
      {DType::BF16, 1, 4, 2, 2, 100, 64, true, false, "flash", "flash"},
      // head dim 80: decode takes few queries, everything else is the simple kernels
      {DType::BF16, 1, 4, 2, 2, 90, 80, true, false, "decode", "simple"},
      {DType::F16, 1, 2, 2, 40, 60, 80, true, false, "simple", "simple"},
      // masks and f32 always go to the simple kernels
      {DType::BF16, 1, 2, 2, 30, 50, 64, true, true, "simple", "simple"},
      {DType::BF16, 1, 2, 1, 1, 800, 128, false, true, "simple", "simple"},
      {DType::F32, 1, 4, 2, 20, 45, 64, true, false, "simple", "simple"},
      {DType::F32, 1, 2, 2, 1, 600, 128, false, true, "simple", "simple"},
  };
  uint64_t seed = 900;
  for (const DenseCase& c : cases) check_dense(c, ++seed);
}

// ---- varlen ---------------------------------------------------------------------------------------

struct VarlenGrads {
  Tensor out, dq, dk, dv;
};

VarlenGrads run_varlen(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& dout,
                       const std::vector<int64_t>& cu_q, const std::vector<int64_t>& cu_k, bool causal, DType dt,
                       Device dev, bool composed_path) {
  Tensor q = q0.to(dt).to(dev), k = k0.to(dt).to(dev), v = v0.to(dt).to(dev);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  VarlenGrads g;
  g.out = composed_path ? composed::attention_varlen(q, k, v, cu_q, cu_k, causal)
                        : attention_varlen(q, k, v, cu_q, cu_k, causal);
  g.out.backward(dout.to(dt).to(dev));
  g.out = g.out.detach();
  g.dq = q.grad();
  g.dk = k.grad();
  g.dv = v.grad();
  return g;
}

void check_varlen(DType dt, int64_t D, bool causal, const char* path, uint64_t seed) {
  SCOPED_TRACE(std::string(dtype_name(dt)) + " D" + std::to_string(D) + (causal ? " causal" : " full"));
  // Sequences: a normal one, one without queries, one without keys, a decode-like one; q and k
  // both have rows past the last sequence (their gradients must be 0).
  const std::vector<int64_t> cu_q = {0, 37, 37, 41, 43}, cu_k = {0, 50, 61, 61, 140};
  const int64_t Nq = 47, Nk = 150, Hq = 4, Hkv = 2;
  const Tensor q = randn({Nq, Hq, D}, seed * 4, DType::F32).to(dt);
  const Tensor k = randn({Nk, Hkv, D}, seed * 4 + 1, DType::F32).to(dt);
  const Tensor v = randn({Nk, Hkv, D}, seed * 4 + 2, DType::F32).to(dt);
  const Tensor dout = randn({Nq, Hq, D}, seed * 4 + 3, DType::F32).to(dt);
  const Tensor qd = q.to(cuda()), kd = k.to(cuda());
  EXPECT_STREQ(attention_varlen_path(to_ref(qd), to_ref(kd), false), path);
  EXPECT_STREQ(attention_varlen_path(to_ref(qd), to_ref(kd), true), path);

  const VarlenGrads got = run_varlen(q, k, v, dout, cu_q, cu_k, causal, dt, cuda(), false);
  const VarlenGrads exact = run_varlen(q, k, v, dout, cu_q, cu_k, causal, DType::F64, cpu(), true);
  const VarlenGrads naive = run_varlen(q, k, v, dout, cu_q, cu_k, causal, dt, cpu(), true);
  expect_near_exact(got.out, exact.out, naive.out, dt, 2, 2e-5, "out");
  expect_near_exact(got.dq, exact.dq, naive.dq, dt, 2, 1e-4, "dq");
  expect_near_exact(got.dk, exact.dk, naive.dk, dt, 2, 1e-4, "dk");
  expect_near_exact(got.dv, exact.dv, naive.dv, dt, 2, 1e-4, "dv");
  // Rows outside every sequence: exactly 0 in out and in every gradient.
  EXPECT_EQ(max_abs_err(got.out.narrow(0, 43, Nq - 43), zeros({Nq - 43, Hq, D}, dt)), 0.0) << "out tail";
  EXPECT_EQ(max_abs_err(got.dq.narrow(0, 43, Nq - 43), zeros({Nq - 43, Hq, D}, dt)), 0.0) << "dq tail";
  EXPECT_EQ(max_abs_err(got.dk.narrow(0, 140, Nk - 140), zeros({Nk - 140, Hkv, D}, dt)), 0.0) << "dk tail";
  EXPECT_EQ(max_abs_err(got.dv.narrow(0, 50, 11), zeros({11, Hkv, D}, dt)), 0.0) << "dv of a query-less sequence";
}

TEST_F(AttentionDispatchTest, VarlenFlashPath) {
  check_varlen(DType::BF16, 64, true, "flash", 31);
  check_varlen(DType::F16, 128, false, "flash", 32);
}

TEST_F(AttentionDispatchTest, VarlenSimpleFallback) {
  check_varlen(DType::F32, 64, true, "simple", 33);
  check_varlen(DType::BF16, 80, false, "simple", 34);
}

// ---- LLOCO_ATTENTION ---------------------------------------------------------------------------------

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(AttentionDispatchTest, EnvironmentOverride) {
  const AttnShape s{1, 4, 2, 1, 900, 64, true};
  const AttnData d = random_attention_data(s, DType::BF16, 77);
  const Tensor q = d.q.to(cuda()), k = d.k.to(cuda()), v = d.v.to(cuda());
  const Tensor q32 = d.q.to(DType::F32).to(cuda()), k32 = d.k.to(DType::F32).to(cuda());
  const Tensor v32 = d.v.to(DType::F32).to(cuda());
  AttentionOptions o;
  o.causal = true;
  EXPECT_STREQ(attention_path(to_ref(q), to_ref(k), TensorRef{}, false), "decode");

  setenv("LLOCO_ATTENTION", "simple", 1);
  reload_attention_mode();
  EXPECT_STREQ(attention_path(to_ref(q), to_ref(k), TensorRef{}, false), "simple");
  EXPECT_STREQ(attention_path(to_ref(q), to_ref(k), TensorRef{}, true), "simple");
  const Tensor simple_out = attention(q, k, v, o);

  setenv("LLOCO_ATTENTION", "flash", 1);
  reload_attention_mode();
  EXPECT_STREQ(attention_path(to_ref(q), to_ref(k), TensorRef{}, false), "decode");
  EXPECT_STREQ(attention_path(to_ref(q), to_ref(k), TensorRef{}, true), "flash");
  const Tensor fast_out = attention(q, k, v, o);
  // Forced flash on f32: the op fails and names the reason.
  const std::string msg = error_of([&] { attention(q32, k32, v32, o); });
  EXPECT_NE(msg.find("LLOCO_ATTENTION=flash"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f32"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { attention_path(to_ref(q32), to_ref(k32), TensorRef{}, false); }), "");

  // Both families answer the same problem within the bf16 criterion.
  const AttnOutputs exact = attention_exact(d, true, 0.0, false);
  const AttnOutputs naive = attention_plain(d, true, 0.0, false);
  const double err_naive = max_abs_err(naive.out, exact.out);
  EXPECT_LE(max_abs_err(simple_out, exact.out), 2 * err_naive + 1e-4);
  EXPECT_LE(max_abs_err(fast_out, exact.out), 2 * err_naive + 1e-4);

  setenv("LLOCO_ATTENTION", "fastest", 1);
  const std::string bad = error_of([] { reload_attention_mode(); });
  EXPECT_NE(bad.find("fastest"), std::string::npos) << bad;
}

// LLOCO_FLASH_KERNEL forces the flash path's kernels: each one, forward and backward through the
// op, within the bf16 criterion; wgmma where it cannot run fails naming why; bad values are rejected.
TEST_F(AttentionDispatchTest, FlashKernelOverride) {
  const AttnShape s{1, 4, 2, 200, 200, 128, true};
  const AttnData d = random_attention_data(s, DType::BF16, 78);
  const Grads exact = run_dense(d, Tensor(), true, DType::F64, lloco::cpu(), false);
  const Grads naive = run_dense(d, Tensor(), true, DType::BF16, lloco::cpu(), true);
  for (const char* kernel : {"mma", "wgmma"}) {
    SCOPED_TRACE(kernel);
    setenv("LLOCO_FLASH_KERNEL", kernel, 1);
    reload_attention_mode();
    ASSERT_STREQ(attention_path(to_ref(d.q.to(cuda())), to_ref(d.k.to(cuda())), TensorRef{}, true), "flash");
    EXPECT_STREQ(flash_kernel_name(), std::string(kernel) == "mma" ? "mma.sync" : "wgmma");
    if (std::string(kernel) == "wgmma" && !cuda_kernels::flash_wgmma_available()) {
      const std::string msg = error_of([&] { run_dense(d, Tensor(), true, DType::BF16, cuda(), false); });
      EXPECT_NE(msg.find("sm_90a"), std::string::npos) << msg;
      continue;
    }
    const Grads got = run_dense(d, Tensor(), true, DType::BF16, cuda(), false);
    expect_near_exact(got.out, exact.out, naive.out, DType::BF16, 2, 0, "out");
    expect_near_exact(got.dq, exact.dq, naive.dq, DType::BF16, 2, 0, "dq");
    expect_near_exact(got.dk, exact.dk, naive.dk, DType::BF16, 2, 0, "dk");
    expect_near_exact(got.dv, exact.dv, naive.dv, DType::BF16, 2, 0, "dv");
  }
  unsetenv("LLOCO_FLASH_KERNEL");
  reload_attention_mode();
  EXPECT_STREQ(flash_kernel_name(), cuda_kernels::flash_wgmma_available() ? "wgmma" : "mma.sync") << "auto";
  setenv("LLOCO_FLASH_KERNEL", "tensor", 1);
  const std::string bad = error_of([] { reload_attention_mode(); });
  EXPECT_NE(bad.find("LLOCO_FLASH_KERNEL must be mma, wgmma or auto, got 'tensor'"), std::string::npos) << bad;
}

}  // namespace
}  // namespace lloco::cuda_test
