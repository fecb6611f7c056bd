// Host-side CUDA helpers for lloco_cuda: error-checking macros that throw lloco::Error with the
// failing call, file:line and the driver's message, and the LLOCO_CUDA_SYNC=1 debug mode that
// synchronizes after every launch so an asynchronous fault is reported at the op that caused it.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/device.h"
#include "core/error.h"

namespace lloco::cuda_detail {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line);
// True when LLOCO_CUDA_SYNC=1 (read once).
bool sync_debug_enabled();
// After a launch: check cudaGetLastError, and in sync-debug mode also synchronize the stream.
void launch_check(cudaStream_t stream, const char* what, const char* file, int line);

}  // namespace lloco::cuda_detail

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t lloco_err_ = (call);                                                      \
    if (lloco_err_ != cudaSuccess)                                                        \
      ::lloco::cuda_detail::throw_cuda_error(lloco_err_, #call, __FILE__, __LINE__);      \
  } while (0)

#define CUBLAS_CHECK(call)                                                                \
  do {                                                                                    \
    cublasStatus_t lloco_st_ = (call);                                                    \
    if (lloco_st_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::lloco::cuda_detail::throw_cublas_error(lloco_st_, #call, __FILE__, __LINE__);     \
  } while (0)

// Every launcher ends with this (llm.c's cudaCheck(cudaGetLastError()) plus the debug sync).
#define CUDA_LAUNCH_CHECK(stream, what) ::lloco::cuda_detail::launch_check((stream), (what), __FILE__, __LINE__)

namespace lloco {

// lloco::Stream -> cudaStream_t. A null handle is the legacy default stream, which orders itself
// with every blocking stream, so code that never sets a stream stays correct.
inline cudaStream_t to_cuda(Stream s) { return static_cast<cudaStream_t>(s.handle); }
inline Stream from_cuda(cudaStream_t s) { return Stream{static_cast<void*>(s)}; }

}  // namespace lloco

namespace lloco::cuda_kernels {

int device_sm_count();  // of the current device, cached

// A device word that kernels set when they meet an out-of-range index (kernels cannot throw).
// Checked after every launch in LLOCO_CUDA_SYNC mode and at every Backend::synchronize().
enum : int { kErrIndexRange = 1, kErrTargetRange = 2 };
int* device_error_flag();
void check_device_error_flag(cudaStream_t stream);  // throws (and clears the flag) when set

}  // namespace lloco::cuda_kernels
