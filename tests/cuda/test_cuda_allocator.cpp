// Caching allocator: steady-state loops must not call cudaMalloc, blocks are reused per stream,
// cross-stream frees wait for the freeing stream, and empty_cache returns memory.
#include <vector>

#include "cuda/allocator.h"
#include "cuda/cuda.h"
#include "cuda/stream.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using AllocatorTest = CudaTest;

TEST_F(AllocatorTest, SteadyStateLoopDoesNoCudaMalloc) {
  CachingAllocator a;
  const std::vector<size_t> sizes = {1, 511, 513, 4096, 100000, 1 << 20, (1 << 20) + 1, 3 << 20, 50 << 20};
  auto iteration = [&] {
    std::vector<std::pair<void*, size_t>> live;
    for (size_t s : sizes) live.emplace_back(a.allocate(s, Stream{}), s);
    for (size_t i = 0; i < live.size(); i += 2) a.deallocate(live[i].first, live[i].second, Stream{});
    for (size_t s : sizes) live.emplace_back(a.allocate(s / 2 + 1, Stream{}), s / 2 + 1);
    for (size_t i = 1; i < live.size(); ++i)
      if (i % 2 == 1 || i >= sizes.size()) a.deallocate(live[i].first, live[i].second, Stream{});
  };
  iteration();
  const uint64_t warm = a.stats().num_cuda_mallocs;
  EXPECT_GT(warm, 0u);
  for (int i = 0; i < 100; ++i) iteration();
  EXPECT_EQ(a.stats().num_cuda_mallocs, warm) << "steady-state allocations reached cudaMalloc";
  EXPECT_EQ(a.stats().current_bytes, 0u);
  EXPECT_GT(a.stats().peak_bytes, size_t{50} << 20);
}

TEST_F(AllocatorTest, SmallBlocksShareSegmentsAndRoundTo512) {
  CachingAllocator a;
  std::vector<void*> ps;
  for (int i = 0; i < 64; ++i) ps.push_back(a.allocate(1000, Stream{}));  // 64 x 1 KiB in one 2 MiB segment
  EXPECT_EQ(a.stats().num_cuda_mallocs, 1u);
  EXPECT_EQ(a.stats().current_bytes, 64u * 1024u);
  // Blocks sit at multiples of 512 B inside a segment; cudaMalloc itself promises 256 B alignment.
  for (void* p : ps) EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  for (void* p : ps) EXPECT_EQ((reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(ps[0])) % 512, 0u);
  for (void* p : ps) a.deallocate(p, 1000, Stream{});
  EXPECT_EQ(a.stats().reserved_bytes, size_t{2} << 20);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_EQ(a.stats().num_cuda_frees, 1u);
}

TEST_F(AllocatorTest, BlocksAreReusedOnTheirStreamAndAfterCrossStreamFree) {
  CachingAllocator a;
  CudaStream s1, s2;
  void* p = a.allocate(1 << 22, s1.handle());
  a.deallocate(p, 1 << 22, s1.handle());
  EXPECT_EQ(a.allocate(1 << 22, s1.handle()), p) << "same-stream reuse";
  void* q = a.allocate(1 << 22, s2.handle());
  EXPECT_NE(q, p) << "a block cached for stream 1 must not serve stream 2";
  a.deallocate(p, 1 << 22, s2.handle());  // freed from another stream: waits for s2's work
  s2.synchronize();
  void* r = a.allocate(1 << 22, s1.handle());
  EXPECT_EQ(r, p) << "cross-stream free becomes reusable once the event completes";
  a.deallocate(r, 1 << 22, s1.handle());
  a.deallocate(q, 1 << 22, s2.handle());
}

TEST_F(AllocatorTest, BackendOpsReachSteadyState) {
  // Workspaces of fused backward kernels come from the registered allocator; a training-like loop
  // must settle after its first iteration.
  Buf x = make_input({64, 512}, DType::BF16), w = make_input({512}, DType::BF16), dy = make_input({64, 512}, DType::BF16);
  Buf out = make_output({64, 512}, DType::BF16), rstd = make_output({64}, DType::F32);
  Buf dx = make_output({64, 512}, DType::BF16), dw = make_output({512}, DType::BF16);
  Buf c = make_output({1, 64, 64}, DType::BF16);
  TensorRef a3 = x.dref(), b3 = x.dref(), c3 = c.dref();
  a3.ndim = b3.ndim = 3;
  a3.shape[0] = b3.shape[0] = 1;
  a3.shape[1] = 64;
  a3.shape[2] = 512;
  a3.strides[0] = b3.strides[0] = 64 * 512;
  a3.strides[1] = 512;
  a3.strides[2] = 1;
  b3.shape[1] = 512;  // x^T: [512, 64] view
  b3.shape[2] = 64;
  b3.strides[1] = 1;
  b3.strides[2] = 512;
  auto step = [&] {
    gpu().rms_norm_fwd(out.dref(), rstd.dref(), x.dref(), w.dref(), 1e-5, stream());
    gpu().rms_norm_bwd(dx.dref(), dw.dref(), dy.dref(), x.dref(), w.dref(), rstd.dref(), stream());
    gpu().matmul(c3, a3, b3, stream());
  };
  step();
  gpu().synchronize(stream());
  const uint64_t warm = cuda_allocator_stats().num_cuda_mallocs;
  for (int i = 0; i < 20; ++i) step();
  gpu().synchronize(stream());
  EXPECT_EQ(cuda_allocator_stats().num_cuda_mallocs, warm);
}

}  // namespace
}  // namespace lloco::cuda_test
