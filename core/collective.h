// Collectives over a fixed group of processes (one per device), for data-parallel training and
// sharded compression. core holds only the interface and a per-device-type registry, like the kernel
// tables: train/ implements a TCP ring over host memory (any device), cuda/ registers NCCL for CUDA
// tensors, and callers never include either.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace lloco {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string name() const = 0;  // "socket", "nccl", "single"

  // Sums a contiguous tensor over the group in place (f32, f64, bf16 or f16; every rank passes the
  // same shape and dtype). The result is bit-identical on every rank, so replicas stay in step.
  virtual void all_reduce_sum(const Tensor& t) = 0;
  // Overwrites every rank's contiguous `t` with root's.
  virtual void broadcast(const Tensor& t, int root) = 0;
  // Every rank's bytes in rank order (small metadata: NCCL ids, counts, names, error flags).
  virtual std::vector<std::string> all_gather_bytes(const std::string& mine) = 0;
  // Returns once every rank has entered it.
  virtual void barrier() = 0;
};

// A group of one: every collective is the identity. What single-process code passes.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_reduce_sum(const Tensor&) override {}
  void broadcast(const Tensor&, int root) override;  // root must be 0
  std::vector<std::string> all_gather_bytes(const std::string& mine) override { return {mine}; }
  void barrier() override {}
};

// A device library's communicator (NCCL for CUDA) over the same ranks as `bootstrap`, which carries
// its handshake (e.g. the NCCL unique id) and which it may keep for all_gather_bytes and barrier.
// `device` is this rank's device. Returns nullptr when the library cannot be loaded at run time.
using DeviceCommunicatorFactory = std::unique_ptr<Communicator> (*)(std::shared_ptr<Communicator> bootstrap,
                                                                    Device device);
void register_device_communicator(DeviceType type, DeviceCommunicatorFactory factory);
// nullptr when no library registered one for `type` (or it could not be loaded at run time).
DeviceCommunicatorFactory device_communicator_factory(DeviceType type);

}  // namespace lloco
