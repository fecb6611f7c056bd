#include "tests/cuda/cuda_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "cuda/cuda.h"

namespace lloco::cuda_test {

void CudaTest::SetUp() {
  if (!cuda_backend_init()) {
    GTEST_SKIP() << "no CUDA device: cudaGetDeviceCount reported " << cuda_device_count()
                 << " devices (driver missing or no GPU); CUDA kernels are untested on this machine";
  }
}

DeviceMem::DeviceMem(size_t n) : bytes(n) {
  ptr = allocator_for(DeviceType::CUDA).allocate(n, Stream{});
}
DeviceMem::~DeviceMem() {
  if (ptr) allocator_for(DeviceType::CUDA).deallocate(ptr, bytes, Stream{});
}
DeviceMem::DeviceMem(DeviceMem&& o) noexcept : ptr(o.ptr), bytes(o.bytes) { o.ptr = nullptr; }
DeviceMem& DeviceMem::operator=(DeviceMem&& o) noexcept {
  std::swap(ptr, o.ptr);
  std::swap(bytes, o.bytes);
  return *this;
}

namespace {

TensorRef make_ref(const Buf& b, void* data) {
  TensorRef r;
  r.data = data;
  r.dtype = b.dtype;
  r.ndim = static_cast<int>(b.shape.size());
  for (int i = 0; i < r.ndim; ++i) {
    r.shape[i] = b.shape[i];
    r.strides[i] = b.strides[i];
  }
  return r;
}

std::vector<int64_t> strides_for(const std::vector<int64_t>& shape, Layout layout) {
  const int nd = static_cast<int>(shape.size());
  std::vector<int64_t> st(nd, 1);
  if (layout == Layout::Transposed && nd >= 2) {
    std::vector<int64_t> perm = shape;  // storage order: last two dims swapped
    std::swap(perm[nd - 1], perm[nd - 2]);
    std::vector<int64_t> ps(nd, 1);
    for (int i = nd - 2; i >= 0; --i) ps[i] = ps[i + 1] * perm[i + 1];
    st = ps;
    std::swap(st[nd - 1], st[nd - 2]);
    return st;
  }
  int64_t acc = 1;
  for (int i = nd - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i] + (layout == Layout::Padded && i == nd - 1 ? 3 : 0);
  }
  if (layout == Layout::Broadcast0 && nd >= 1) st[0] = 0;
  return st;
}

void store_value(uint8_t* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::F32: reinterpret_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F64: reinterpret_cast<double*>(p)[i] = v; break;
    case DType::F16: reinterpret_cast<uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::BF16: reinterpret_cast<uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::I32: reinterpret_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::I64: reinterpret_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
  }
}

Buf make_buf(const std::vector<int64_t>& shape, DType dt, Layout layout) {
  Buf b;
  b.dtype = dt;
  b.shape = shape;
  b.strides = strides_for(shape, layout);
  int64_t max_off = 0;
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) empty = true;
    max_off += (shape[i] - 1) * b.strides[i];
  }
  b.storage = empty ? 1 : max_off + 1;
  b.host.assign(static_cast<size_t>(b.storage) * dtype_size(dt), 0);
  b.dev = DeviceMem(b.host.size());
  return b;
}

}  // namespace

TensorRef Buf::href() const { return make_ref(*this, const_cast<uint8_t*>(host.data())); }
TensorRef Buf::dref() const { return make_ref(*this, dev.ptr); }

int64_t Buf::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

void Buf::upload() {
  backend_for(DeviceType::CUDA).copy_bytes(dev.ptr, host.data(), host.size(), true, false, Stream{});
}

std::vector<uint8_t> Buf::download() const {
  std::vector<uint8_t> out(host.size());
  Backend& be = backend_for(DeviceType::CUDA);
  be.synchronize(Stream{});
  be.copy_bytes(out.data(), dev.ptr, out.size(), false, true, Stream{});
  return out;
}

double Buf::host_at(int64_t i) const { return value_of(host.data(), dtype, i); }

std::mt19937_64& rng() {
  static std::mt19937_64 g(1234);
  return g;
}

Buf make_input(const std::vector<int64_t>& shape, DType dt, Layout layout, const std::function<double(int64_t)>& gen) {
  Buf b = make_buf(shape, dt, layout);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (int64_t i = 0; i < b.storage; ++i) store_value(b.host.data(), dt, i, gen ? gen(i) : nd(rng()));
  b.upload();
  return b;
}

Buf make_output(const std::vector<int64_t>& shape, DType dt, Layout layout) {
  Buf b = make_buf(shape, dt, layout);
  double poison = dtype_is_float(dt) ? std::numeric_limits<double>::quiet_NaN() : -777.0;
  for (int64_t i = 0; i < b.storage; ++i) store_value(b.host.data(), dt, i, poison);
  b.upload();
  return b;
}

Buf make_index(const std::vector<int64_t>& shape, DType dt, int64_t lo, int64_t hi) {
  std::uniform_int_distribution<int64_t> ud(lo, hi);
  return make_input(shape, dt, Layout::Contig, [&](int64_t) { return static_cast<double>(ud(rng())); });
}

TensorRef none_ref() { return TensorRef{}; }

double value_of(const uint8_t* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return reinterpret_cast<const float*>(p)[i];
    case DType::F64: return reinterpret_cast<const double*>(p)[i];
    case DType::F16: return half_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
    case DType::I32: return reinterpret_cast<const int32_t*>(p)[i];
    case DType::I64: return static_cast<double>(reinterpret_cast<const int64_t*>(p)[i]);
  }
  return 0;
}

namespace {
// Smallest positive (subnormal) value of dt: two roundings of nearly equal values may differ by one
// such step, whatever the relative tolerance (f16 gradients near 1e-6 are subnormal).
double subnormal_quantum(DType dt) {
  switch (dt) {
    case DType::F16: return 0x1p-24;
    case DType::BF16: return 0x1p-133;
    case DType::F32: return 0x1p-149;
    default: return 0.0;
  }
}

void compare(const Buf& b, double rtol, double atol, double scale, const std::string& what) {
  atol = std::max(atol, subnormal_quantum(b.dtype));
  std::vector<uint8_t> got = b.download();
  int64_t bad = 0;
  for (int64_t i = 0; i < b.storage; ++i) {
    double g = value_of(got.data(), b.dtype, i), c = b.host_at(i);
    bool ok;
    if (std::isnan(c) || std::isnan(g)) ok = std::isnan(c) && std::isnan(g);
    else if (std::isinf(c) || std::isinf(g)) ok = g == c;
    else ok = std::fabs(g - c) <= (atol + rtol * std::fabs(c)) * scale;
    if (!ok && ++bad <= 5)
      ADD_FAILURE() << what << " (" << dtype_name(b.dtype) << "): storage element " << i << ": cuda " << g << " vs cpu "
                    << c << " (rtol " << rtol << ", atol " << atol << ", scale " << scale << ")";
  }
  if (bad > 5) ADD_FAILURE() << what << ": " << bad << " mismatching elements in total";
}
}  // namespace

void expect_close(const Buf& b, double rtol, double atol, const std::string& what) { compare(b, rtol, atol, 1.0, what); }

void expect_close_normalized(const Buf& b, double tol, const std::string& what) {
  double mx = 0;
  for (int64_t i = 0; i < b.storage; ++i) {
    double c = b.host_at(i);
    if (std::isfinite(c)) mx = std::max(mx, std::fabs(c));
  }
  compare(b, 0.0, tol, mx > 0 ? mx : 1.0, what);
}

double ulp_tol(DType dt) {
  switch (dt) {
    case DType::F32: return 2e-6;
    case DType::F64: return 1e-13;
    case DType::F16: return 2.0 * 0x1p-11;
    case DType::BF16: return 2.0 * 0x1p-8;
    default: return 0.0;
  }
}

std::vector<DType> float_dtypes() { return {DType::F32, DType::F16, DType::BF16, DType::F64}; }

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contig: return "contig";
    case Layout::Transposed: return "transposed";
    case Layout::Padded: return "padded";
    case Layout::Broadcast0: return "broadcast0";
  }
  return "?";
}

}  // namespace lloco::cuda_test
