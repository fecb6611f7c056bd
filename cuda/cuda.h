// Public entry points of lloco_cuda. No CUDA headers here, so any library or app can include it.
//
// The backend and caching allocator register themselves for DeviceType::CUDA when a GPU is
// present: automatically for executables that link the CMake target lloco_cuda_registered, or
// explicitly through cuda_backend_init(). Without a GPU nothing is registered and
// backend_available(DeviceType::CUDA) stays false.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lloco {

// Registers the CUDA allocator and backend once; returns false when no CUDA device is usable.
bool cuda_backend_init();
// Number of visible CUDA devices (0 without a driver or GPU); never throws.
int cuda_device_count();

struct CudaAllocatorStats {
  size_t current_bytes = 0;   // bytes in live blocks (rounded sizes)
  size_t peak_bytes = 0;      // high-water mark of current_bytes
  size_t reserved_bytes = 0;  // bytes held from cudaMalloc (live + cached)
  uint64_t num_allocs = 0;    // allocate() calls
  uint64_t num_cuda_mallocs = 0;
  uint64_t num_cuda_frees = 0;
};

// Statistics of the registered caching allocator (requires cuda_backend_init() == true).
CudaAllocatorStats cuda_allocator_stats();
void cuda_allocator_reset_peak();
// Returns cached, unused device memory to the driver.
void cuda_empty_cache();

}  // namespace lloco
