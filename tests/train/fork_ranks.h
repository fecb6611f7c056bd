// Runs a function as W forked processes, one per rank of a socket group (file:// rendezvous in a
// fresh directory), for tests of multi-process code on one machine. A child never returns into
// GoogleTest: it reports a failure on stderr and through its exit status, which the parent checks.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/collective.h"
#include "train/distributed.h"

namespace lloco::train::testing {

// The options of rank `rank` of `world` ranks meeting through a file in `dir`.
inline DistributedOptions file_group(const std::filesystem::path& dir, int rank, int world, double timeout_s = 20) {
  DistributedOptions o;
  o.rank = rank;
  o.world_size = world;
  o.init = "file://" + (dir / "rendezvous").string();
  o.backend = "socket";
  o.timeout_s = timeout_s;
  return o;
}

// Forks `world` children running body(rank, communicator); returns each child's exit status (0 when
// body returned normally, 1 when it threw, 2 when the group could not form, -1 when it had to be
// killed after `limit_s`). `dir` must be fresh: it holds the rendezvous file.
inline std::vector<int> run_ranks(int world, const std::filesystem::path& dir,
                                  const std::function<void(int rank, Communicator& comm)>& body, double limit_s = 60) {
  std::filesystem::create_directories(dir);
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 0;
      std::shared_ptr<Communicator> comm;
      try {
        comm = connect_socket_group(file_group(dir, r, world));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[rank %d] group: %s\n", r, e.what());
        ::_exit(2);
      }
      try {
        body(r, *comm);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[rank %d] %s\n", r, e.what());
        code = 1;
      }
      std::fflush(stderr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes(static_cast<size_t>(world), -1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (size_t done = 0; done < pids.size();) {
    done = 0;
    for (size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] <= 0) {
        ++done;
        continue;
      }
      int status = 0;
      if (::waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        pids[r] = 0;
        ++done;
      }
    }
    if (done == pids.size()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL), ::waitpid(p, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return codes;
}

// Throws (failing the rank) when `ok` is false.
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("check failed: " + what);
}

}  // namespace lloco::train::testing
