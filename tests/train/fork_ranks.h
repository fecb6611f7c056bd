// Runs functions in forked processes (e.g. one per rank of a socket group, joined through a file://
// rendezvous in a fresh directory), for tests of multi-process code on one machine. A child never
// returns into GoogleTest: it reports a failure on stderr and through its exit status, which the
// parent checks.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
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

// Forks `count` children running body(i) and waits for them; returns each child's exit status (0 when
// body returned, 1 when it threw, after printing why; -1 when it had to be killed after `limit_s`).
// A child never returns into the caller.
inline std::vector<int> fork_children(int count, const std::function<void(int)>& body, double limit_s = 60) {
  std::fflush(nullptr);  // or buffered output would be written once per child too
  std::vector<pid_t> pids;
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 0;
      try {
        body(i);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[child %d] %s\n", i, e.what());
        code = 1;
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes(static_cast<size_t>(count), -1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (size_t done = 0; done < pids.size();) {
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (pids[i] > 0 && ::waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        pids[i] = 0;
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

// Forks `world` ranks, each joining the socket group through a file in the fresh directory `dir`
// and running body(rank, communicator); returns their exit statuses as fork_children does.
inline std::vector<int> run_ranks(int world, const std::filesystem::path& dir,
                                  const std::function<void(int rank, Communicator& comm)>& body, double limit_s = 60) {
  std::filesystem::create_directories(dir);
  return fork_children(
      world,
      [&](int rank) {
        const std::shared_ptr<Communicator> comm = connect_socket_group(file_group(dir, rank, world));
        body(rank, *comm);
      },
      limit_s);
}

// Throws (failing the rank) when `ok` is false.
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

}  // namespace lloco::train::testing
