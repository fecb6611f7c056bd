// Host-side helpers shared by the CudaBackend binding files (backend.cpp, backend_attention.cpp,
// backend_lora.cpp, backend_swiglu.cpp): shape checks that name the op, and scratch memory from
// the caching allocator.
#pragma once
#include <cstddef>

#include <cuda_runtime.h>

#include "core/backend.h"
#include "core/error.h"
#include "cuda/allocator.h"
#include "cuda/common.h"

namespace lloco::cuda_binding {

inline void check_same_shape(const TensorRef& a, const TensorRef& b, const char* op, const char* what) {
  bool same = a.ndim == b.ndim;
  for (int i = 0; same && i < a.ndim; ++i) same = a.shape[i] == b.shape[i];
  LLOCO_CHECK(same, op, what, " shapes differ (rank ", a.ndim, " vs ", b.ndim, ")");
}

inline void check_rank(const TensorRef& t, int rank, const char* op, const char* what) {
  LLOCO_CHECK(t.ndim == rank, op, what, " must have rank ", rank, ", got ", t.ndim);
}

// Scratch from the caching allocator, returned on the same stream (stream order makes the
// immediate reuse by later work safe). n == 0 gives a null pointer.
class Workspace {
 public:
  Workspace(CachingAllocator& a, size_t n, cudaStream_t s)
      : a_(a), n_(n), s_(s), p_(n ? a.allocate(n, from_cuda(s)) : nullptr) {}
  ~Workspace() {
    if (p_) a_.deallocate(p_, n_, from_cuda(s_));
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return p_; }

 private:
  CachingAllocator& a_;
  size_t n_;
  cudaStream_t s_;
  void* p_;
};

}  // namespace lloco::cuda_binding
