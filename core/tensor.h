// Tensor: shared storage + shape + strides (in elements) + offset + dtype, plus optional autograd
// state. Views (reshape, permute, narrow, expand, ...) share storage; contiguous() copies.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace lloco {

using Shape = std::vector<int64_t>;
constexpr int kMaxDims = 8;

struct AutogradMeta;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const { return shape_[wrap_dim(d)]; }
  int64_t stride(int64_t d) const { return strides_[wrap_dim(d)]; }
  int64_t numel() const { return shape_numel(shape_); }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Pointer to the first element of this view.
  void* data_ptr() const;
  template <typename T>
  T* data() const;  // checks that T matches dtype and the tensor is on the CPU
  int64_t wrap_dim(int64_t d) const;  // negative dims count from the end; throws when out of range
  std::string str() const;             // "f32[2, 3] cpu"

  // ---- views (no copy; autograd-aware) ----
  Tensor view(const Shape& shape) const;     // requires compatible strides
  Tensor reshape(const Shape& shape) const;  // view when possible, else copies; one -1 allowed
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // size-1 dims broadcast with stride 0
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;

  // ---- copies ----
  Tensor contiguous() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor clone() const;

  // ---- host access ----
  double item() const;  // single-element tensors, any dtype
  template <typename T>
  std::vector<T> to_vector() const;  // converts from any dtype; copies to host

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  Tensor grad() const;  // undefined when no gradient has been accumulated
  void set_grad(const Tensor& g) const;
  void zero_grad() const;
  void backward() const;
  void backward(const Tensor& grad, bool retain_graph = false) const;
  Tensor detach() const;
  const std::shared_ptr<AutogradMeta>& autograd_meta() const { return meta_; }
  void set_autograd_meta(std::shared_ptr<AutogradMeta> m) { meta_ = std::move(m); }

  // Raw view constructor used by the view ops (no autograd bookkeeping).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
  std::shared_ptr<AutogradMeta> meta_;
};

// ---- factories ----
Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = cpu());
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor empty_like(const Tensor& t);
Tensor scalar(double value, DType dtype = DType::F32, Device device = cpu());  // 0-d tensor
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::I64, Device device = cpu());
// Counter-based (Philox 4x32-10) random numbers: element i of a tensor made with (seed, offset)
// is the same on every device and for every shape.
Tensor rand(const Shape& shape, uint64_t seed, DType dtype = DType::F32, Device device = cpu(), uint64_t offset = 0);
Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::F32, Device device = cpu(), uint64_t offset = 0);
// Host data -> tensor (values converted to dtype).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, DType dtype, Device device = cpu());
Tensor from_vector(const std::vector<float>& values, const Shape& shape);

// In-place helpers without autograd (optimizers, concat, loaders).
void copy_(const Tensor& dst, const Tensor& src);  // shapes must match (src may broadcast); casts
void fill_(const Tensor& dst, double value);

}  // namespace lloco
