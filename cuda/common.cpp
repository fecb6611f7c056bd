#include "cuda/common.h"

#include <cstdlib>
#include <cstring>

namespace lloco::cuda_detail {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw Error(detail::concat("[cuda] ", call, " failed at ", file, ":", line, ": ", cudaGetErrorName(err),
                             " (", cudaGetErrorString(err), ")"));
}

void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
  throw Error(detail::concat("[cublas] ", call, " failed at ", file, ":", line, ": ",
                             cublasGetStatusName(st), " (", cublasGetStatusString(st), ")"));
}

bool sync_debug_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LLOCO_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
  }();
  return on;
}

void launch_check(cudaStream_t stream, const char* what, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_debug_enabled()) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) throw_cuda_error(err, what, file, line);
}

}  // namespace lloco::cuda_detail

namespace lloco::cuda_kernels {

int device_sm_count() {
  static const int n = [] {
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
  }();
  return n;
}

int* device_error_flag() {
  static int* flag = [] {
    int* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, sizeof(int)));
    CUDA_CHECK(cudaMemset(p, 0, sizeof(int)));
    return p;
  }();
  return flag;
}

void check_device_error_flag(cudaStream_t stream) {
  int host = 0;
  CUDA_CHECK(cudaMemcpyAsync(&host, device_error_flag(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host == 0) return;
  CUDA_CHECK(cudaMemsetAsync(device_error_flag(), 0, sizeof(int), stream));
  if (host & kErrTargetRange) LLOCO_FAIL("cuda", "a kernel met a class target outside [0, V) (and not ignore_index)");
  LLOCO_FAIL("cuda", "a kernel met an index outside the indexed dimension");
}

}  // namespace lloco::cuda_kernels
