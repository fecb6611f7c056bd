// A single-warpgroup GEMM on the wgmma primitives of flash_wgmma.cuh, with the same shared-memory
// layouts and descriptor arithmetic as the wgmma flash kernels: K-major B (as K in S = Q K^T),
// N-major B (as V in O = P V), and A from registers or from K-major / M-major smem tiles. Tests run
// it against a host matmul, so a misread operand layout shows up here, by operand, before it shows
// up as a wrong attention output.
#pragma once
#include <cuda_runtime.h>

namespace lloco::cuda_kernels {

// d[64, n] (f32, row-major) = a[64, k] * B, one CTA of 128 threads. a is row-major bf16/f16, taken
// as register fragments (a_layout 0, as P in O = P V), a K-major smem tile (1, as K in S^T = K Q^T of
// the backward) or an M-major smem tile stored from a_t = a^T [k, 64] row-major (2, as dS^T in
// dQ = dS K). B is b[k, n] row-major when n_major (stored N-major in smem), else b[n, k] row-major,
// i.e. B^T (stored K-major). n in {64, 128}; k a multiple of 16, at most 128, and below 64 or a
// multiple of 64 where a tile is K-major. Needs flash_wgmma_available().
void launch_wgmma_probe(const void* a, const void* a_t, const void* b, float* d, int n, int k, bool n_major,
                        int a_layout, bool is_bf16, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
