// CPU reference reductions (sum/max/min over the dims where out has size 1) and softmax.
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_common.h"

namespace lloco::cpu_impl {

void reduce(ReduceOp op, TensorRef out, TensorRef in) {
  // Split dims into kept (out size == in size) and reduced (out size 1, in size > 1 or == 1).
  TensorRef red{};  // iteration space of the reduced dims, carrying in's strides
  red.data = in.data;
  red.dtype = in.dtype;
  for (int d = 0; d < in.ndim; ++d) {
    if (out.shape[d] == 1 && in.shape[d] != 1) {
      red.shape[red.ndim] = in.shape[d];
      red.strides[red.ndim++] = in.strides[d];
    }
  }
  const int64_t n_out = out.numel(), n_red = red.numel();
#pragma omp parallel for schedule(static) if (n_out * n_red > kGrain && n_out > 1)
  for (int64_t o = 0; o < n_out; ++o) {
    // Offset of this output position in `in` (reduced dims at index 0).
    int64_t rem = o, in_off = 0, out_off = 0;
    for (int d = in.ndim - 1; d >= 0; --d) {
      int64_t i = rem % out.shape[d];
      rem /= out.shape[d];
      in_off += i * in.strides[d];
      out_off += i * out.strides[d];
    }
    double acc = op == ReduceOp::Sum ? 0.0
                 : op == ReduceOp::Max ? -std::numeric_limits<double>::infinity()
                                       : std::numeric_limits<double>::infinity();
    bool nan = false;
    for (int64_t r = 0; r < n_red; ++r) {
      double v = load(in.data, in.dtype, in_off + offset_of(red, r));
      if (v != v) nan = true;
      if (op == ReduceOp::Sum) acc += v;
      else if (op == ReduceOp::Max) acc = v > acc ? v : acc;
      else acc = v < acc ? v : acc;
    }
    if (nan && op != ReduceOp::Sum) acc = std::numeric_limits<double>::quiet_NaN();
    store(out.data, out.dtype, out_off, acc);
  }
}

void softmax(TensorRef out, TensorRef in, int dim, bool log) {
  const int64_t len = in.shape[dim];
  const int64_t rows = len == 0 ? 0 : in.numel() / len;
  TensorRef outer{};  // all dims but `dim`
  for (int d = 0; d < in.ndim; ++d) {
    if (d == dim) continue;
    outer.shape[outer.ndim++] = in.shape[d];
  }
#pragma omp parallel for schedule(static) if (rows * len > kGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, in_off = 0, out_off = 0;
    for (int d = in.ndim - 1, od = outer.ndim - 1; d >= 0; --d) {
      if (d == dim) continue;
      int64_t i = rem % outer.shape[od];
      rem /= outer.shape[od--];
      in_off += i * in.strides[d];
      out_off += i * out.strides[d];
    }
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < len; ++j) mx = std::max(mx, load(in.data, in.dtype, in_off + j * in.strides[dim]));
    double sum = 0.0;
    for (int64_t j = 0; j < len; ++j) sum += std::exp(load(in.data, in.dtype, in_off + j * in.strides[dim]) - mx);
    const double lse = mx + std::log(sum);
    for (int64_t j = 0; j < len; ++j) {
      double x = load(in.data, in.dtype, in_off + j * in.strides[dim]);
      store(out.data, out.dtype, out_off + j * out.strides[dim], log ? x - lse : std::exp(x - lse));
    }
  }
}

}  // namespace lloco::cpu_impl
