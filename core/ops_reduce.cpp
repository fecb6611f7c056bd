// Reductions and softmax, with their backward rules.
#include <algorithm>

#include "core/ops_common.h"

namespace lloco {

using namespace detail;

namespace detail {
std::vector<int64_t> normalize_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) {
    int64_t w = d < 0 ? d + x.dim() : d;
    LLOCO_CHECK(w >= 0 && w < x.dim(), op, "dimension ", d, " out of range for ", x.str());
    out.push_back(w);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
}  // namespace detail

static Shape keepdim_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s = x.shape();
  for (int64_t d : dims) s[d] = 1;
  return s;
}

static Shape squeezed_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) s.push_back(x.shape()[d]);
  return s;
}

// Forward only; returns the keepdim-shaped result.
static Tensor reduce_raw(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const char* name) {
  check_defined(x, name, "input");
  Tensor out = empty(keepdim_shape(x, dims), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  LLOCO_CHECK(x.numel() > 0 || op == ReduceOp::Sum, name, "reduction over an empty tensor ", x.str());
  backend_of(x).reduce(op, to_ref(out), to_ref(x.detach()), stream_of(x));
  return out;
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  auto dims = normalize_dims(x, dims_in, "sum");
  Tensor out = reduce_raw(ReduceOp::Sum, x, dims, "sum");
  Shape in_shape = x.shape(), kd = out.shape();
  out = record(out, "sum", {x}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.expand(in_shape).contiguous()}; });
  return keepdim ? out : out.reshape(squeezed_shape(x, dims));
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  auto dims = normalize_dims(x, dims_in, "mean");
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  LLOCO_CHECK(count > 0, "mean", "mean over zero elements of ", x.str());
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  auto dims = normalize_dims(x, dims_in, "max");
  Tensor out = reduce_raw(ReduceOp::Max, x, dims, "max");
  Tensor xd = x.detach(), od = out.detach();
  out = record(out, "max", {x}, [xd, od, dims](const Tensor& g) {
    // Ties share the gradient equally (amax semantics).
    Tensor hit = compare(BinaryOp::Eq, xd, od.expand(xd.shape()));
    Tensor count = sum(hit, dims, true);
    return std::vector<Tensor>{div(mul(hit, g.expand(xd.shape())), count)};
  });
  return keepdim ? out : out.reshape(squeezed_shape(x, dims));
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  LLOCO_CHECK(static_cast<int64_t>(shape.size()) <= x.dim(), "sum_to_shape", "cannot reduce ", x.str(), " to ",
              shape_str(shape));
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(d);
    } else {
      LLOCO_CHECK(shape[d - lead] == x.shape()[d], "sum_to_shape", "cannot reduce ", x.str(), " to ",
                  shape_str(shape));
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

static Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(x, name, "input");
  check_float(x, name);
  int64_t d = x.wrap_dim(dim);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).softmax(to_ref(out), to_ref(x.detach()), static_cast<int>(d), log, stream_of(x));
  Tensor od = out.detach();
  return record(out, name, {x}, [od, d, log](const Tensor& g) {
    if (log) return std::vector<Tensor>{sub(g, mul(exp(od), sum(g, {d}, true)))};
    return std::vector<Tensor>{mul(od, sub(g, sum(mul(g, od), {d}, true)))};
  });
}

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace lloco
