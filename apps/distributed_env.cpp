#include "apps/distributed_env.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "apps/args.h"

namespace lloco::apps {

namespace {

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

long long env_integer(const char* name, long long fallback, long long lo) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < lo)
    throw std::runtime_error(std::string("environment ") + name + "='" + v + "' is not an integer >= " + std::to_string(lo));
  return x;
}

}  // namespace

train::DistributedOptions distributed_from_env() {
  train::DistributedOptions o;
  o.world_size = static_cast<int>(env_integer("WORLD_SIZE", 1, 1));
  o.rank = static_cast<int>(env_integer("RANK", 0, 0));
  o.local_rank = static_cast<int>(env_integer("LOCAL_RANK", o.rank, 0));
  if (o.rank >= o.world_size)
    throw std::runtime_error("environment RANK=" + std::to_string(o.rank) + " is not below WORLD_SIZE=" +
                             std::to_string(o.world_size));
  if (o.world_size > 1) {
    const char* port = std::getenv("MASTER_PORT");
    if (!port || !*port) throw std::runtime_error("environment WORLD_SIZE=" + std::to_string(o.world_size) +
                                                  " needs MASTER_PORT (and MASTER_ADDR, default 127.0.0.1)");
    o.init = std::string("tcp://") + env_or("MASTER_ADDR", "127.0.0.1") + ":" + port;
  }
  o.backend = env_or("LLOCO_DIST_BACKEND", "auto");
  if (o.backend != "auto" && o.backend != "socket" && o.backend != "nccl")
    throw std::runtime_error("environment LLOCO_DIST_BACKEND='" + o.backend + "' must be auto, socket or nccl");
  o.timeout_s = static_cast<double>(env_integer("LLOCO_DIST_TIMEOUT", 300, 1));
  return o;
}

Device rank_device(const std::string& device_arg, const train::DistributedOptions& options) {
  const Device d = parse_device(device_arg);
  const bool bound = std::string(env_or("LLOCO_DEVICE_BOUND", "0")) == "1";
  // The CUDA backend runs on the process's current GPU (the first of CUDA_VISIBLE_DEVICES, fixed when
  // it starts), so ranks on one machine need one visible GPU each; sharing one is asked for by name.
  if (d.type == DeviceType::CUDA && device_arg == "cuda" && !bound && options.world_size > 1)
    throw std::runtime_error("--device cuda with " + std::to_string(options.world_size) +
                             " ranks: start them with `lloco launch` (one GPU each), or set CUDA_VISIBLE_DEVICES to "
                             "this rank's GPU and LLOCO_DEVICE_BOUND=1; --device cuda:0 shares the first GPU");
  return d;
}

std::shared_ptr<Communicator> connect_from_env(const train::DistributedOptions& options, Device device) {
  std::shared_ptr<Communicator> comm = train::make_communicator(options, device);
  if (options.world_size > 1 && comm->rank() == 0)
    std::fprintf(stderr, "distributed: %d ranks over %s (%s), tensors on %s\n", comm->world_size(),
                 comm->name().c_str(), options.init.c_str(), device.str().c_str());
  return comm;
}

}  // namespace lloco::apps
