// Launcher-level tests of the tensor-core flash-attention forwards (cuda/kernels/flash_fwd.cu on
// mma.sync in both query tilings, flash_fwd_sm90.cu on wgmma where the build and device have it):
// FlashParams filled by hand for [B, H, T, D] and [B, T, H, D] tensors and for packed varlen
// batches, outputs pre-filled with NaN, judged against the f64 CPU reference the way
// flash-attention's own tests do: error at most twice that of naive attention in the same dtype.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/ops.h"
#include "cuda/common.h"
#include "cuda/kernels/flash.h"
#include "tests/cuda/attention_ref.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using cuda_kernels::FlashParams;
using FlashFwdTest = CudaTest;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLseTol = 1e-3;

enum class QkvLayout { BHTD, BTHD };

// A forward kernel and tiling (FlashParams::fwd_kernel / fwd_block_m; 0 = the launcher's choice).
struct FwdVariant {
  int kernel, block_m, block_n = 0;
  std::string name() const {
    if (kernel == 2) return "wgmma block_n " + std::to_string(block_n);
    return (kernel == 1 ? "mma.sync" : "auto") + std::string(" block_m ") + std::to_string(block_m);
  }
};

// Every variant this build and device can run: the wgmma kernel needs an sm_90a build on a compute
// capability 9.0 device (WgmmaKernelRunsWhereAvailable reports when it is absent).
std::vector<FwdVariant> variants() {
  std::vector<FwdVariant> v{{1, 64}, {1, 128}};
  if (cuda_kernels::flash_wgmma_available()) {
    v.push_back({2, 0, 64});  // hd128's 64-key tiles (hd64 takes 128 keys either way)
    v.push_back({2, 0, 0});   // the default: 128-key tiles
  }
  return v;
}

// Strides (batch, row, head) of a contiguous tensor in `layout` order with the given sizes.
void strides_of(QkvLayout layout, int64_t H, int64_t T, int64_t D, int64_t& batch, int64_t& row, int64_t& head) {
  batch = H * T * D;
  if (layout == QkvLayout::BHTD) {
    head = T * D;
    row = D;
  } else {
    row = H * D;
    head = D;
  }
}

// [B, H, T, D] CPU tensor -> device tensor stored in `layout` order (contiguous).
Tensor to_device(const Tensor& bhtd, QkvLayout layout) {
  Tensor t = layout == QkvLayout::BHTD ? bhtd : bhtd.transpose(1, 2).contiguous();
  return t.contiguous().to(cuda());
}

// Back to a [B, H, T, D] view for comparisons.
Tensor as_bhtd(const Tensor& t, QkvLayout layout) { return layout == QkvLayout::BHTD ? t : t.transpose(1, 2); }

// Rows whose exact lse is -inf see no key: their output must be exactly 0.
void expect_empty_rows_zero(const Tensor& out_bhtd, const Tensor& lse_exact, const std::string& what) {
  const std::vector<double> out = out_bhtd.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> lse = lse_exact.to(DType::F64).contiguous().to_vector<double>();
  const size_t D = static_cast<size_t>(out_bhtd.size(3));
  for (size_t r = 0; r < lse.size(); ++r) {
    if (!std::isinf(lse[r])) continue;
    for (size_t d = 0; d < D; ++d) {
      ASSERT_EQ(out[r * D + d], 0.0) << what << ": row " << r << " sees no key but out[" << d << "] is nonzero";
    }
  }
}

void run_dense(const AttnShape& s, DType dt, QkvLayout layout, uint64_t seed, FwdVariant variant = {0, 0}) {
  const std::string what = s.str() + (dt == DType::BF16 ? " bf16" : " f16") +
                           (layout == QkvLayout::BHTD ? " [B,H,T,D]" : " [B,T,H,D]") + " " + variant.name();
  SCOPED_TRACE(what);
  const AttnData data = random_attention_data(s, dt, seed);
  const Tensor q = to_device(data.q, layout), k = to_device(data.k, layout), v = to_device(data.v, layout);
  const Shape out_shape = layout == QkvLayout::BHTD ? Shape{s.B, s.Hq, s.Tq, s.D} : Shape{s.B, s.Tq, s.Hq, s.D};
  const Tensor out = full(out_shape, kNaN, dt).to(cuda());
  const Tensor lse = full({s.B, s.Hq, s.Tq}, kNaN, DType::F32).to(cuda());

  FlashParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = out.data_ptr();
  strides_of(layout, s.Hq, s.Tq, s.D, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  strides_of(layout, s.Hkv, s.Tk, s.D, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
  strides_of(layout, s.Hkv, s.Tk, s.D, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
  strides_of(layout, s.Hq, s.Tq, s.D, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  p.lse = static_cast<float*>(lse.data_ptr());
  p.lse_batch_stride = s.Hq * s.Tq;
  p.lse_head_stride = s.Tq;
  set_flash_problem(p, s.B, s.Hq, s.Hkv, s.Tq, s.Tk, s.D, s.causal, dt);
  p.fwd_kernel = variant.kernel;
  p.fwd_block_m = variant.block_m;
  p.fwd_block_n = variant.block_n;
  ASSERT_TRUE(cuda_kernels::flash_supported(p));
  cuda_kernels::launch_flash_fwd(p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  const AttnOutputs exact = attention_exact(data, s.causal, 0.0, false);
  const AttnOutputs plain = attention_plain(data, s.causal, 0.0, false);
  const Tensor got = as_bhtd(out, layout);
  const double err = max_abs_err(got, exact.out), err_plain = max_abs_err(plain.out, exact.out);
  EXPECT_LE(err, 2 * err_plain + 1e-4) << "out error vs naive " << err_plain;
  EXPECT_LE(max_abs_err(lse, exact.lse), kLseTol) << "lse";
  expect_empty_rows_zero(got, exact.lse, what);
}

TEST_F(FlashFwdTest, DenseShapesMatchReference) {
  struct Case {
    int64_t B, Hq, Hkv, Tq, Tk;
  };
  // Tq == Tk, a decode-like Tq < Tk, Tq > Tk (causal rows that see nothing), ragged tails around
  // every tile size (64 or 128 query rows; 64 or 128 keys), and GQA groups of 4. Every kernel
  // variant runs on every case, whatever the device would choose.
  const Case cases[] = {{1, 2, 2, 1, 1},    {2, 2, 2, 7, 7},    {1, 4, 1, 63, 65},  {3, 2, 2, 65, 65},
                        {1, 4, 1, 129, 129}, {1, 2, 2, 5, 300},  {1, 2, 2, 300, 37}, {2, 4, 1, 128, 256},
                        {1, 2, 2, 64, 128}};
  uint64_t seed = 100;
  for (int64_t D : {64, 128})
    for (DType dt : {DType::BF16, DType::F16})
      for (bool causal : {false, true})
        for (const Case& c : cases) {
          const AttnShape s{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, D, causal};
          const QkvLayout layout = (seed % 2 == 0) ? QkvLayout::BHTD : QkvLayout::BTHD;
          ++seed;
          for (const FwdVariant& v : variants()) run_dense(s, dt, layout, seed, v);
        }
}

TEST_F(FlashFwdTest, BothLayoutsOnOneShape) {
  for (QkvLayout layout : {QkvLayout::BHTD, QkvLayout::BTHD})
    for (int64_t D : {64, 128}) run_dense({2, 4, 2, 100, 150, D, true}, DType::BF16, layout, 7);
}

TEST_F(FlashFwdTest, AutomaticChoicesMatchReference) {
  // The launcher picks the kernel, and the mma.sync kernel its tiling, for this device and grid (a
  // small grid and one big enough for 128-row tiles on 132 SMs).
  for (FwdVariant v : {FwdVariant{0, 0}, FwdVariant{1, 0}}) {
    run_dense({1, 2, 2, 77, 77, 128, true}, DType::BF16, QkvLayout::BTHD, 11, v);
    run_dense({4, 16, 4, 520, 24, 64, false}, DType::F16, QkvLayout::BHTD, 12, v);
  }
}

TEST_F(FlashFwdTest, WgmmaKernelRunsWhereAvailable) {
  if (!cuda_kernels::flash_wgmma_available())
    GTEST_SKIP() << "no wgmma forward here: it needs an sm_90a build (LLOCO_CUDA_ARCHS with 90a) and a compute "
                    "capability 9.0 device; the mma.sync variants ran above";
  // Longer key loops than the table above: several tiles through the 2 K / 3 V stage rings.
  for (int64_t D : {64, 128})
    for (bool causal : {false, true})
      for (int block_n : {64, 128})
        run_dense({1, 2, 1, 300, 700, D, causal}, DType::BF16, QkvLayout::BTHD, 13 + D, FwdVariant{2, 0, block_n});
}

TEST_F(FlashFwdTest, KeylessBatchGivesZeroAndNegInf) {
  // seqlen_k == 0: every row sees nothing.
  const int64_t Hq = 2, Tq = 70, D = 64;
  const Tensor q = randn({1, Hq, Tq, D}, 3, DType::F32).to(DType::BF16).to(cuda());
  const Tensor kv = zeros({1, Hq, 8, D}, DType::BF16).to(cuda());  // valid pointers, never read
  const Tensor out = full({1, Hq, Tq, D}, kNaN, DType::BF16).to(cuda());
  const Tensor lse = full({1, Hq, Tq}, kNaN, DType::F32).to(cuda());
  FlashParams p;
  p.q = q.data_ptr();
  p.k = p.v = kv.data_ptr();
  p.o = out.data_ptr();
  strides_of(QkvLayout::BHTD, Hq, Tq, D, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  strides_of(QkvLayout::BHTD, Hq, 8, D, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
  strides_of(QkvLayout::BHTD, Hq, 8, D, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
  strides_of(QkvLayout::BHTD, Hq, Tq, D, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  p.lse = static_cast<float*>(lse.data_ptr());
  p.lse_batch_stride = Hq * Tq;
  p.lse_head_stride = Tq;
  set_flash_problem(p, 1, Hq, Hq, Tq, 0, D, false, DType::BF16);
  for (const FwdVariant& v : variants())
    for (bool causal : {false, true}) {
      p.causal = causal;
      p.fwd_kernel = v.kernel;
      p.fwd_block_m = v.block_m;
      p.fwd_block_n = v.block_n;
      cuda_kernels::launch_flash_fwd(p, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      for (double x : out.to(lloco::cpu()).to_vector<double>()) ASSERT_EQ(x, 0.0);
      for (double x : lse.to(lloco::cpu()).to_vector<double>())
        ASSERT_EQ(x, -std::numeric_limits<double>::infinity());
    }
}

// Packed sequences: q [total_q, Hq, D], k/v [total_k, Hkv, D], lse [Hq, total_q], cu_seqlens on
// the device; each sequence is compared to the reference of that sequence alone.
void run_varlen(const std::vector<int64_t>& lens_q, const std::vector<int64_t>& lens_k, int64_t Hq, int64_t Hkv,
                int64_t D, bool causal, DType dt, uint64_t seed, FwdVariant variant) {
  const size_t B = lens_q.size();
  std::vector<int32_t> cu_q{0}, cu_k{0};
  for (size_t b = 0; b < B; ++b) {
    cu_q.push_back(cu_q.back() + static_cast<int32_t>(lens_q[b]));
    cu_k.push_back(cu_k.back() + static_cast<int32_t>(lens_k[b]));
  }
  const int64_t total_q = cu_q.back(), total_k = cu_k.back();
  Tensor q = empty({total_q, Hq, D}, dt), k = empty({total_k, Hkv, D}, dt), v = empty({total_k, Hkv, D}, dt);
  std::vector<AttnData> seqs;
  for (size_t b = 0; b < B; ++b) {
    seqs.push_back(random_attention_data({1, Hq, Hkv, lens_q[b], lens_k[b], D, causal}, dt, seed + b));
    if (lens_q[b] > 0) copy_(q.narrow(0, cu_q[b], lens_q[b]), seqs[b].q.select(0, 0).transpose(0, 1));
    if (lens_k[b] > 0) {
      copy_(k.narrow(0, cu_k[b], lens_k[b]), seqs[b].k.select(0, 0).transpose(0, 1));
      copy_(v.narrow(0, cu_k[b], lens_k[b]), seqs[b].v.select(0, 0).transpose(0, 1));
    }
  }
  const Tensor q_d = q.to(cuda()), k_d = k.to(cuda()), v_d = v.to(cuda());
  const Tensor cu_q_d = from_vector(cu_q, {static_cast<int64_t>(B + 1)}, DType::I32, cuda());
  const Tensor cu_k_d = from_vector(cu_k, {static_cast<int64_t>(B + 1)}, DType::I32, cuda());
  const Tensor out = full({total_q, Hq, D}, kNaN, dt).to(cuda());
  const Tensor lse = full({Hq, total_q}, kNaN, DType::F32).to(cuda());

  FlashParams p;
  p.q = q_d.data_ptr();
  p.k = k_d.data_ptr();
  p.v = v_d.data_ptr();
  p.o = out.data_ptr();
  p.q_row_stride = p.o_row_stride = Hq * D;
  p.k_row_stride = p.v_row_stride = Hkv * D;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = D;
  p.lse = static_cast<float*>(lse.data_ptr());
  p.lse_head_stride = total_q;
  p.cu_seqlens_q = static_cast<const int32_t*>(cu_q_d.data_ptr());
  p.cu_seqlens_k = static_cast<const int32_t*>(cu_k_d.data_ptr());
  set_flash_problem(p, static_cast<int64_t>(B), Hq, Hkv, *std::max_element(lens_q.begin(), lens_q.end()),
                    *std::max_element(lens_k.begin(), lens_k.end()), D, causal, dt);
  p.fwd_kernel = variant.kernel;
  p.fwd_block_m = variant.block_m;
  p.fwd_block_n = variant.block_n;
  ASSERT_TRUE(cuda_kernels::flash_supported(p));
  cuda_kernels::launch_flash_fwd(p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  const Tensor out_h = out.to(cpu()), lse_h = lse.to(cpu());
  for (size_t b = 0; b < B; ++b) {
    const int64_t Tq = lens_q[b];
    if (Tq == 0) continue;
    const std::string what = "varlen " + variant.name() + " seq " + std::to_string(b) + " Tq " + std::to_string(Tq) +
                             " Tk " + std::to_string(lens_k[b]) + " D " + std::to_string(D) + (causal ? " causal" : "");
    SCOPED_TRACE(what);
    const Tensor got = out_h.narrow(0, cu_q[b], Tq).transpose(0, 1).unsqueeze(0);  // [1, Hq, Tq, D]
    const Tensor got_lse = lse_h.narrow(1, cu_q[b], Tq).unsqueeze(0);              // [1, Hq, Tq]
    if (lens_k[b] == 0) {  // no keys at all: nothing to reference, the answer is 0 / -inf
      for (double x : got.contiguous().to_vector<double>()) ASSERT_EQ(x, 0.0);
      for (double x : got_lse.contiguous().to_vector<double>())
        ASSERT_EQ(x, -std::numeric_limits<double>::infinity());
      continue;
    }
    const AttnOutputs exact = attention_exact(seqs[b], causal, 0.0, false);
    const AttnOutputs plain = attention_plain(seqs[b], causal, 0.0, false);
    const double err = max_abs_err(got, exact.out), err_plain = max_abs_err(plain.out, exact.out);
    EXPECT_LE(err, 2 * err_plain + 1e-4) << "out error vs naive " << err_plain;
    EXPECT_LE(max_abs_err(got_lse, exact.lse), kLseTol) << "lse";
    expect_empty_rows_zero(got, exact.lse, what);
  }
}

TEST_F(FlashFwdTest, VarlenBatchMatchesPerSequenceReference) {
  uint64_t seed = 500;
  for (const FwdVariant& v : variants())
    for (int64_t D : {64, 128})
      for (bool causal : {false, true}) {
        run_varlen({1, 37, 128, 0, 200}, {1, 37, 128, 0, 200}, 4, 1, D, causal, DType::BF16, seed += 10, v);
        // Different q/k lengths: decode-like prefixes, rows that see nothing, a sequence without keys.
        run_varlen({3, 70, 130, 4}, {40, 20, 129, 0}, 2, 2, D, causal, DType::F16, seed += 10, v);
      }
}

TEST_F(FlashFwdTest, RejectsUnsupportedProblems) {
  const Tensor t = zeros({1, 2, 16, 64}, DType::BF16).to(cuda());
  FlashParams p;
  p.q = p.k = p.v = t.data_ptr();
  p.o = t.data_ptr();
  strides_of(QkvLayout::BHTD, 2, 16, 64, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = p.q_batch_stride;
  p.k_row_stride = p.v_row_stride = p.o_row_stride = p.q_row_stride;
  p.k_head_stride = p.v_head_stride = p.o_head_stride = p.q_head_stride;
  p.batch = 1;
  p.heads_q = p.heads_kv = 2;
  p.seqlen_q = p.seqlen_k = 16;
  p.head_dim = 64;
  EXPECT_TRUE(cuda_kernels::flash_supported(p));
  FlashParams bad = p;
  bad.head_dim = 96;
  EXPECT_FALSE(cuda_kernels::flash_supported(bad));
  bad = p;
  bad.q_row_stride = 68;  // rows no longer start on 16 bytes
  EXPECT_FALSE(cuda_kernels::flash_supported(bad));
  bad = p;
  bad.k = static_cast<const char*>(p.k) + 2;
  EXPECT_FALSE(cuda_kernels::flash_supported(bad));
  bad = p;
  bad.heads_q = 3;
  bad.heads_kv = 2;
  EXPECT_FALSE(cuda_kernels::flash_supported(bad));
  bad = p;
  bad.head_dim = 96;
  EXPECT_THROW(cuda_kernels::launch_flash_fwd(bad, nullptr), Error);
  bad = p;
  bad.fwd_block_m = 96;  // a supported problem, but no such tiling
  EXPECT_THROW(cuda_kernels::launch_flash_fwd(bad, nullptr), Error);
  bad = p;
  bad.fwd_kernel = 3;  // no such kernel
  EXPECT_THROW(cuda_kernels::launch_flash_fwd(bad, nullptr), Error);
  bad = p;
  bad.fwd_block_n = 96;  // no such key tile
  EXPECT_THROW(cuda_kernels::launch_flash_fwd(bad, nullptr), Error);
}

}  // namespace
}  // namespace lloco::cuda_test
