#include "cuda/stream.h"

namespace lloco {

CudaStream::CudaStream(bool blocking, int priority) {
  CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, blocking ? cudaStreamDefault : cudaStreamNonBlocking, priority));
}

CudaStream::~CudaStream() {
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaStream::synchronize() const { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

CudaEvent::CudaEvent(bool timing) {
  CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

CudaEvent::~CudaEvent() {
  if (event_) cudaEventDestroy(event_);
}

void CudaEvent::record(cudaStream_t stream) { CUDA_CHECK(cudaEventRecord(event_, stream)); }

void CudaEvent::synchronize() const { CUDA_CHECK(cudaEventSynchronize(event_)); }

bool CudaEvent::ready() const {
  cudaError_t e = cudaEventQuery(event_);
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  CUDA_CHECK(e);
  return true;
}

void CudaEvent::wait_on(cudaStream_t stream) const { CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }

float CudaEvent::elapsed_ms_since(const CudaEvent& start) const {
  float ms = 0.f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

}  // namespace lloco
