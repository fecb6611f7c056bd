// Indexing and assembly ops: concat, stack, index_select, gather, embedding, where, dropout.
#include <cmath>
#include <limits>

#include "core/ops_common.h"

namespace lloco {

using namespace detail;

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  LLOCO_CHECK(!xs.empty(), "concat", "needs at least one tensor");
  const Tensor& first = xs[0];
  check_defined(first, "concat", "input 0");
  const int64_t d = first.wrap_dim(dim);
  Shape shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_defined(xs[i], "concat", "an input");
    check_same_device(first, xs[i], "concat");
    check_same_dtype(first, xs[i], "concat");
    LLOCO_CHECK(xs[i].dim() == first.dim(), "concat", "input ", i, " has rank ", xs[i].dim(), " vs ", first.dim());
    for (int64_t k = 0; k < first.dim(); ++k)
      LLOCO_CHECK(k == d || xs[i].shape()[k] == shape[k], "concat", "input ", i, " shape ", shape_str(xs[i].shape()),
                  " differs from ", shape_str(shape), " outside dim ", d);
    total += xs[i].shape()[d];
  }
  shape[d] = total;
  Tensor out = empty(shape, first.dtype(), first.device());
  std::vector<int64_t> sizes;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    if (x.shape()[d] > 0) copy_(out.narrow(d, at, x.shape()[d]), x.detach());
    sizes.push_back(x.shape()[d]);
    at += x.shape()[d];
  }
  return record(out, "concat", xs, [sizes, d](const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (int64_t s : sizes) {
      grads.push_back(g.narrow(d, start, s).contiguous());
      start += s;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  LLOCO_CHECK(!xs.empty(), "stack", "needs at least one tensor");
  std::vector<Tensor> expanded;
  int64_t rank = xs[0].dim() + 1;
  int64_t d = dim < 0 ? dim + rank : dim;
  for (const Tensor& x : xs) expanded.push_back(x.unsqueeze(d));
  return concat(expanded, d);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "input");
  check_index(index, "index_select", "index");
  LLOCO_CHECK(index.dim() == 1, "index_select", "index must be 1-D, got ", index.str());
  check_same_device(x, index, "index_select");
  const int64_t d = x.wrap_dim(dim);
  const int64_t n = x.shape()[d];
  if (index.device().type == DeviceType::CPU && index.numel() > 0) {  // bounds check where it is free
    for (int64_t v : index.to_vector<int64_t>())
      LLOCO_CHECK(v >= 0 && v < n, "index_select", "index ", v, " out of range for dim ", d, " of size ", n);
  }
  Shape shape = x.shape();
  shape[d] = index.numel();
  Tensor out = empty(shape, x.dtype(), x.device());
  if (out.numel() > 0)
    backend_of(x).index_select(to_ref(out), to_ref(x.detach()), static_cast<int>(d), to_ref(index), stream_of(x));
  Shape in_shape = x.shape();
  DType dt = x.dtype();
  Device dev = x.device();
  Tensor idx = index.detach();
  return record(out, "index_select", {x}, [in_shape, dt, dev, idx, d](const Tensor& g) {
    Tensor grad = zeros(in_shape, dt, dev);
    if (g.numel() > 0)
      backend_for(dev.type).index_add(to_ref(grad), static_cast<int>(d), to_ref(idx), to_ref(g.contiguous()),
                                      current_stream(dev.type));
    return std::vector<Tensor>{grad};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "input");
  check_index(index, "gather", "index");
  check_same_device(x, index, "gather");
  LLOCO_CHECK(index.dim() == x.dim(), "gather", "index rank ", index.dim(), " vs input rank ", x.dim());
  const int64_t d = x.wrap_dim(dim);
  for (int64_t k = 0; k < x.dim(); ++k)
    LLOCO_CHECK(k == d || index.shape()[k] <= x.shape()[k], "gather", "index ", index.str(), " larger than input ",
                x.str(), " at dim ", k);
  if (index.device().type == DeviceType::CPU && index.numel() > 0)
    for (int64_t v : index.to_vector<int64_t>())
      LLOCO_CHECK(v >= 0 && v < x.shape()[d], "gather", "index ", v, " out of range for dim ", d, " of size ",
                  x.shape()[d]);
  Tensor out = empty(index.shape(), x.dtype(), x.device());
  if (out.numel() > 0)
    backend_of(x).gather(to_ref(out), to_ref(x.detach()), static_cast<int>(d), to_ref(index), stream_of(x));
  Shape in_shape = x.shape();
  DType dt = x.dtype();
  Device dev = x.device();
  Tensor idx = index.detach();
  return record(out, "gather", {x}, [in_shape, dt, dev, idx, d](const Tensor& g) {
    Tensor grad = zeros(in_shape, dt, dev);
    if (g.numel() > 0)
      backend_for(dev.type).scatter_add(to_ref(grad), static_cast<int>(d), to_ref(idx), to_ref(g.contiguous()),
                                        current_stream(dev.type));
    return std::vector<Tensor>{grad};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  LLOCO_CHECK(weight.defined() && weight.dim() == 2, "embedding", "weight must be 2-D [vocab, dim], got ",
              weight.str());
  check_index(ids, "embedding", "ids");
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  return index_select(weight, 0, ids.contiguous().reshape({-1})).reshape(shape);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  check_same_device(a, b, "where");
  check_same_device(cond, a, "where");
  check_same_dtype(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype(), a.device());
  Tensor c = cond.detach().expand(shape);
  if (out.numel() > 0)
    backend_of(a).where(to_ref(out), to_ref(c), to_ref(a.detach().expand(shape)), to_ref(b.detach().expand(shape)),
                        stream_of(a));
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "where", {a, b}, [c, sa, sb](const Tensor& g) {
    Tensor z = zeros_like(g);
    Tensor ga = empty_like(g), gb = empty_like(g);
    backend_of(g).where(to_ref(ga), to_ref(c), to_ref(g), to_ref(z), stream_of(g));
    backend_of(g).where(to_ref(gb), to_ref(c), to_ref(z), to_ref(g), stream_of(g));
    return std::vector<Tensor>{sum_to_shape(ga, sa), sum_to_shape(gb, sb)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, full({}, value, x.dtype(), x.device()), x);
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, bool training) {
  LLOCO_CHECK(p >= 0.0 && p < 1.0, "dropout", "p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  Tensor u = rand(x.shape(), seed, x.dtype(), x.device(), offset);
  Tensor keep = compare(BinaryOp::Ge, u, full({}, p, x.dtype(), x.device()));
  return mul(x, mul(keep, 1.0 / (1.0 - p)));
}

DiffStats compare_tensors(const Tensor& a, const Tensor& ref) {
  LLOCO_CHECK(a.shape() == ref.shape(), "compare_tensors", "shape ", shape_str(a.shape()), " vs reference ",
              shape_str(ref.shape()));
  std::vector<double> x = a.to_vector<double>(), y = ref.to_vector<double>();
  DiffStats s;
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    double e = std::abs(x[i] - y[i]);
    if (e != e) e = std::numeric_limits<double>::infinity();
    s.max_abs = std::max(s.max_abs, e);
    s.max_ref = std::max(s.max_ref, std::abs(y[i]));
    err2 += e * e;
    ref2 += y[i] * y[i];
  }
  s.nmse = ref2 > 0 ? err2 / ref2 : err2;
  return s;
}

}  // namespace lloco
