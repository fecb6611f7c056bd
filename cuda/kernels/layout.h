// Plain-C++ descriptions of strided operands that kernel launchers take by value (device code
// never sees TensorRef). Host helpers fold a TensorRef into these and merge dimensions that are
// contiguous for every operand, so most "strided" launches end up 1-D or 2-D.
#pragma once
#include <cstdint>

#include "core/backend.h"

namespace lloco::cuda_kernels {

constexpr int kDims = 8;

struct Dims {
  int ndim = 0;
  int64_t size[kDims] = {};
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= size[i];
    return n;
  }
};

struct Strides {
  int64_t s[kDims] = {};  // in elements
};

struct RowVec {  // a [N] operand of any dtype with an element stride
  void* data;
  DType dtype;
  int64_t stride;
};
struct Matrix {  // a [N, V] operand
  void* data;
  DType dtype;
  int64_t rows, cols, row_stride, col_stride;
};

inline Dims dims_of(const TensorRef& t) {
  Dims d;
  d.ndim = t.ndim;
  for (int i = 0; i < t.ndim; ++i) d.size[i] = t.shape[i];
  return d;
}

inline Strides strides_of(const TensorRef& t) {
  Strides s;
  for (int i = 0; i < t.ndim; ++i) s.s[i] = t.shape[i] == 1 ? 0 : t.strides[i];
  return s;
}

// Drops size-1 dims and merges dim i into i+1 when every operand has s[i] == s[i+1] * size[i+1].
// The result iterates the same elements in the same (row-major) order.
inline void coalesce(Dims& d, Strides* ops[], int nops) {
  Dims nd;
  Strides ns[8];
  for (int i = 0; i < d.ndim; ++i) {
    if (d.size[i] == 1) continue;
    int k = nd.ndim;
    bool merge = k > 0;
    for (int o = 0; o < nops && merge; ++o) merge = ns[o].s[k - 1] == ops[o]->s[i] * d.size[i];
    if (merge) {
      nd.size[k - 1] *= d.size[i];
      for (int o = 0; o < nops; ++o) ns[o].s[k - 1] = ops[o]->s[i];
    } else {
      nd.size[k] = d.size[i];
      for (int o = 0; o < nops; ++o) ns[o].s[k] = ops[o]->s[i];
      nd.ndim = k + 1;
    }
  }
  if (d.numel() == 0) {  // keep a zero-size dim so numel() stays 0
    nd.ndim = 1;
    nd.size[0] = 0;
    for (int o = 0; o < nops; ++o) ns[o].s[0] = 1;
  }
  d = nd;
  for (int o = 0; o < nops; ++o) *ops[o] = ns[o];
}

// After coalesce: one dense dim with unit stride for every operand (or a scalar).
inline bool is_dense(const Dims& d, Strides* ops[], int nops) {
  if (d.ndim == 0) return true;
  if (d.ndim != 1) return false;
  for (int o = 0; o < nops; ++o)
    if (ops[o]->s[0] != 1) return false;
  return true;
}

}  // namespace lloco::cuda_kernels
