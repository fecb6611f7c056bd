// simt emulation of the Hopper warpgroup MMA that flash_wgmma.cuh issues as inline PTX:
// wgmma.mma_async.sync.aligned.m64n{64,128}k16.f32.{bf16,f16} with A in registers or in shared
// memory (K-major or M-major) and B in shared memory (128-byte-swizzle descriptors), wgmma.fence /
// commit_group / wait_group, and fence.proxy.async. The layouts follow the PTX ISA ("Asynchronous
// Warpgroup Level Matrix Instructions"), written independently of the kernel wrappers' comments.
//
// The asynchrony is modelled so that protocol mistakes show: a wgmma computes when the warpgroup's
// last thread issues it (reading shared memory then), but its result reaches the accumulators only
// at the wait_group that retires its commit group; until then the registers hold NaN. Reported as
// errors: a wgmma without a wgmma.fence since the start or the last wait_group, a thread exiting with
// results never retired, a cp.async into shared memory an in-flight wgmma reads, a wgmma reading
// shared memory that a cp.async has not written yet (no wait_group) or that some thread's cp.async
// or shared_store_for_wgmma wrote without a later fence.proxy.async, a shared_store_for_wgmma into
// memory an in-flight wgmma reads, mismatched
// warpgroup collectives and descriptors other than 128-byte swizzle with base offset 0.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/simt/engine.h"

namespace lloco::simt {

void wgmma_fence();
void wgmma_commit_group();
void wgmma_wait_group(int pending);
void fence_proxy_async();

// The non-template part of wgmma_rs (n = N; d has N / 2 accumulators).
void wgmma_issue(int n, bool bf16, float* d, const uint32_t* a, uint64_t desc_b, bool accumulate, bool trans_b);

// The non-template part of wgmma_ss: A from shared memory through desc_a (trans_a: M-major).
void wgmma_issue_ss(int n, bool bf16, float* d, uint64_t desc_a, uint64_t desc_b, bool accumulate, bool trans_a,
                    bool trans_b);

// st.shared of `bytes` (4 or 16) at shared address `addr` that a wgmma will read: a generic-proxy
// write, so it needs the writer's fence.proxy.async before the barrier that publishes it, and it
// must not land in memory an in-flight wgmma still reads.
void shared_store_for_wgmma(uint32_t addr, const void* src, int bytes);

// D (64 x N) = A (64 x 16) * B (16 x N) + (accumulate ? D : 0) for the calling warpgroup.
template <int N, typename T>
void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, bool accumulate, bool trans_b) {
  static_assert(N == 64 || N == 128, "emulated shapes: m64n64k16 and m64n128k16");
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 inputs");
  wgmma_issue(N, std::is_same_v<T, __nv_bfloat16>, d, a, desc_b, accumulate, trans_b);
}

// The same with A (64 x 16) in shared memory: K-major (A[m][k] at row m, column k of the atoms) or,
// with trans_a, M-major (at row k, column m), laid out like B with m in place of n.
template <int N, typename T>
void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate, bool trans_a, bool trans_b) {
  static_assert(N == 64 || N == 128, "emulated shapes: m64n64k16 and m64n128k16");
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 inputs");
  wgmma_issue_ss(N, std::is_same_v<T, __nv_bfloat16>, d, desc_a, desc_b, accumulate, trans_a, trans_b);
}

}  // namespace lloco::simt
