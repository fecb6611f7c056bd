// Process groups for data-parallel training: a TCP ring over host memory that works for tensors on
// any device (the "socket" backend), and the choice between it and a device library's communicator
// (NCCL for CUDA, registered by cuda/ through core/collective.h).
//
// Rendezvous: rank 0 is reachable at a known address (tcp://) or publishes one in a file (file://).
// Every rank says hello to rank 0, which answers with everyone's ring address; each rank then links
// to its ring neighbours. Rank 0 keeps its star links for small messages (all_gather_bytes, barrier
// and the header every collective starts with, which turns a mismatched call into an error on every
// rank instead of a hang). IPv4 only; ranks are assumed to share byte order.
#pragma once
#include <memory>
#include <string>

#include "core/collective.h"
#include "core/device.h"

namespace lloco::train {

struct DistributedOptions {
  int rank = 0, world_size = 1;
  int local_rank = 0;  // the device index of this rank on its machine
  // "tcp://HOST:PORT": rank 0 listens on PORT, the others connect to HOST:PORT.
  // "file:///ABS/PATH": rank 0 listens on an ephemeral port and publishes "host:port" in PATH
  // (atomically); the others poll the file. The published host is the address gethostname()
  // resolves to, or 127.0.0.1 when that is a loopback address (use tcp:// across machines then).
  std::string init;
  std::string backend = "auto";  // "auto" | "socket" | "nccl"
  // A missing or dead peer becomes an error after this long (no progress on a link for this long
  // during a transfer), never a hang.
  double timeout_s = 300;
};

// Checks the fields; throws lloco::Error naming the field and its value (and the bound it broke).
void validate_options(const DistributedOptions& options);

// Connects the ring of `world_size` processes over TCP (blocks until every rank has joined or the
// timeout passes). world_size 1 opens no socket and returns a SingleProcessCommunicator.
std::shared_ptr<Communicator> connect_socket_group(const DistributedOptions& options);

// The group for tensors on `device`. "auto": the device library's communicator when one is
// registered for device.type and loads, else the socket group; "nccl": the device library's or an
// error; "socket": the socket group. world_size 1 gives a SingleProcessCommunicator.
std::shared_ptr<Communicator> make_communicator(const DistributedOptions& options, Device device);

}  // namespace lloco::train
