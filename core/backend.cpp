#include "core/backend.h"

#include "core/error.h"

namespace lloco {

namespace cpu_impl {
Backend& cpu_backend();  // core/cpu/cpu_backend.cpp
}

namespace {
Backend* g_backends[kNumDeviceTypes] = {nullptr, nullptr};
}

Backend& backend_for(DeviceType type) {
  if (type == DeviceType::CPU) return cpu_impl::cpu_backend();
  Backend* b = g_backends[static_cast<int>(type)];
  LLOCO_CHECK(b != nullptr, "backend", "no backend registered for device type ", static_cast<int>(type),
              " (lloco was built without CUDA, lloco::cuda_backend_init() was not called, or no GPU is present)");
  return *b;
}

void register_backend(DeviceType type, Backend* backend) { g_backends[static_cast<int>(type)] = backend; }

bool backend_available(DeviceType type) {
  return type == DeviceType::CPU || g_backends[static_cast<int>(type)] != nullptr;
}

}  // namespace lloco
