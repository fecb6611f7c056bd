#include "cuda/allocator.h"

#include <algorithm>

#include "cuda/common.h"

// Under simt device memory is host memory, so AddressSanitizer (scripts/simt_memcheck.sh) can watch
// kernels: only the bytes a caller asked for are addressable, the rest of every segment is poisoned.
#if defined(LLOCO_SIMT) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LLOCO_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LLOCO_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define LLOCO_POISON(p, n) ((void)0)
#define LLOCO_UNPOISON(p, n) ((void)0)
#endif

namespace lloco {

namespace {
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }
}  // namespace

bool CachingAllocator::BlockLess::operator()(const Block* a, const Block* b) const {
  if (a->stream != b->stream) return reinterpret_cast<uintptr_t>(a->stream) < reinterpret_cast<uintptr_t>(b->stream);
  if (a->size != b->size) return a->size < b->size;
  return reinterpret_cast<uintptr_t>(a->ptr) < reinterpret_cast<uintptr_t>(b->ptr);
}

CachingAllocator::~CachingAllocator() {
  // Only reached for allocators owned by tests; the registered one is leaked on purpose because
  // the CUDA runtime may already be torn down when static destructors run.
  try {
    empty_cache();
  } catch (...) {
  }
  for (auto& [ev, block] : pending_) cudaEventDestroy(ev);
  for (cudaEvent_t ev : spare_events_) cudaEventDestroy(ev);
}

void* CachingAllocator::allocate(size_t nbytes, Stream s) {
  cudaStream_t stream = to_cuda(s);
  size_t size = round_up(std::max<size_t>(nbytes, 1), kRound);
  bool small = size <= kSmallLimit;
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.num_allocs;
  process_pending();
  Pool& pool = small ? small_pool_ : large_pool_;
  Block* b = find_free(pool, stream, size);
  if (!b) b = new_segment(small ? kSmallSegment : round_up(size, kLargeRound), stream, small);
  b = split(b, size);
  LLOCO_UNPOISON(b->ptr, nbytes);
  LLOCO_POISON(b->ptr + nbytes, b->size - nbytes);
  b->allocated = true;
  live_[b->ptr] = b;
  stats_.current_bytes += b->size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  return b->ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t, Stream s) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  LLOCO_CHECK(it != live_.end(), "cuda_allocator", "deallocate of unknown pointer ", ptr);
  Block* b = it->second;
  live_.erase(it);
  LLOCO_POISON(b->ptr, b->size);
  b->allocated = false;
  stats_.current_bytes -= b->size;
  cudaStream_t stream = to_cuda(s);
  if (stream != b->stream) {
    // Work queued on `stream` may still read the block: reuse it only after that work is done.
    cudaEvent_t ev;
    if (spare_events_.empty()) {
      CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    } else {
      ev = spare_events_.back();
      spare_events_.pop_back();
    }
    CUDA_CHECK(cudaEventRecord(ev, stream));
    b->pending = true;
    pending_.emplace_back(ev, b);
    return;
  }
  release_block(b);
}

size_t CachingAllocator::current_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_.current_bytes;
}

size_t CachingAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_.peak_bytes;
}

CudaAllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  process_pending();
  free_cached_segments();
}

CachingAllocator::Block* CachingAllocator::find_free(Pool& pool, cudaStream_t stream, size_t size) {
  Block key;
  key.stream = stream;
  key.size = size;
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  pool.erase(it);
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment(size_t segment_size, cudaStream_t stream, bool small) {
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, segment_size);
  if (err == cudaErrorMemoryAllocation) {
    // Out of memory: give cached segments back to the driver and try once more.
    cudaGetLastError();
    CUDA_CHECK(cudaDeviceSynchronize());
    process_pending();
    free_cached_segments();
    err = cudaMalloc(&p, segment_size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    LLOCO_FAIL("cuda_allocator", "out of memory allocating ", segment_size, " bytes (",
               cudaGetErrorString(err), "); live ", stats_.current_bytes, " B, reserved ",
               stats_.reserved_bytes, " B, device free ", free_b, " of ", total_b, " B");
  }
  ++stats_.num_cuda_mallocs;
  stats_.reserved_bytes += segment_size;
  Block* b = new Block;
  b->ptr = static_cast<char*>(p);
  b->size = segment_size;
  LLOCO_POISON(b->ptr, segment_size);
  b->stream = stream;
  b->small = small;
  return b;
}

CachingAllocator::Block* CachingAllocator::split(Block* b, size_t size) {
  size_t rest = b->size - size;
  // Keep remainders only when they can serve a request of the same pool.
  if (rest < kRound || (!b->small && rest <= kSmallLimit)) return b;
  Block* r = new Block;
  r->ptr = b->ptr + size;
  r->size = rest;
  r->stream = b->stream;
  r->small = b->small;
  r->prev = b;
  r->next = b->next;
  if (b->next) b->next->prev = r;
  b->next = r;
  b->size = size;
  (b->small ? small_pool_ : large_pool_).insert(r);
  return b;
}

void CachingAllocator::release_block(Block* b) {
  Pool& pool = b->small ? small_pool_ : large_pool_;
  b->pending = false;
  auto mergeable = [](Block* n) { return n && !n->allocated && !n->pending; };
  if (mergeable(b->prev)) {
    Block* p = b->prev;
    pool.erase(p);
    p->size += b->size;
    p->next = b->next;
    if (b->next) b->next->prev = p;
    delete b;
    b = p;
  }
  if (mergeable(b->next)) {
    Block* n = b->next;
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    delete n;
  }
  pool.insert(b);
}

void CachingAllocator::process_pending() {
  size_t kept = 0;
  for (size_t i = 0; i < pending_.size(); ++i) {
    cudaError_t q = cudaEventQuery(pending_[i].first);
    if (q == cudaErrorNotReady) {
      cudaGetLastError();
      pending_[kept++] = pending_[i];
      continue;
    }
    CUDA_CHECK(q);
    spare_events_.push_back(pending_[i].first);
    release_block(pending_[i].second);
  }
  pending_.resize(kept);
}

void CachingAllocator::free_cached_segments() {
  for (Pool* pool : {&small_pool_, &large_pool_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (b->prev || b->next) {  // part of a segment that still has live or pending blocks
        ++it;
        continue;
      }
      LLOCO_UNPOISON(b->ptr, b->size);
      CUDA_CHECK(cudaFree(b->ptr));
      ++stats_.num_cuda_frees;
      stats_.reserved_bytes -= b->size;
      it = pool->erase(it);
      delete b;
    }
  }
}

}  // namespace lloco
