#include "core/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace lloco {

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

namespace {

// 64-byte aligned host memory (AVX-512 friendly) with byte accounting.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Stream) override {
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) LLOCO_FAIL("cpu_allocator", "out of memory allocating ", nbytes, " bytes");
    size_t cur = current_.fetch_add(nbytes) + nbytes;
    size_t peak = peak_.load();
    while (cur > peak && !peak_.compare_exchange_weak(peak, cur)) {}
    return p;
  }
  void deallocate(void* ptr, size_t nbytes, Stream) override {
    std::free(ptr);
    current_.fetch_sub(nbytes);
  }
  size_t current_bytes() const override { return current_.load(); }
  size_t peak_bytes() const override { return peak_.load(); }

 private:
  std::atomic<size_t> current_{0}, peak_{0};
};

CpuAllocator& cpu_allocator() {
  static CpuAllocator a;
  return a;
}

Allocator* g_allocators[kNumDeviceTypes] = {nullptr, nullptr};
thread_local Stream t_streams[kNumDeviceTypes];

}  // namespace

Allocator& allocator_for(DeviceType type) {
  if (type == DeviceType::CPU) return cpu_allocator();
  Allocator* a = g_allocators[static_cast<int>(type)];
  LLOCO_CHECK(a != nullptr, "allocator", "no allocator registered for device type ",
              static_cast<int>(type), " (was lloco built with CUDA, and is a GPU present?)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

Stream current_stream(DeviceType type) { return t_streams[static_cast<int>(type)]; }
void set_current_stream(DeviceType type, Stream stream) { t_streams[static_cast<int>(type)] = stream; }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device.type).allocate(nbytes, current_stream(device.type));
}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner)
    : data_(data), nbytes_(nbytes), device_(device), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (!owner_ && data_) allocator_for(device_.type).deallocate(data_, nbytes_, current_stream(device_.type));
}

}  // namespace lloco
