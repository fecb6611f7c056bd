// Internal helpers for the op implementations (not part of the public API).
#pragma once
#include <vector>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"

namespace lloco::detail {

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device().type); }
inline Stream stream_of(const Tensor& t) { return current_stream(t.device().type); }

// Numpy broadcasting of two shapes; the error names the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
void check_defined(const Tensor& t, const char* op, const char* what);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_float(const Tensor& t, const char* op);
void check_index(const Tensor& t, const char* op, const char* what);
// Normalised, sorted, unique reduction dims (empty input = all dims).
std::vector<int64_t> normalize_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op);
// Softmax / norm statistics are kept in f32 (f64 for f64 inputs).
inline DType stats_dtype(DType dt) { return dt == DType::F64 ? DType::F64 : DType::F32; }
// Attention kernels read rows and heads through strides but want the head dim dense.
inline Tensor dense_head_dim(const Tensor& t) { return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous(); }

}  // namespace lloco::detail
