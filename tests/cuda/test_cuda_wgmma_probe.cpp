// The wgmma primitives on their own (cuda/kernels/wgmma_probe.cu): one warpgroup multiplies a
// 64 x k A operand (register fragments, or a K-major or M-major shared-memory tile) by a k x n B tile
// that sits in shared memory in the wgmma flash kernels' layouts, K-major (like K) and N-major (like
// V), for both instruction widths and both 16-bit types.
// Small integer inputs make every product and sum exact, so the result must equal the host matmul
// exactly; a wrong fragment, swizzle or descriptor field shows up here by operand.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "cuda/kernels/flash.h"
#include "cuda/kernels/wgmma_probe.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using WgmmaTest = CudaTest;

// "" when got (f32 [64, n]) equals want exactly; else the count of wrong elements and, for the
// first few, where else in `want` their value occurs: a misread layout shows up as a pattern there
// (rows swapped within 8, columns shifted by a swizzle chunk, the transpose), a hint for the first
// hardware run.
std::string describe_mismatches(const std::vector<uint8_t>& got, const std::vector<double>& want, int n) {
  std::string out;
  int wrong = 0;
  for (int e = 0; e < 64 * n; ++e) {
    const double g = value_of(got.data(), DType::F32, e);
    if (g == want[e]) continue;
    if (++wrong > 4) continue;
    out += "\n  D[" + std::to_string(e / n) + "][" + std::to_string(e % n) + "] = " + std::to_string(g) + ", want " +
           std::to_string(want[e]) + "; that value is want at";
    int listed = 0;
    for (int f = 0; f < 64 * n && listed < 4; ++f)
      if (want[f] == g) {
        out += " [" + std::to_string(f / n) + "][" + std::to_string(f % n) + "]";
        ++listed;
      }
    if (listed == 0) out += " no position";
  }
  if (wrong == 0) return "";
  return std::to_string(wrong) + " of " + std::to_string(64 * n) + " elements wrong:" + out;
}

TEST_F(WgmmaTest, ProbeGemmMatchesHostMatmul) {
  if (!cuda_kernels::flash_wgmma_available())
    GTEST_SKIP() << "no wgmma here: it needs an sm_90a build (LLOCO_CUDA_ARCHS with 90a) and a compute capability "
                    "9.0 device";
  std::uniform_int_distribution<int> small(-4, 4);
  for (DType dt : {DType::BF16, DType::F16})
    for (int n : {64, 128})
      for (bool n_major : {false, true})
        for (int k : {16, 64, 128})
          for (int a_layout : {0, 1, 2}) {
            const char* const kANames[] = {", A in registers", ", K-major A", ", M-major A"};
            const std::string what = std::string(dtype_name(dt)) + " n " + std::to_string(n) + " k " +
                                     std::to_string(k) + (n_major ? " N-major B" : " K-major B") + kANames[a_layout];
            SCOPED_TRACE(what);
            std::vector<double> a(64 * k), bkn(static_cast<size_t>(k) * n);  // B as [k, n]
            for (double& x : a) x = small(rng());
            for (double& x : bkn) x = small(rng());
            // The probe reads b as [k, n] when N-major, else as [n, k] (B transposed).
            Buf a_buf = make_input({64, k}, dt, Layout::Contig, [&](int64_t i) { return a[i]; });
            Buf at_buf = make_input({k, 64}, dt, Layout::Contig, [&](int64_t i) { return a[(i % 64) * k + i / 64]; });
            Buf b_buf = n_major ? make_input({k, n}, dt, Layout::Contig, [&](int64_t i) { return bkn[i]; })
                                : make_input({n, k}, dt, Layout::Contig,
                                             [&](int64_t i) { return bkn[(i % k) * n + i / k]; });
            Buf d_buf = make_output({64, n}, DType::F32);
            cuda_kernels::launch_wgmma_probe(a_buf.dev.ptr, at_buf.dev.ptr, b_buf.dev.ptr,
                                             static_cast<float*>(d_buf.dev.ptr), n, k, n_major, a_layout,
                                             dt == DType::BF16, nullptr);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
            const std::vector<uint8_t> got = d_buf.download();
            std::vector<double> want(static_cast<size_t>(64) * n, 0.0);
            for (int i = 0; i < 64; ++i)
              for (int j = 0; j < n; ++j)
                for (int kk = 0; kk < k; ++kk) want[i * n + j] += a[i * k + kk] * bkn[static_cast<size_t>(kk) * n + j];
            const std::string wrong = describe_mismatches(got, want, n);
            ASSERT_TRUE(wrong.empty()) << wrong;
          }
}

TEST_F(WgmmaTest, ProbeRejectsUnsupportedShapes) {
  if (!cuda_kernels::flash_wgmma_available())
    GTEST_SKIP() << "no wgmma here (see ProbeGemmMatchesHostMatmul)";
  using cuda_kernels::launch_wgmma_probe;
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 96, 16, false, 0, true, nullptr), Error);
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 64, 24, false, 0, true, nullptr), Error);
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 64, 256, true, 0, true, nullptr), Error);
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 64, 96, true, 1, true, nullptr), Error);
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 64, 64, true, 3, true, nullptr), Error);
  EXPECT_THROW(launch_wgmma_probe(nullptr, nullptr, nullptr, nullptr, 64, 64, true, 2, true, nullptr), Error);
}

}  // namespace
}  // namespace lloco::cuda_test
