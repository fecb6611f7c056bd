// Flash-attention backward kernel (launch_flash_bwd) against the f64 CPU reference: err(kernel) <= 2x
// the error of a naive same-dtype composed computation, + 1e-4, for dq, dk and dv (both kernels
// measure about 1.1x at worst on the simt executor). The forward's out and lse come from the f64
// reference (out cast to the dtype), so this suite does not depend on the forward kernel. Outputs
// start as NaN and the workspace as garbage (0xff bytes = NaN), so unwritten elements fail. Every
// case runs each main kernel this build and device have: mma.sync everywhere, wgmma on sm_90a + H100.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda/kernels/flash.h"
#include "tests/cuda/attention_ref.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using cuda_kernels::FlashBwdParams;

using FlashBwdTest = CudaTest;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A [B, H, T, D] view on the GPU, stored [B, H, T, D] or (bthd) [B, T, H, D].
Tensor to_gpu(const Tensor& x, bool bthd) {
  if (!bthd) return x.contiguous().to(cuda());
  return x.permute({0, 2, 1, 3}).contiguous().to(cuda()).permute({0, 2, 1, 3});
}
Tensor nan_gpu(const Shape& bhtd, DType dt, bool bthd) {
  if (!bthd) return full(bhtd, kNaN, dt, cuda());
  return full({bhtd[0], bhtd[2], bhtd[1], bhtd[3]}, kNaN, dt, cuda()).permute({0, 2, 1, 3});
}

// Fills pointer + (batch, row, head) strides of a [B, H, T, D] view.
template <typename Ptr>
void set_bhtd(const Tensor& t, Ptr& ptr, int64_t& batch, int64_t& row, int64_t& head) {
  ptr = t.data_ptr();
  batch = t.stride(0);
  head = t.stride(1);
  row = t.stride(2);
}

// FlashBwdParams::bwd_kernel values this build and device can run (WgmmaKernelRunsWhereAvailable
// reports when the wgmma one is absent).
std::vector<int> bwd_kernels() {
  std::vector<int> k{1};
  if (cuda_kernels::flash_wgmma_available()) k.push_back(2);
  return k;
}
std::string kernel_name(int bwd_kernel) { return bwd_kernel == 2 ? " wgmma" : " mma.sync"; }

void run_bwd(const FlashBwdParams& p) {
  DeviceMem ws(cuda_kernels::flash_bwd_workspace_bytes(p));
  ASSERT_EQ(cudaMemset(ws.ptr, 0xff, ws.bytes), cudaSuccess);
  cuda_kernels::launch_flash_bwd(p, ws.ptr, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

struct Grads {
  Tensor dq, dk, dv;
};

// Errors of the naive same-dtype computation against the exact one. A causal row that sees no key
// (Tq > Tk) makes the naive softmax NaN, so the naive run gets only the last Tk query rows: they
// see the same keys, and the rows before them contribute nothing to any gradient.
Grads naive_run(const AttnData& d, bool causal) {
  const int64_t Tq = d.q.size(2), Tk = d.k.size(2);
  if (!causal || Tq <= Tk) {
    AttnOutputs o = attention_plain(d, causal, 0.0, true);
    return {o.dq, o.dk, o.dv};
  }
  AttnData sub = d;
  sub.q = d.q.narrow(2, Tq - Tk, Tk).contiguous();
  sub.dout = d.dout.narrow(2, Tq - Tk, Tk).contiguous();
  AttnOutputs o = attention_plain(sub, causal, 0.0, true);
  return {o.dq, o.dk, o.dv};
}

void expect_grads_close(const Grads& got, const AttnOutputs& exact, const Grads& naive, const std::string& what) {
  const int64_t Tq = exact.dq.size(2), rows = naive.dq.size(2);
  const double dq_ref = max_abs_err(naive.dq, exact.dq.narrow(2, Tq - rows, rows));
  const double dk_ref = max_abs_err(naive.dk, exact.dk), dv_ref = max_abs_err(naive.dv, exact.dv);
  ASSERT_TRUE(std::isfinite(dq_ref) && std::isfinite(dk_ref) && std::isfinite(dv_ref)) << what << " naive run";
  EXPECT_LE(max_abs_err(got.dq, exact.dq), 2 * dq_ref + 1e-4) << what << " dq (naive error " << dq_ref << ")";
  EXPECT_LE(max_abs_err(got.dk, exact.dk), 2 * dk_ref + 1e-4) << what << " dk (naive error " << dk_ref << ")";
  EXPECT_LE(max_abs_err(got.dv, exact.dv), 2 * dv_ref + 1e-4) << what << " dv (naive error " << dv_ref << ")";
}

void check_dense(const AttnShape& s, DType dt, bool bthd, uint64_t seed) {
  const std::string what = s.str() + " " + dtype_name(dt) + (bthd ? " [B,T,H,D]" : " [B,H,T,D]");
  const AttnData d = random_attention_data(s, dt, seed);
  const AttnOutputs exact = attention_exact(d, s.causal, 0.0, true);
  const Grads naive = naive_run(d, s.causal);

  const Tensor q = to_gpu(d.q, bthd), k = to_gpu(d.k, bthd), v = to_gpu(d.v, bthd);
  const Tensor out = to_gpu(exact.out.to(dt), bthd), dout = to_gpu(d.dout, bthd);
  const Tensor lse = exact.lse.to(DType::F32).contiguous().to(cuda());  // [B, Hq, Tq]

  for (int kernel : bwd_kernels()) {
    Grads g{nan_gpu(d.q.shape(), dt, bthd), nan_gpu(d.k.shape(), dt, bthd), nan_gpu(d.v.shape(), dt, bthd)};
    FlashBwdParams p;
    set_bhtd(q, p.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
    set_bhtd(k, p.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
    set_bhtd(v, p.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
    set_bhtd(out, p.o, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
    set_bhtd(dout, p.dout, p.do_batch_stride, p.do_row_stride, p.do_head_stride);
    set_bhtd(g.dq, p.dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride);
    set_bhtd(g.dk, p.dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride);
    set_bhtd(g.dv, p.dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride);
    p.lse = static_cast<float*>(lse.data_ptr());
    p.lse_batch_stride = lse.stride(0);
    p.lse_head_stride = lse.stride(1);
    set_flash_problem(p, s.B, s.Hq, s.Hkv, s.Tq, s.Tk, s.D, s.causal, dt);
    p.total_q = s.B * s.Tq;
    p.total_k = s.B * s.Tk;
    p.bwd_kernel = kernel;
    ASSERT_TRUE(cuda_kernels::flash_bwd_supported(p)) << what;
    run_bwd(p);
    expect_grads_close(g, exact, naive, what + kernel_name(kernel));
  }
}

TEST_F(FlashBwdTest, DenseShapesDtypesMasks) {
  // Odd lengths (partial tiles), Tq < Tk, Tq > Tk (causal rows that see no key), GQA 1 and 4, and
  // 256 rows so a CTA walks several query tiles and the grid several key tiles.
  const std::vector<AttnShape> shapes = {
      {1, 2, 2, 1, 1, 0, false},    {2, 4, 1, 65, 200, 0, false}, {1, 2, 2, 129, 129, 0, false},
      {1, 4, 1, 200, 65, 0, false}, {1, 2, 2, 7, 7, 0, false},    {2, 4, 2, 256, 256, 0, false},
  };
  uint64_t seed = 100;
  for (int64_t D : {64, 128})
    for (DType dt : {DType::BF16, DType::F16})
      for (bool causal : {false, true})
        for (AttnShape s : shapes) {
          s.D = D;
          s.causal = causal;
          check_dense(s, dt, false, ++seed);
        }
}

TEST_F(FlashBwdTest, WgmmaKernelRunsWhereAvailable) {
  if (!cuda_kernels::flash_wgmma_available())
    GTEST_SKIP() << "no wgmma backward here: it needs an sm_90a build (LLOCO_CUDA_ARCHS with 90a) and a compute "
                    "capability 9.0 device; the mma.sync kernel ran in every case";
  // Many query tiles per CTA through the two Q/dO stages, GQA 4, and key tiles past the sequence end.
  for (int64_t D : {64, 128})
    for (bool causal : {false, true}) check_dense({1, 4, 1, 333, 300, D, causal}, DType::BF16, false, 400 + D);
}

TEST_F(FlashBwdTest, RejectsUnknownKernelChoice) {
  FlashBwdParams p;
  set_flash_problem(p, 1, 2, 2, 64, 64, 64, false, DType::BF16);
  p.total_q = p.total_k = 64;
  p.lse = reinterpret_cast<float*>(16);
  p.bwd_kernel = 3;
  DeviceMem ws(256);
  try {
    cuda_kernels::launch_flash_bwd(p, ws.ptr, nullptr);
    ADD_FAILURE() << "bwd_kernel 3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bwd_kernel 3 must be 0 (automatic), 1 (mma.sync) or 2 (wgmma)"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(FlashBwdTest, TokenMajorStrides) {
  uint64_t seed = 200;
  for (int64_t D : {64, 128})
    for (bool causal : {false, true}) check_dense({2, 4, 2, 77, 140, D, causal}, DType::BF16, true, ++seed);
}

// Packed [total, H, D] sequences; each is compared with its own dense reference.
void check_varlen(const std::vector<int64_t>& lens_q, const std::vector<int64_t>& lens_k, int64_t Hq, int64_t Hkv,
                  int64_t D, bool causal, DType dt, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(lens_q.size());
  std::vector<int32_t> cu_q{0}, cu_k{0};
  for (int64_t b = 0; b < B; ++b) {
    cu_q.push_back(cu_q.back() + static_cast<int32_t>(lens_q[b]));
    cu_k.push_back(cu_k.back() + static_cast<int32_t>(lens_k[b]));
  }
  const int64_t total_q = cu_q.back(), total_k = cu_k.back();
  Tensor q = empty({total_q, Hq, D}, dt), dout = empty({total_q, Hq, D}, dt), out = empty({total_q, Hq, D}, dt);
  Tensor k = empty({total_k, Hkv, D}, dt), v = empty({total_k, Hkv, D}, dt);
  Tensor lse = empty({Hq, total_q}, DType::F32);
  std::vector<AttnOutputs> exact(B);
  std::vector<Grads> naive(B);
  auto rows = [](const Tensor& x) { return x.select(0, 0).permute({1, 0, 2}); };  // [1, H, T, D] -> [T, H, D]
  for (int64_t b = 0; b < B; ++b) {
    if (lens_q[b] == 0 || lens_k[b] == 0) {
      if (lens_k[b] > 0) {
        copy_(k.narrow(0, cu_k[b], lens_k[b]), randn({lens_k[b], Hkv, D}, seed * 16 + b, DType::F32));
        copy_(v.narrow(0, cu_k[b], lens_k[b]), randn({lens_k[b], Hkv, D}, seed * 16 + b + 8, DType::F32));
      }
      continue;
    }
    const AttnData d = random_attention_data({1, Hq, Hkv, lens_q[b], lens_k[b], D, causal}, dt, seed * 16 + b);
    exact[b] = attention_exact(d, causal, 0.0, true);
    naive[b] = naive_run(d, causal);
    copy_(q.narrow(0, cu_q[b], lens_q[b]), rows(d.q));
    copy_(k.narrow(0, cu_k[b], lens_k[b]), rows(d.k));
    copy_(v.narrow(0, cu_k[b], lens_k[b]), rows(d.v));
    copy_(dout.narrow(0, cu_q[b], lens_q[b]), rows(d.dout));
    copy_(out.narrow(0, cu_q[b], lens_q[b]), rows(exact[b].out));
    copy_(lse.narrow(1, cu_q[b], lens_q[b]), exact[b].lse.select(0, 0));
  }
  const Tensor qg = q.to(cuda()), kg = k.to(cuda()), vg = v.to(cuda()), og = out.to(cuda()), dog = dout.to(cuda());
  const Tensor lseg = lse.to(cuda());
  const Tensor cu_qg = from_vector<int32_t>(cu_q, {B + 1}, DType::I32, cuda());
  const Tensor cu_kg = from_vector<int32_t>(cu_k, {B + 1}, DType::I32, cuda());
  for (int kernel : bwd_kernels()) {
    const Tensor dq = full({total_q, Hq, D}, kNaN, dt, cuda());
    const Tensor dk = full({total_k, Hkv, D}, kNaN, dt, cuda()), dv = full({total_k, Hkv, D}, kNaN, dt, cuda());

    FlashBwdParams p;
    p.q = qg.data_ptr();
    p.k = kg.data_ptr();
    p.v = vg.data_ptr();
    p.o = og.data_ptr();
    p.dout = dog.data_ptr();
    p.dq = dq.data_ptr();
    p.dk = dk.data_ptr();
    p.dv = dv.data_ptr();
    p.q_row_stride = p.o_row_stride = p.do_row_stride = p.dq_row_stride = Hq * D;
    p.k_row_stride = p.v_row_stride = p.dk_row_stride = p.dv_row_stride = Hkv * D;
    p.q_head_stride = p.o_head_stride = p.do_head_stride = p.dq_head_stride = D;
    p.k_head_stride = p.v_head_stride = p.dk_head_stride = p.dv_head_stride = D;
    p.lse = static_cast<float*>(lseg.data_ptr());
    p.lse_head_stride = total_q;
    p.cu_seqlens_q = static_cast<const int32_t*>(cu_qg.data_ptr());
    p.cu_seqlens_k = static_cast<const int32_t*>(cu_kg.data_ptr());
    set_flash_problem(p, B, Hq, Hkv, *std::max_element(lens_q.begin(), lens_q.end()),
                      *std::max_element(lens_k.begin(), lens_k.end()), D, causal, dt);
    p.total_q = total_q;
    p.total_k = total_k;
    p.bwd_kernel = kernel;
    ASSERT_TRUE(cuda_kernels::flash_bwd_supported(p));
    run_bwd(p);

    auto seq = [](const Tensor& x, int64_t start, int64_t len) {  // [T, H, D] rows -> [1, H, T, D]
      return x.narrow(0, start, len).permute({1, 0, 2}).unsqueeze(0);
    };
    for (int64_t b = 0; b < B; ++b) {
      const std::string what = "varlen seq " + std::to_string(b) + " Tq" + std::to_string(lens_q[b]) + " Tk" +
                               std::to_string(lens_k[b]) + " D" + std::to_string(D) +
                               (causal ? " causal " : " full ") + dtype_name(dt) + kernel_name(kernel);
      if (lens_k[b] > 0 && lens_q[b] == 0) {  // keys nobody queries: gradients exactly 0
        const Tensor zero = zeros({1, Hkv, lens_k[b], D}, DType::F64);
        EXPECT_EQ(max_abs_err(seq(dk, cu_k[b], lens_k[b]), zero), 0.0) << what << " dk";
        EXPECT_EQ(max_abs_err(seq(dv, cu_k[b], lens_k[b]), zero), 0.0) << what << " dv";
        continue;
      }
      if (lens_q[b] == 0) continue;
      expect_grads_close({seq(dq, cu_q[b], lens_q[b]), seq(dk, cu_k[b], lens_k[b]), seq(dv, cu_k[b], lens_k[b])},
                         exact[b], naive[b], what);
    }
  }
}

TEST_F(FlashBwdTest, VarlenPackedSequences) {
  uint64_t seed = 300;
  for (int64_t D : {64, 128})
    for (DType dt : {DType::BF16, DType::F16})
      for (bool causal : {false, true}) {
        check_varlen({5, 0, 130, 64}, {5, 3, 150, 64}, 4, 2, D, causal, dt, ++seed);
        check_varlen({7, 200}, {129, 1}, 2, 2, D, causal, dt, ++seed);
      }
}

}  // namespace
}  // namespace lloco::cuda_test
