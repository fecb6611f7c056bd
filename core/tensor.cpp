#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <type_traits>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"

namespace lloco {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)), offset_(offset),
      dtype_(dtype) {
  LLOCO_CHECK(shape_.size() <= kMaxDims, "tensor", "at most ", kMaxDims, " dims supported, got ", shape_.size());
  LLOCO_CHECK_EQ(shape_.size(), strides_.size(), "tensor", "shape and strides rank");
}

Device Tensor::device() const { return storage_ ? storage_->device() : cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  LLOCO_CHECK(defined(), "data_ptr", "tensor is undefined");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

template <typename T>
static constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, Half>) return DType::F16;
  else return DType::BF16;
}

template <typename T>
T* Tensor::data() const {
  LLOCO_CHECK(dtype_ == dtype_of<T>(), "data", "requested ", dtype_name(dtype_of<T>()), " pointer of a ",
              dtype_name(dtype_), " tensor");
  LLOCO_CHECK(device().type == DeviceType::CPU, "data", "host pointer requested for a tensor on ", device().str());
  return static_cast<T*>(data_ptr());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template Half* Tensor::data<Half>() const;
template BFloat16* Tensor::data<BFloat16>() const;

int64_t Tensor::wrap_dim(int64_t d) const {
  int64_t n = dim();
  int64_t w = d < 0 ? d + n : d;
  LLOCO_CHECK(w >= 0 && w < n, "dim", "dimension ", d, " out of range for a tensor of rank ", n);
  return w;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device().str();
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  return Tensor(storage_, shape, strides, offset, dtype_);
}

// ---- views ----------------------------------------------------------------------------------------

// Strides for viewing this tensor as `shape` without copying, or empty when impossible.
static Shape view_strides(const Tensor& t, const Shape& shape) {
  if (t.is_contiguous()) return contiguous_strides(shape);
  // Walk both shapes, matching chunks of old dims that are contiguous among themselves.
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  Shape st(shape.size());
  int64_t oi = 0, ni = 0, on = static_cast<int64_t>(os.size()), nn = static_cast<int64_t>(shape.size());
  while (oi < on || ni < nn) {
    while (oi < on && os[oi] == 1) ++oi;
    while (ni < nn && shape[ni] == 1) st[ni++] = 1;
    if (oi >= on && ni >= nn) break;
    if (oi >= on || ni >= nn) return {};
    // Size-1 dims join any chunk, but their strides mean nothing: contiguity is judged between the
    // chunk's last real dim and the next real one (e.g. an expanded [1, 4 (stride 0), 1, 64]).
    int64_t o_end = oi, last = oi, chunk = os[oi];
    while (o_end + 1 < on) {
      const int64_t next = o_end + 1;
      if (os[next] != 1) {
        if (ost[last] != ost[next] * os[next]) break;
        last = next;
        chunk *= os[next];
      }
      o_end = next;
    }
    const int64_t inner_stride = ost[last];
    int64_t prod = 1, n_start = ni;
    while (ni < nn && prod < chunk) prod *= shape[ni++];
    if (prod != chunk) return {};
    int64_t acc = inner_stride;
    for (int64_t k = ni - 1; k >= n_start; --k) {
      st[k] = acc;
      acc *= shape[k];
    }
    oi = o_end + 1;
  }
  return st;
}

static Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      LLOCO_CHECK(infer < 0, op, "only one -1 allowed in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      LLOCO_CHECK(out[i] >= 0, op, "negative size in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    LLOCO_CHECK(known != 0 && numel % known == 0, op, "cannot infer -1 in ", shape_str(shape), " for ", numel,
                " elements");
    out[infer] = numel / known;
  }
  LLOCO_CHECK_EQ(shape_numel(out), numel, op, "element count of " + shape_str(out));
  return out;
}

Tensor Tensor::view(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "view");
  Shape st = view_strides(*this, target);
  LLOCO_CHECK(!st.empty() || target.empty(), "view", "cannot view ", str(), " as ", shape_str(target),
              " without a copy (use reshape)");
  Tensor out = as_strided(target, st, offset_);
  Shape in_shape = shape_;
  return record(out, "view", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "reshape");
  Shape st = view_strides(*this, target);
  if (!st.empty() || target.empty()) return view(target);
  return copy(*this).view(target);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  LLOCO_CHECK_EQ(static_cast<int64_t>(order.size()), dim(), "permute", "order length vs rank");
  Shape sh(order.size()), st(order.size());
  std::vector<int64_t> inverse(order.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t d = wrap_dim(order[i]);
    LLOCO_CHECK(inverse[d] < 0, "permute", "dimension ", d, " repeated");
    inverse[d] = static_cast<int64_t>(i);
    sh[i] = shape_[d];
    st[i] = strides_[d];
  }
  return record(as_strided(sh, st, offset_), "permute", {*this},
                [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> order(dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_dim(a)], order[wrap_dim(b)]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d);
  LLOCO_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow", "range [", start, ", ",
              start + length, ") out of bounds for dim ", d, " of size ", shape_[d]);
  Shape sh = shape_;
  sh[d] = length;
  Tensor out = as_strided(sh, strides_, offset_ + start * strides_[d]);
  Shape in_shape = shape_;
  DType dt = dtype_;
  Device dev = device();
  return record(out, "narrow", {*this}, [in_shape, dt, dev, d, start, length](const Tensor& g) {
    Tensor z = zeros(in_shape, dt, dev);
    copy_(z.narrow(d, start, length), g);
    return std::vector<Tensor>{z};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d);
  if (index < 0) index += shape_[d];
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& shape) const {
  LLOCO_CHECK(static_cast<int64_t>(shape.size()) >= dim(), "expand", "cannot expand ", str(), " to ",
              shape_str(shape));
  size_t lead = shape.size() - shape_.size();
  Shape st(shape.size(), 0);
  Shape sh = shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      LLOCO_CHECK(shape[i] >= 0, "expand", "new leading dims must be sized, got ", shape_str(shape));
      continue;
    }
    int64_t s = shape_[i - lead];
    if (sh[i] == -1) sh[i] = s;
    if (s == sh[i]) {
      st[i] = strides_[i - lead];
    } else {
      LLOCO_CHECK(s == 1, "expand", "cannot expand ", str(), " to ", shape_str(shape), " (dim ", i, ": ", s,
                  " vs ", sh[i], ")");
    }
  }
  Shape in_shape = shape_;
  return record(as_strided(sh, st, offset_), "expand", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to_shape(g, in_shape)}; });
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d);
  LLOCO_CHECK(shape_[d] == 1, "squeeze", "dim ", d, " has size ", shape_[d], ", not 1");
  Shape sh = shape_, st = strides_;
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Shape in_shape = shape_;
  return record(as_strided(sh, st, offset_), "squeeze", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim() + 1;
  int64_t w = d < 0 ? d + n : d;
  LLOCO_CHECK(w >= 0 && w < n, "unsqueeze", "dimension ", d, " out of range for rank ", dim());
  Shape sh = shape_, st = strides_;
  int64_t new_stride = w < dim() ? strides_[w] * shape_[w] : 1;
  sh.insert(sh.begin() + w, 1);
  st.insert(st.begin() + w, new_stride);
  Shape in_shape = shape_;
  return record(as_strided(sh, st, offset_), "unsqueeze", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start);
  end = wrap_dim(end);
  Shape sh;
  for (int64_t i = 0; i < start; ++i) sh.push_back(shape_[i]);
  int64_t prod = 1;
  for (int64_t i = start; i <= end; ++i) prod *= shape_[i];
  sh.push_back(prod);
  for (int64_t i = end + 1; i < dim(); ++i) sh.push_back(shape_[i]);
  return reshape(sh);
}

// ---- copies -----------------------------------------------------------------------------------------

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : copy(*this); }
Tensor Tensor::clone() const { return copy(*this); }
Tensor Tensor::to(DType dt) const { return dt == dtype_ ? *this : cast(*this, dt); }

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape_, dtype_, dev);
  bool dst_dev = dev.type != DeviceType::CPU, src_dev = device().type != DeviceType::CPU;
  Backend& be = backend_for(dst_dev ? dev.type : device().type);
  DeviceType st = dst_dev ? dev.type : device().type;
  be.copy_bytes(out.data_ptr(), src.data_ptr(), nbytes(), dst_dev, src_dev, current_stream(st));
  if (!dst_dev) be.synchronize(current_stream(st));
  Device from = device();
  return record(out, "to_device", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

double Tensor::item() const {
  LLOCO_CHECK(numel() == 1, "item", "tensor ", str(), " has ", numel(), " elements, not 1");
  return to_vector<double>()[0];
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  if constexpr (std::is_integral_v<T>) {  // integers never pass through double (exact above 2^53)
    if (dtype_is_int(dtype_)) {
      Tensor host = to(cpu()).contiguous();
      std::vector<T> out(static_cast<size_t>(numel()));
      for (size_t i = 0; i < out.size(); ++i)
        out[i] = dtype_ == DType::I64 ? static_cast<T>(static_cast<const int64_t*>(host.data_ptr())[i])
                                      : static_cast<T>(static_cast<const int32_t*>(host.data_ptr())[i]);
      return out;
    }
  }
  Tensor host = to(cpu()).to(DType::F64).contiguous();
  const double* p = static_cast<const double*>(host.data_ptr());
  std::vector<T> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

// ---- autograd accessors -------------------------------------------------------------------------

bool Tensor::requires_grad() const { return meta_ && meta_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  LLOCO_CHECK(!on || dtype_is_float(dtype_), "requires_grad", "only floating tensors can require grad, got ",
              dtype_name(dtype_));
  if (!meta_) meta_ = std::make_shared<AutogradMeta>();
  LLOCO_CHECK(meta_->grad_fn == nullptr || on, "requires_grad", "cannot turn off grad on a non-leaf tensor");
  meta_->requires_grad = on;
  meta_->shape = shape_;
  meta_->dtype = dtype_;
  return *this;
}

bool Tensor::is_leaf() const { return !meta_ || meta_->grad_fn == nullptr; }
Tensor Tensor::grad() const { return meta_ ? meta_->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) const {
  LLOCO_CHECK(meta_ != nullptr, "set_grad", "tensor does not require grad");
  if (g.defined()) LLOCO_CHECK(g.shape() == shape_, "set_grad", "gradient shape ", shape_str(g.shape()), " vs tensor ", shape_str(shape_));
  meta_->grad = g;
}

void Tensor::zero_grad() const {
  if (meta_) meta_->grad = Tensor();
}

void Tensor::backward() const { run_backward(*this, Tensor(), false); }
void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

Tensor Tensor::detach() const { return Tensor(storage_, shape_, strides_, offset_, dtype_); }

// ---- factories -----------------------------------------------------------------------------------

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) LLOCO_CHECK(d >= 0, "empty", "negative size in shape ", shape_str(shape));
  size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(nbytes, device);
  return Tensor(storage, shape, contiguous_strides(shape), 0, dtype);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  LLOCO_CHECK(step != 0, "arange", "step must be non-zero");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = empty({std::max<int64_t>(n, 0)}, dtype, device);
  if (n > 0) backend_for(device.type).arange(to_ref(t), start, step, current_stream(device.type));
  return t;
}

static Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype, Device device, uint64_t offset,
                            RandomKind kind) {
  LLOCO_CHECK(dtype_is_float(dtype), "random", "random tensors must be floating, got ", dtype_name(dtype));
  Tensor t = empty(shape, dtype, device);
  if (t.numel() > 0) backend_for(device.type).random(to_ref(t), kind, seed, offset, current_stream(device.type));
  return t;
}
Tensor rand(const Shape& shape, uint64_t seed, DType dtype, Device device, uint64_t offset) {
  return random_tensor(shape, seed, dtype, device, offset, RandomKind::Uniform);
}
Tensor randn(const Shape& shape, uint64_t seed, DType dtype, Device device, uint64_t offset) {
  return random_tensor(shape, seed, dtype, device, offset, RandomKind::Normal);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, DType dtype, Device device) {
  LLOCO_CHECK_EQ(static_cast<int64_t>(values.size()), shape_numel(shape), "from_vector",
                 "value count vs shape " + shape_str(shape));
  if constexpr (std::is_integral_v<T>) {  // exact for 64-bit values
    if (dtype == DType::I64 || dtype == DType::I32) {
      Tensor out = empty(shape, dtype, cpu());
      for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == DType::I64) static_cast<int64_t*>(out.data_ptr())[i] = static_cast<int64_t>(values[i]);
        else static_cast<int32_t*>(out.data_ptr())[i] = static_cast<int32_t>(values[i]);
      }
      return out.to(device);
    }
  }
  Tensor host = empty(shape, DType::F64, cpu());
  double* p = static_cast<double*>(host.data_ptr());
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<double>(values[i]);
  Tensor out = dtype == DType::F64 ? host : empty(shape, dtype, cpu());
  if (dtype != DType::F64) backend_for(DeviceType::CPU).copy(to_ref(out), to_ref(host), Stream{});
  return out.to(device);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, DType, Device);
template Tensor from_vector(const std::vector<double>&, const Shape&, DType, Device);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, DType, Device);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, DType, Device);
Tensor from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_vector<float>(values, shape, DType::F32, cpu());
}

void copy_(const Tensor& dst, const Tensor& src) {
  LLOCO_CHECK(dst.defined() && src.defined(), "copy_", "undefined tensor");
  Tensor s = src.shape() == dst.shape() ? src : src.detach().expand(dst.shape());
  if (s.device() != dst.device()) s = s.detach().to(dst.device());
  backend_for(dst.device().type).copy(to_ref(dst), to_ref(s), current_stream(dst.device().type));
}

void fill_(const Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  backend_for(dst.device().type).fill(to_ref(dst), value, current_stream(dst.device().type));
}

}  // namespace lloco
