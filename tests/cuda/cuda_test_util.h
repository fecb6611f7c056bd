// Kernel-level harness: a Buf is one strided view over two identical storages, one on the host
// (fed to the CPU backend) and one on the GPU (fed to the CUDA backend). Outputs start poisoned
// (NaN / sentinel), and the whole storages are compared afterwards, so a kernel that writes
// outside its view or skips an element fails too.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/device.h"

namespace lloco::cuda_test {

// Skips the test (never silently passes) when the CUDA backend cannot be used.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override;
  Backend& cpu() { return backend_for(DeviceType::CPU); }
  Backend& gpu() { return backend_for(DeviceType::CUDA); }
  Stream stream() { return Stream{}; }
};

enum class Layout {
  Contig,      // row-major
  Transposed,  // last two dims stored swapped (a transpose view)
  Padded,      // rows padded by 3 elements (non-mergeable strides)
  Broadcast0,  // dim 0 has stride 0 (expanded view)
};

struct DeviceMem {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceMem() = default;
  explicit DeviceMem(size_t n);
  ~DeviceMem();
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  DeviceMem(DeviceMem&& o) noexcept;
  DeviceMem& operator=(DeviceMem&& o) noexcept;
};

struct Buf {
  DType dtype = DType::F32;
  std::vector<int64_t> shape, strides;
  int64_t storage = 0;  // elements
  std::vector<uint8_t> host;
  DeviceMem dev;

  TensorRef href() const;
  TensorRef dref() const;
  int64_t numel() const;
  void upload();                             // host -> device
  std::vector<uint8_t> download() const;     // device storage bytes
  double host_at(int64_t storage_index) const;
};

std::mt19937_64& rng();
// Random-valued input view; gen(i) gives storage element i (default N(0, 1)).
Buf make_input(const std::vector<int64_t>& shape, DType dt, Layout layout = Layout::Contig,
               const std::function<double(int64_t)>& gen = {});
// Poisoned output view: NaN for floats, a sentinel for ints.
Buf make_output(const std::vector<int64_t>& shape, DType dt, Layout layout = Layout::Contig);
// Integer index tensor with values drawn from [lo, hi].
Buf make_index(const std::vector<int64_t>& shape, DType dt, int64_t lo, int64_t hi);
TensorRef none_ref();  // data == nullptr (absent mask)

double value_of(const uint8_t* storage, DType dt, int64_t i);
// |gpu - cpu| <= atol + rtol * |cpu| over the whole storage (NaN matches NaN, inf matches inf).
void expect_close(const Buf& b, double rtol, double atol, const std::string& what);
// The same, after normalising by the largest |cpu| value (for GEMM-like accumulations).
void expect_close_normalized(const Buf& b, double tol, const std::string& what);
// Relative tolerance for one rounding step of dtype (2 ulps of slack).
double ulp_tol(DType dt);

std::vector<DType> float_dtypes();
const char* layout_name(Layout l);

}  // namespace lloco::cuda_test
