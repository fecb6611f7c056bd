// The process group a launcher describes in the environment, in torchrun's names: RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT (`lloco launch` sets them; torchrun and srun wrappers do too).
// LLOCO_DIST_BACKEND (auto|socket|nccl) and LLOCO_DIST_TIMEOUT (seconds) tune it. Read only in apps/.
#pragma once
#include <memory>
#include <string>

#include "core/collective.h"
#include "core/device.h"
#include "train/distributed.h"

namespace lloco::apps {

// Options from the environment; world_size 1 when WORLD_SIZE is unset. Bad values throw naming the
// variable and the value.
train::DistributedOptions distributed_from_env();

// This rank's device for a --device value. A bare "cuda" over several ranks needs a GPU bound to each
// process (LLOCO_DEVICE_BOUND=1 with CUDA_VISIBLE_DEVICES narrowed, as `lloco launch` does) and is an
// error otherwise; "cuda:0" over several ranks shares the first GPU on purpose.
Device rank_device(const std::string& device_arg, const train::DistributedOptions& options);

// The communicator for tensors on `device` (a one-process group when world_size is 1), announced on
// stderr by rank 0 so logs show what ran.
std::shared_ptr<Communicator> connect_from_env(const train::DistributedOptions& options, Device device);

}  // namespace lloco::apps
