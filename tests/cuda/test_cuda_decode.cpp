// Split-KV decode kernel (launch_flash_decode) against the f64 CPU reference with flash-attention's
// criterion: error at most twice that of naive attention in the same dtype; lse within 1e-3; rows
// that see no key exactly 0 / -inf. K/V live in NaN-poisoned cache buffers [B, Hkv, cap, D] viewed
// to Tk keys (like a KV cache), so a read past Tk shows up as NaN. Every case runs with several
// split counts: 1, the launcher's choice, more splits than Tk / 256, and enough for empty chunks.
#include <cuda_runtime.h>

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
using FlashDecodeTest = CudaTest;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLseTol = 1e-3;

// [B, Hkv, Tk, D] values in a NaN-filled [B, Hkv, cap, D] device buffer, returned as the Tk view.
Tensor cache_view(const Tensor& kv, int64_t cap) {
  Tensor buf = full({kv.size(0), kv.size(1), cap, kv.size(3)}, kNaN, kv.dtype(), cuda());
  Tensor view = buf.narrow(2, 0, kv.size(2));
  copy_(view, kv.to(cuda()));
  return view;
}

void expect_empty_rows_zero(const Tensor& out, const Tensor& lse_exact) {
  const std::vector<double> o = out.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> l = lse_exact.to(DType::F64).contiguous().to_vector<double>();
  const size_t D = static_cast<size_t>(out.size(3));
  for (size_t r = 0; r < l.size(); ++r) {
    if (!std::isinf(l[r])) continue;
    for (size_t d = 0; d < D; ++d) ASSERT_EQ(o[r * D + d], 0.0) << "row " << r << " sees no key, out[" << d << "]";
  }
}

void run_decode(const AttnShape& s, DType dt, int64_t cap, uint64_t seed) {
  const std::string what = s.str() + (dt == DType::BF16 ? " bf16" : " f16") + " cap " + std::to_string(cap);
  SCOPED_TRACE(what);
  const AttnData data = random_attention_data(s, dt, seed);
  const Tensor q = data.q.to(cuda());
  const Tensor k = cache_view(data.k, cap), v = cache_view(data.v, cap);
  const AttnOutputs exact = attention_exact(data, s.causal, 0.0, false);
  const AttnOutputs plain = attention_plain(data, s.causal, 0.0, false);
  const double err_plain = max_abs_err(plain.out, exact.out);

  FlashParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  set_flash_problem(p, s.B, s.Hq, s.Hkv, s.Tq, s.Tk, s.D, s.causal, dt);
  ASSERT_TRUE(cuda_kernels::flash_decode_supported(p));

  const int chosen = cuda_kernels::flash_decode_num_splits(p, cuda_kernels::device_sm_count());
  ASSERT_GE(chosen, 1);
  const int past_min_chunk = static_cast<int>(s.Tk / 256) + 3;  // chunks shorter than 256 keys
  const int with_empty = static_cast<int>((s.Tk + 31) / 32) + 5;  // more splits than tiles: empty chunks
  for (int splits : {1, chosen, past_min_chunk, with_empty}) {
    SCOPED_TRACE("splits " + std::to_string(splits));
    const Tensor out = full({s.B, s.Hq, s.Tq, s.D}, kNaN, dt, cuda());
    const Tensor lse = full({s.B, s.Hq, s.Tq}, kNaN, DType::F32, cuda());
    p.o = out.data_ptr();
    p.o_batch_stride = out.stride(0), p.o_head_stride = out.stride(1), p.o_row_stride = out.stride(2);
    p.lse = static_cast<float*>(lse.data_ptr());
    p.lse_batch_stride = lse.stride(0), p.lse_head_stride = lse.stride(1);
    DeviceMem ws(cuda_kernels::flash_decode_workspace_bytes(p, splits));
    cuda_kernels::launch_flash_decode(p, splits, ws.ptr, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_LE(max_abs_err(out, exact.out), 2 * err_plain + 1e-4) << "out; naive error " << err_plain;
    EXPECT_LE(max_abs_err(lse, exact.lse), kLseTol) << "lse";
    expect_empty_rows_zero(out, exact.lse);
  }
}

TEST_F(FlashDecodeTest, ShapesGroupsAndSplitsMatchReference) {
  const int64_t groups[] = {1, 4, 8};
  uint64_t seed = 500;
  int i = 0;
  for (int64_t D : {64, 128})
    for (int64_t Tq : {1, 3, 16})
      for (int64_t Tk : {1, 17, 300, 4097}) {
        const int64_t G = groups[i % 3], Hkv = 2, B = Tk > 1000 ? 1 : 2;
        const bool causal = i % 2 == 1;
        const DType dt = (i / 2) % 2 == 0 ? DType::BF16 : DType::F16;
        const int64_t cap = i % 2 == 0 ? Tk : Tk + 13;  // a capacity stride on every other case
        run_decode({B, G * Hkv, Hkv, Tq, Tk, D, causal}, dt, cap, ++seed);
        ++i;
      }
}

TEST_F(FlashDecodeTest, CausalRowsWithoutKeys) {
  // Tq > Tk under bottom-right causal masking: the first Tq - Tk queries see nothing.
  run_decode({2, 8, 2, 16, 5, 128, true}, DType::BF16, 40, 7);
  run_decode({1, 4, 4, 9, 3, 64, true}, DType::F16, 3, 8);
}

TEST_F(FlashDecodeTest, GenericHeadDims) {
  // Multiples of 8 that the tensor-core kernels lack run on the next-wider variant.
  run_decode({1, 8, 2, 2, 700, 80, true}, DType::BF16, 720, 11);
  run_decode({2, 4, 1, 1, 513, 256, false}, DType::F16, 513, 12);
  run_decode({1, 2, 2, 4, 300, 8, true}, DType::BF16, 301, 13);
}

// Host-side predicates only: runs without a GPU too.
TEST(FlashDecodePolicy, SupportAndSplitPolicy) {
  FlashParams p;
  alignas(16) static char dummy[16] = {};
  p.q = p.k = p.v = p.o = dummy;
  p.batch = 1, p.heads_q = 32, p.heads_kv = 8, p.seqlen_q = 1, p.seqlen_k = 32768, p.head_dim = 128;
  p.q_batch_stride = 32 * 128, p.q_head_stride = 128, p.q_row_stride = 32 * 128;
  p.k_batch_stride = 8 * 32768 * 128, p.k_head_stride = 32768 * 128, p.k_row_stride = 128;
  p.v_batch_stride = p.k_batch_stride, p.v_head_stride = p.k_head_stride, p.v_row_stride = p.k_row_stride;
  EXPECT_TRUE(cuda_kernels::flash_decode_supported(p));
  // 8 kv heads on 132 SMs: enough splits for ~2 CTAs per SM, chunks of at least 256 keys.
  const int splits = cuda_kernels::flash_decode_num_splits(p, 132);
  EXPECT_GE(splits * 8, 2 * 132 - 8);
  EXPECT_LE(splits, 32768 / 256);
  // A full grid needs no split; short caches are not split below 256 keys per chunk.
  p.batch = 64;
  EXPECT_EQ(cuda_kernels::flash_decode_num_splits(p, 132), 1);
  p.batch = 1, p.seqlen_k = 600;
  EXPECT_LE(cuda_kernels::flash_decode_num_splits(p, 132), 2);
  p.seqlen_k = 32768;

  FlashParams bad = p;
  bad.seqlen_q = cuda_kernels::kFlashDecodeMaxQ + 1;
  EXPECT_FALSE(cuda_kernels::flash_decode_supported(bad));
  bad = p;
  bad.head_dim = 100;  // not a multiple of 8
  EXPECT_FALSE(cuda_kernels::flash_decode_supported(bad));
  bad = p;
  bad.k_row_stride = 132;  // rows not 16-byte aligned
  EXPECT_FALSE(cuda_kernels::flash_decode_supported(bad));
  bad = p;
  static const int32_t cu[2] = {0, 1};
  bad.cu_seqlens_q = bad.cu_seqlens_k = cu;  // varlen is the flash kernels' job
  EXPECT_FALSE(cuda_kernels::flash_decode_supported(bad));
}

}  // namespace
}  // namespace lloco::cuda_test
