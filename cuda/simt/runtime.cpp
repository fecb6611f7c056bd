// simt's CUDA runtime: the subset of the cudart API that lloco calls, for one emulated H100-like
// device whose memory is host memory. Kernels run synchronously at launch (engine.h), so streams
// and events only keep order bookkeeping; copies and memsets happen immediately.
//
// What it checks, like the real runtime: cudaFree and copies of unknown or freed device pointers,
// device ranges that run past their allocation, unknown attributes. New allocations are filled
// with 0xFF bytes (NaN in every float type) so a kernel that reads memory nobody wrote fails.
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "cuda/simt/engine.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace lloco::simt {
namespace {

constexpr size_t kDeviceBytes = size_t{80} << 30;  // reported total memory (an H100 80 GB)
constexpr size_t kAlignment = 256;                 // cudaMalloc's documented alignment

struct RuntimeState {
  std::mutex mu;
  std::map<uintptr_t, size_t> allocations;  // base -> bytes
  size_t allocated = 0;
  std::unordered_map<const void*, int> max_dynamic_smem;
  cudaError_t last_error = cudaSuccess;
};

RuntimeState& state() {
  static RuntimeState s;
  return s;
}

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) state().last_error = e;
  return e;
}

// Whether [p, p + n) lies inside one live allocation (caller holds the lock).
bool inside_allocation(const void* p, size_t n) {
  auto& a = state().allocations;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = a.upper_bound(addr);
  if (it == a.begin()) return false;
  --it;
  return addr + n <= it->first + it->second;
}

// Host pointers are legal on the host side of a copy; a pointer that lies in no allocation is
// treated as host memory, one that starts inside an allocation must stay inside it.
bool valid_range(const void* p, size_t n) {
  auto& a = state().allocations;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = a.upper_bound(addr);
  if (it == a.begin()) return true;
  --it;
  if (addr >= it->first + it->second) return true;  // not device memory
  return addr + n <= it->first + it->second;
}

bool check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  std::lock_guard<std::mutex> lock(state().mu);
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev && !inside_allocation(dst, n)) return false;
  if (src_dev && !inside_allocation(src, n)) return false;
  return valid_range(dst, n) && valid_range(src, n);
}

struct Event {
  std::chrono::steady_clock::time_point when{};
  bool recorded = false;
};

}  // namespace

void set_max_dynamic_smem(const void* kernel_id, int bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().max_dynamic_smem[kernel_id] = bytes;
}

int max_dynamic_smem(const void* kernel_id) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().max_dynamic_smem.find(kernel_id);
  return it == state().max_dynamic_smem.end() ? 0 : it->second;
}

}  // namespace lloco::simt

using lloco::simt::record;
using lloco::simt::state;

extern "C" {

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (!ptr) return record(cudaErrorInvalidValue);
  const size_t bytes = (std::max<size_t>(size, 1) + lloco::simt::kAlignment - 1) / lloco::simt::kAlignment *
                       lloco::simt::kAlignment;
  std::lock_guard<std::mutex> lock(state().mu);
  if (state().allocated + bytes > lloco::simt::kDeviceBytes) return record(cudaErrorMemoryAllocation);
  void* p = std::aligned_alloc(lloco::simt::kAlignment, bytes);
  if (!p) return record(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, bytes);
#if defined(__SANITIZE_ADDRESS__)
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(p) + size, bytes - size);  // only the asked-for bytes
#endif
  state().allocations[reinterpret_cast<uintptr_t>(p)] = bytes;
  state().allocated += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == state().allocations.end()) return record(cudaErrorInvalidValue);
  const size_t bytes = it->second;
  state().allocated -= bytes;
  state().allocations.erase(it);
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(ptr, bytes);
#endif
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  if (!dst || !src || !lloco::simt::check_copy(dst, src, count, kind)) return record(cudaErrorInvalidValue);
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!lloco::simt::inside_allocation(ptr, count)) return record(cudaErrorInvalidValue);
  }
  std::memset(ptr, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) { return cudaMemset(ptr, value, count); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (free_bytes) *free_bytes = lloco::simt::kDeviceBytes - state().allocated;
  if (total) *total = lloco::simt::kDeviceBytes;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }

// The attributes lloco reads, with an H100 SXM's values.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 232448; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 49152; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    default: return record(cudaErrorInvalidValue);
  }
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (!func) return record(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448) return record(cudaErrorInvalidValue);
    lloco::simt::set_max_dynamic_smem(func, value);
    return cudaSuccess;
  }
  return attr == cudaFuncAttributePreferredSharedMemoryCarveout ? cudaSuccess : record(cudaErrorInvalidValue);
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = state().last_error;
  state().last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return state().last_error; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }

// Streams are distinct non-null handles (the allocator keys its pools by stream).
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* stream, unsigned int, int) {
  if (!stream) return record(cudaErrorInvalidValue);
  *stream = reinterpret_cast<cudaStream_t>(new char);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  return cudaStreamCreateWithPriority(stream, flags, 0);
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithPriority(stream, 0, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned int) {
  return event ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  if (!event) return record(cudaErrorInvalidValue);
  *event = reinterpret_cast<cudaEvent_t>(new lloco::simt::Event);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<lloco::simt::Event*>(event);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return record(cudaErrorInvalidResourceHandle);
  auto* e = reinterpret_cast<lloco::simt::Event*>(event);
  e->when = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return event ? cudaSuccess : record(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  auto* a = reinterpret_cast<lloco::simt::Event*>(start);
  auto* b = reinterpret_cast<lloco::simt::Event*>(end);
  if (!ms || !a || !b || !a->recorded || !b->recorded) return record(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  if (v) *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (v) *v = CUDART_VERSION;
  return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (simt)";
    case cudaErrorMemoryAllocation: return "out of memory (simt)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (simt)";
    case cudaErrorInvalidDeviceFunction: return "invalid device function (simt)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (simt)";
    case cudaErrorNotReady: return "device not ready (simt)";
    default: return "unknown error (simt)";
  }
}

}  // extern "C"
