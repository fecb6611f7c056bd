// The socket group's collectives (train/socket_group.cpp: a TCP ring over host memory) on one machine,
// next to baselines measured in the same run:
//  - all_reduce_sum of f32 tensors of 4 KiB .. 64 MiB (x4 steps) over W forked ranks (file://
//    rendezvous in a fresh temp dir), and broadcast from rank 0 at the largest size;
//  - single-thread memcpy of a buffer of the same size in rank 0's process (copy GB/s = bytes / time):
//    a ring all-reduce moves 2 (W-1) / W of the buffer through every rank, so its bus bandwidth
//    (nccl-tests' convention) is directly comparable with one memcpy of the buffer;
//  - optionally PyTorch gloo's all_reduce on the same sizes and iteration counts, read from the JSON of
//    bench/peers/allreduce_peers.py (--peers, once per world size).
//   collective_bench [--world 2,4] [--trials 3] [--repeats 5] [--peers PATH]... [--json PATH]
// Timing: per size, a correctness check and warm-up, then `repeats` blocks of iters(size) calls, each
// block after a barrier and timed on rank 0; a trial reports the median block. The group is re-formed
// for every trial and the best trial is kept (the development VM's 2 vCPUs are shared with other
// jobs). Flags also take the --flag=value form.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/collective.h"
#include "core/tensor.h"
#include "tests/train/fork_ranks.h"

namespace lloco::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

constexpr int64_t kMinBytes = int64_t{4} << 10;
constexpr int64_t kMaxBytes = int64_t{64} << 20;
constexpr int kWarmupCalls = 3;

std::vector<int64_t> message_sizes() {
  std::vector<int64_t> sizes;
  for (int64_t b = kMinBytes; b <= kMaxBytes; b *= 4) sizes.push_back(b);
  return sizes;
}

// Calls per timed block: about 256 MiB of payload, at least 5 and at most 500 calls. The peer script
// uses the same rule, so both sides make the same calls.
int64_t iters_for(int64_t bytes) { return std::clamp<int64_t>((int64_t{256} << 20) / bytes, 5, 500); }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Row {
  int64_t bytes = 0, iters = 0;
  double allreduce_s = 0, memcpy_s = 0;
};

struct Trial {
  std::vector<Row> rows;
  double broadcast_s = 0;
};

// Median seconds per single-thread memcpy of `bytes` (buffers touched first, so no page faults).
double time_memcpy(int64_t bytes, int64_t iters, int repeats) {
  std::vector<char> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes), 0);
  std::memcpy(dst.data(), src.data(), src.size());
  std::vector<double> blocks;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) {
      std::memcpy(dst.data(), src.data(), src.size());
      benchmark::DoNotOptimize(dst.data());
      benchmark::ClobberMemory();
    }
    blocks.push_back(seconds_since(t0) / static_cast<double>(iters));
  }
  return median(blocks);
}

// Median seconds per call of `op` over `repeats` barrier-separated blocks of `iters` calls.
template <typename Op>
double time_collective(Communicator& comm, int64_t iters, int repeats, Op&& op) {
  for (int i = 0; i < kWarmupCalls; ++i) op();
  std::vector<double> blocks;
  for (int r = 0; r < repeats; ++r) {
    comm.barrier();
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) op();
    blocks.push_back(seconds_since(t0) / static_cast<double>(iters));
  }
  return median(blocks);
}

// One rank's part of a trial. Rank 0 writes "bytes iters allreduce_s memcpy_s" lines and a final
// "broadcast seconds" line to `result_path`.
void rank_body(int rank, Communicator& comm, int repeats, const std::filesystem::path& result_path) {
  const int world = comm.world_size();
  std::ostringstream out;
  out.precision(9);
  for (int64_t bytes : message_sizes()) {
    const int64_t n = bytes / static_cast<int64_t>(sizeof(float)), iters = iters_for(bytes);
    // Small integers sum exactly in f32, so every element must equal 1 + 2 + ... + W.
    const Tensor check = full({n}, rank + 1.0);
    comm.all_reduce_sum(check);
    const float expected = static_cast<float>(world * (world + 1) / 2);
    const float* got = check.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (got[i] != expected)
        throw std::runtime_error("all_reduce_sum of " + std::to_string(bytes) + " bytes: element " +
                                 std::to_string(i) + " is " + std::to_string(got[i]) + ", expected " +
                                 std::to_string(expected));
    // The timed calls sum zeros: repeated sums of nonzero values would overflow to inf within 500 calls.
    const Tensor t = zeros({n});
    const double memcpy_s = rank == 0 ? time_memcpy(bytes, iters, repeats) : 0.0;
    const double s = time_collective(comm, iters, repeats, [&] { comm.all_reduce_sum(t); });
    out << bytes << ' ' << iters << ' ' << s << ' ' << memcpy_s << '\n';
  }
  const Tensor t = zeros({kMaxBytes / static_cast<int64_t>(sizeof(float))});
  const double bcast_s = time_collective(comm, iters_for(kMaxBytes), repeats, [&] { comm.broadcast(t, 0); });
  out << "broadcast " << bcast_s << '\n';
  if (rank == 0) {
    std::ofstream file(result_path);
    file << out.str();
    if (!file) throw std::runtime_error("cannot write " + result_path.string());
  }
}

Trial run_trial(int world, int repeats) {
  std::string dir_template = (std::filesystem::temp_directory_path() / "lloco_collbench_XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + dir_template);
  const std::filesystem::path dir = dir_template, result_path = dir / "rank0.txt";
  const std::vector<int> codes = train::testing::run_ranks(
      world, dir, [&](int rank, Communicator& comm) { rank_body(rank, comm, repeats, result_path); },
      /*limit_s=*/600);
  for (size_t r = 0; r < codes.size(); ++r)
    if (codes[r] != 0) {
      std::filesystem::remove_all(dir);
      throw std::runtime_error("rank " + std::to_string(r) + " of " + std::to_string(world) + " exited with status " +
                               std::to_string(codes[r]) + " (see its message above)");
    }
  Trial trial;
  std::ifstream in(result_path);
  std::string first;
  while (in >> first) {
    if (first == "broadcast") {
      in >> trial.broadcast_s;
      continue;
    }
    Row row;
    row.bytes = std::stoll(first);
    in >> row.iters >> row.allreduce_s >> row.memcpy_s;
    trial.rows.push_back(row);
  }
  std::filesystem::remove_all(dir);
  if (trial.rows.size() != message_sizes().size() || trial.broadcast_s <= 0)
    throw std::runtime_error("rank 0 wrote an incomplete result file " + result_path.string());
  return trial;
}

// The fastest trial per size, for each quantity separately (each is a baseline of its own).
Trial best_of(const std::vector<Trial>& trials) {
  Trial best = trials.front();
  for (const Trial& t : trials) {
    for (size_t i = 0; i < best.rows.size(); ++i) {
      best.rows[i].allreduce_s = std::min(best.rows[i].allreduce_s, t.rows[i].allreduce_s);
      best.rows[i].memcpy_s = std::min(best.rows[i].memcpy_s, t.rows[i].memcpy_s);
    }
    best.broadcast_s = std::min(best.broadcast_s, t.broadcast_s);
  }
  return best;
}

struct Peer {
  std::map<int64_t, double> seconds;  // by message bytes
  std::string torch;
};

std::map<int, Peer> read_peers(const std::vector<std::string>& paths) {
  std::map<int, Peer> peers;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read --peers file " + path);
    const Json j = Json::parse(in);
    Peer peer;
    const auto sizes = j.at("sizes").get<std::vector<int64_t>>();
    const auto seconds = j.at("seconds").get<std::vector<double>>();
    if (sizes.size() != seconds.size())
      throw std::runtime_error(path + ": " + std::to_string(sizes.size()) + " sizes but " +
                               std::to_string(seconds.size()) + " timings");
    for (size_t i = 0; i < sizes.size(); ++i) peer.seconds[sizes[i]] = seconds[i];
    peer.torch = j.value("torch", "");
    peers[j.at("world").get<int>()] = peer;
  }
  return peers;
}

std::string size_str(int64_t bytes) {
  return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// Prints one world size's table and returns its JSON.
Json report(int world, const Trial& best, const Peer* peer, int trials, int repeats) {
  const double bus_factor = 2.0 * (world - 1) / world;
  std::printf("\nW = %d ranks, f32 all_reduce_sum, best of %d trials (median of %d blocks each)%s\n", world, trials,
              repeats, world > static_cast<int>(std::thread::hardware_concurrency()) ? ", oversubscribed" : "");
  std::printf("%8s %6s %11s %9s %9s %10s %9s %11s %10s\n", "size", "iters", "lloco us", "algbw", "busbw",
              "memcpy", "bus/mcpy", "gloo us", "lloco/gloo");
  Json rows = Json::array();
  for (const Row& r : best.rows) {
    const double algbw = r.bytes / r.allreduce_s / 1e9, busbw = algbw * bus_factor;
    const double memcpy_gbps = r.bytes / r.memcpy_s / 1e9;
    Json row = {{"bytes", r.bytes},        {"iters", r.iters},           {"allreduce_s", r.allreduce_s},
                {"algbw_GB/s", algbw},     {"busbw_GB/s", busbw},        {"memcpy_GB/s", memcpy_gbps},
                {"busbw_of_memcpy", busbw / memcpy_gbps}};
    const double* gloo_s = nullptr;
    if (peer != nullptr) {
      const auto it = peer->seconds.find(r.bytes);
      if (it != peer->seconds.end()) gloo_s = &it->second;
    }
    if (gloo_s != nullptr) {
      row["gloo_s"] = *gloo_s;
      row["lloco_over_gloo"] = r.allreduce_s / *gloo_s;
      std::printf("%8s %6lld %11.1f %9.2f %9.2f %10.2f %9.3f %11.1f %10.2f\n", size_str(r.bytes).c_str(),
                  static_cast<long long>(r.iters), 1e6 * r.allreduce_s, algbw, busbw, memcpy_gbps,
                  busbw / memcpy_gbps, 1e6 * *gloo_s, r.allreduce_s / *gloo_s);
    } else {
      std::printf("%8s %6lld %11.1f %9.2f %9.2f %10.2f %9.3f %11s %10s\n", size_str(r.bytes).c_str(),
                  static_cast<long long>(r.iters), 1e6 * r.allreduce_s, algbw, busbw, memcpy_gbps,
                  busbw / memcpy_gbps, "-", "-");
    }
    rows.push_back(row);
  }
  const Row& largest = best.rows.back();
  const double bcast_gbps = largest.bytes / best.broadcast_s / 1e9;
  const double memcpy_gbps = largest.bytes / largest.memcpy_s / 1e9;
  std::printf("broadcast %s from rank 0: %.1f us, %.2f GB/s (algbw = busbw), %.3f of memcpy\n",
              size_str(largest.bytes).c_str(), 1e6 * best.broadcast_s, bcast_gbps, bcast_gbps / memcpy_gbps);
  Json out = {{"world", world}, {"all_reduce", rows}};
  out["broadcast"] = {{"bytes", largest.bytes},
                      {"iters", largest.iters},
                      {"seconds", best.broadcast_s},
                      {"GB/s", bcast_gbps},
                      {"of_memcpy", bcast_gbps / memcpy_gbps}};
  if (peer != nullptr) out["gloo_torch"] = peer->torch;
  return out;
}

struct Options {
  std::vector<int> worlds{2, 4};
  int trials = 3, repeats = 5;
  std::vector<std::string> peers;
  std::string json;
};

std::vector<int> parse_worlds(const std::string& list) {
  std::vector<int> worlds;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    const int w = std::stoi(item);
    if (w < 2) throw std::invalid_argument("--world: every world size must be >= 2, got " + item);
    worlds.push_back(w);
  }
  return worlds;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw std::invalid_argument(arg + " needs a value");
    }
    if (arg == "--world") {
      o.worlds = parse_worlds(value);
    } else if (arg == "--trials") {
      o.trials = std::stoi(value);
    } else if (arg == "--repeats") {
      o.repeats = std::stoi(value);
    } else if (arg == "--peers") {
      o.peers.push_back(value);
    } else if (arg == "--json") {
      o.json = value;
    } else {
      throw std::invalid_argument("unknown flag " + arg);
    }
  }
  if (o.trials < 1 || o.repeats < 1)
    throw std::invalid_argument("--trials and --repeats must be >= 1, got " + std::to_string(o.trials) + " and " +
                                std::to_string(o.repeats));
  return o;
}

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) {
  using namespace lloco::bench;
  try {
    const Options opt = parse_args(argc, argv);
    const std::map<int, Peer> peers = read_peers(opt.peers);
    const std::string load_before = load_average();
    std::printf("machine: %s, %u hardware threads, load average %s\n", cpu_model().c_str(),
                std::thread::hardware_concurrency(), load_before.c_str());
    std::printf("busbw = algbw * 2(W-1)/W; memcpy = single-thread memcpy of the same size in rank 0 (bytes / time)\n");
    Json out = {{"cpu", cpu_model()},
                {"hardware_threads", std::thread::hardware_concurrency()},
                {"load_average_before", load_before},
                {"trials", opt.trials},
                {"repeats", opt.repeats},
                {"runs", Json::array()}};
    for (int world : opt.worlds) {
      std::vector<Trial> trials;
      for (int t = 0; t < opt.trials; ++t) trials.push_back(run_trial(world, opt.repeats));
      const auto peer = peers.find(world);
      out["runs"].push_back(
          report(world, best_of(trials), peer == peers.end() ? nullptr : &peer->second, opt.trials, opt.repeats));
    }
    out["load_average_after"] = load_average();
    if (!opt.json.empty()) {
      lloco::AtomicFile f(opt.json);
      f.write(out.dump(1) + "\n");
      f.commit();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "collective_bench failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
