// Caching device allocator. cudaMalloc/cudaFree synchronize the device and cost tens of
// microseconds, so freed blocks are kept in size-ordered pools and split/merged instead:
//   small requests (<= 1 MiB) round to 512 B and are carved from 2 MiB segments;
//   large requests round to 512 B and come from segments rounded up to 2 MiB.
// A block belongs to the stream it was allocated on and is reused at once by later allocations on
// that stream (stream order makes this safe). Freed from another stream, it waits for an event.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/device.h"
#include "cuda/cuda.h"

namespace lloco {

class CachingAllocator final : public Allocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallLimit = 1 << 20;    // requests up to this use the small pool
  static constexpr size_t kSmallSegment = 2 << 20;  // small-pool segment size
  static constexpr size_t kLargeRound = 2 << 20;    // large segments round to this

  CachingAllocator() = default;
  ~CachingAllocator() override;  // frees cached segments; live blocks are left to the driver
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t nbytes, Stream stream) override;
  void deallocate(void* ptr, size_t nbytes, Stream stream) override;
  size_t current_bytes() const override;
  size_t peak_bytes() const override;

  CudaAllocatorStats stats() const;
  void reset_peak();
  // Returns every fully free segment to the driver (live blocks stay put).
  void empty_cache();

 private:
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    cudaStream_t stream = nullptr;
    bool small = false;
    bool allocated = false;
    bool pending = false;  // freed from another stream, waiting on an event
    Block* prev = nullptr;  // neighbours inside the same segment
    Block* next = nullptr;
  };
  struct BlockLess {
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, BlockLess>;

  Block* find_free(Pool& pool, cudaStream_t stream, size_t size);
  Block* new_segment(size_t segment_size, cudaStream_t stream, bool small);
  Block* split(Block* b, size_t size);
  void release_block(Block* b);  // mark free, merge with free neighbours, put into its pool
  void process_pending();
  void free_cached_segments();

  mutable std::mutex mu_;
  Pool small_pool_, large_pool_;
  std::unordered_map<void*, Block*> live_;
  std::vector<std::pair<cudaEvent_t, Block*>> pending_;
  std::vector<cudaEvent_t> spare_events_;
  CudaAllocatorStats stats_;
};

}  // namespace lloco
