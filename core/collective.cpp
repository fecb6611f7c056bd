#include "core/collective.h"

#include <array>
#include <mutex>

#include "core/error.h"

namespace lloco {

namespace {

std::mutex g_registry_mutex;
std::array<DeviceCommunicatorFactory, kNumDeviceTypes> g_factories{};

}  // namespace

void SingleProcessCommunicator::broadcast(const Tensor&, int root) {
  LLOCO_CHECK_EQ(root, 0, "broadcast", "root of a one-process group");
}

void register_device_communicator(DeviceType type, DeviceCommunicatorFactory factory) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_factories[static_cast<size_t>(type)] = factory;
}

DeviceCommunicatorFactory device_communicator_factory(DeviceType type) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  return g_factories[static_cast<size_t>(type)];
}

}  // namespace lloco
