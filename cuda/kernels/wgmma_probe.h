// A single-warpgroup GEMM on the wgmma primitives of flash_wgmma.cuh, with the same shared-memory
// layouts and descriptor arithmetic as the wgmma flash forward: K-major B (as K in S = Q K^T) and
// N-major B (as V in O = P V). Tests run it against a host matmul, so a misread operand layout
// shows up here, by operand, before it shows up as a wrong attention output.
#pragma once
#include <cuda_runtime.h>

namespace lloco::cuda_kernels {

// d[64, n] (f32, row-major) = a[64, k] * B, one CTA of 128 threads. a is row-major bf16/f16;
// B is b[k, n] row-major when n_major (stored N-major in smem), else b[n, k] row-major, i.e. B^T
// (stored K-major). n in {64, 128}; k a multiple of 16, at most 128. Needs flash_fwd_sm90_available().
void launch_wgmma_probe(const void* a, const void* b, float* d, int n, int k, bool n_major, bool is_bf16,
                        cudaStream_t stream);

}  // namespace lloco::cuda_kernels
