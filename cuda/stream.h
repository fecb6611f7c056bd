// RAII wrappers for CUDA streams and events, plus a scoped "current stream" switch for the
// lloco::Stream that ops read from core/device.h.
#pragma once
#include <cuda_runtime.h>

#include "core/device.h"
#include "cuda/common.h"

namespace lloco {

class CudaStream {
 public:
  // Non-blocking streams do not order with the legacy default stream: pass false only when all
  // work, copies included, is queued on explicit streams.
  explicit CudaStream(bool blocking = true, int priority = 0);
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  cudaStream_t get() const { return stream_; }
  Stream handle() const { return from_cuda(stream_); }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaEvent {
 public:
  explicit CudaEvent(bool timing = false);
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);
  void synchronize() const;
  bool ready() const;
  // Make `stream` wait for this event (cross-stream dependency without a host sync).
  void wait_on(cudaStream_t stream) const;
  // Milliseconds from `start` to this event; both must be timing events and recorded.
  float elapsed_ms_since(const CudaEvent& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

// Sets current_stream(CUDA) for the scope and restores the previous one.
class StreamGuard {
 public:
  explicit StreamGuard(Stream s) : prev_(current_stream(DeviceType::CUDA)) { set_current_stream(DeviceType::CUDA, s); }
  ~StreamGuard() { set_current_stream(DeviceType::CUDA, prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream prev_;
};

}  // namespace lloco
