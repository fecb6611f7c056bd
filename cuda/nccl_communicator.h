// NCCL behind core's Communicator interface: in-place collectives on CUDA tensors for data-parallel
// training. NCCL is loaded at run time (dlopen), so lloco_cuda has no link-time dependency on it;
// where it lives differs between machines (a system package, the CUDA toolkit, PyTorch's pip wheel).
// No CUDA or NCCL headers here, so any caller can include it.
//
// Library search order: $LLOCO_NCCL_LIBRARY (a path), then libnccl.so.2, then libnccl.so.
#pragma once
#include <memory>
#include <string>

#include "core/collective.h"

namespace lloco {

// True when this build compiled the NCCL communicator (nccl.h was found at configure time; never in
// the simt CPU executor, whose "device" memory is host memory).
bool nccl_compiled_in();
// Loads NCCL once (thread-safe, the library stays loaded); false when it cannot be loaded.
bool nccl_available();
// Why nccl_available() is false (the dlerror text of every path tried, or the version problem);
// empty once NCCL is loaded.
std::string nccl_load_error();
// NCCL_VERSION_CODE of the loaded library (e.g. 22809 for 2.28.9); 0 when it is not loaded.
int nccl_loaded_version();

// The DeviceCommunicatorFactory for CUDA: an NCCL communicator (name "nccl") over the ranks of
// `bootstrap`, which carries the NCCL unique id and serves all_gather_bytes and barrier. `device` is
// this rank's GPU (one rank per GPU: NCCL rejects two ranks on one device). Returns nullptr when NCCL
// cannot be loaded (see nccl_load_error); throws when it loads but the communicator cannot be made.
std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Communicator> bootstrap, Device device);

// Registers make_nccl_communicator for DeviceType::CUDA when nccl_compiled_in() (called from
// cuda_backend_init); loads nothing, so a program that never asks for NCCL never opens it.
void register_nccl_communicator();

}  // namespace lloco
