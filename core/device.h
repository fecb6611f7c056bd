// Devices, streams and allocators. CUDA is designed in but lives in cuda/: that library registers
// its allocator and backend at start-up, so core never includes a CUDA header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace lloco {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu", "cuda:0"
};
inline Device cpu() { return Device{DeviceType::CPU, 0}; }
inline Device cuda(int index = 0) { return Device{DeviceType::CUDA, index}; }

// Opaque stream handle (a cudaStream_t on CUDA, unused on CPU). Work is ordered per stream.
struct Stream {
  void* handle = nullptr;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, Stream stream) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, Stream stream) = 0;
  virtual size_t current_bytes() const = 0;
  virtual size_t peak_bytes() const = 0;
};

// The allocator a device type uses; cuda/ installs its caching allocator here.
Allocator& allocator_for(DeviceType type);
void register_allocator(DeviceType type, Allocator* allocator);
// The stream new work is queued on (per device type, settable for the current thread).
Stream current_stream(DeviceType type);
void set_current_stream(DeviceType type, Stream stream);

// A block of memory on one device, shared by every view of it. `owner` keeps foreign memory alive
// (e.g. an mmap'ed safetensors file) when the storage did not allocate it.
class Storage {
 public:
  Storage(size_t nbytes, Device device);                                  // allocates
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner);  // wraps
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::shared_ptr<void> owner_;  // null when we own data_ through the allocator
};

}  // namespace lloco
