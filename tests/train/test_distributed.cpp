// The socket process group (train/distributed.h): every rank is a forked child of the test, so the
// collectives run over real TCP links. A child reports a failed check by throwing; the harness
// prints it and exits 1, and the parent asserts that every child exited 0 in time. (gtest
// assertions inside a child would only be recorded in the child's copy of gtest.)
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/collective.h"
#include "core/tensor.h"
#include "tests/train/fork_ranks.h"
#include "train/distributed.h"

namespace lloco::train {
namespace {

using Clock = std::chrono::steady_clock;
using testing::require;

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Requires that `body` throws an error whose message contains every one of `parts`.
std::string require_error(const std::function<void()>& body, std::initializer_list<std::string> parts) {
  std::string message = error_of(body);
  require(!message.empty(), "expected an error, got none");
  for (const std::string& part : parts)
    require(message.find(part) != std::string::npos, "error '" + message + "' does not mention '" + part + "'");
  return message;
}

// A fresh directory for one run's rendezvous file.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "lloco_dist_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  std::string init() const { return "file://" + path_ + "/rendezvous"; }

 private:
  std::string path_;
};

DistributedOptions options(int rank, int world, const std::string& init, double timeout_s = 20) {
  DistributedOptions o;
  o.rank = rank;
  o.world_size = world;
  o.init = init;
  o.timeout_s = timeout_s;
  return o;
}

// Runs body(index) in `count` forked children and expects each to exit 0 within `limit_s`.
void run_children(int count, const std::function<void(int)>& body, double limit_s = 20) {
  const std::vector<int> codes = testing::fork_children(count, body, limit_s);
  for (size_t i = 0; i < codes.size(); ++i)
    EXPECT_EQ(codes[i], 0) << "child " << i << " failed (1) or was killed after " << limit_s
                           << " s (-1); see its message above";
}

// `world` ranks that each connect through a fresh file:// rendezvous and run body(comm).
void run_group(int world, const std::function<void(Communicator&)>& body, double timeout_s = 20) {
  TempDir dir;
  run_children(world, [&](int rank) {
    std::shared_ptr<Communicator> comm = connect_socket_group(options(rank, world, dir.init(), timeout_s));
    require(comm->rank() == rank && comm->world_size() == world, "rank / world_size of the group");
    body(*comm);
  });
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes()); }

// Rank `rank`'s input for one (size, dtype) case; every rank can regenerate every other's.
Tensor input(int rank, int64_t n, DType dt) {
  return randn({n}, 1000 * static_cast<uint64_t>(rank) + 7 * static_cast<uint64_t>(n) + static_cast<uint64_t>(dt), dt);
}

void check_all_reduce(Communicator& comm) {
  const int W = comm.world_size();
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::F16}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{W - 1}, int64_t{7}, int64_t{100003}}) {
      Tensor t = input(comm.rank(), n, dt);
      comm.all_reduce_sum(t);
      std::vector<double> want(static_cast<size_t>(n), 0.0), magnitude(static_cast<size_t>(n), 0.0);
      for (int q = 0; q < W; ++q) {
        std::vector<double> v = input(q, n, dt).to_vector<double>();
        for (size_t i = 0; i < v.size(); ++i) {
          want[i] += v[i];
          magnitude[i] += std::fabs(v[i]);
        }
      }
      // Summation in the accumulation type (f64 for f64, else f32), then one rounding to dt.
      double acc_eps = dt == DType::F64 ? dtype_eps(DType::F64) : dtype_eps(DType::F32);
      std::vector<double> got = t.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        double tol = dtype_eps(dt) * std::fabs(want[i]) + W * acc_eps * magnitude[i];
        require(std::fabs(got[i] - want[i]) <= tol,
                std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " element " + std::to_string(i) + ": got " +
                    std::to_string(got[i]) + ", want " + std::to_string(want[i]));
      }
      std::vector<std::string> everyone = comm.all_gather_bytes(bytes_of(t));
      for (int q = 0; q < W; ++q)
        require(everyone[static_cast<size_t>(q)] == bytes_of(t),
                std::string(dtype_name(dt)) + " n=" + std::to_string(n) + ": rank " + std::to_string(q) +
                    " holds different bits than rank " + std::to_string(comm.rank()));
    }
  }
}

TEST(SocketGroup, AllReduceSumsEveryDtypeAndSizeBitIdenticallyOnEveryRank) {
  for (int world = 1; world <= 4; ++world) {
    SCOPED_TRACE("world_size " + std::to_string(world));
    run_group(world, check_all_reduce);
  }
}

TEST(SocketGroup, TcpInitAndMakeCommunicatorPickTheSocketGroupOnCpu) {
  int port = 0;
  {  // a port that is free now; the children bind it moments later
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  const std::string init = "tcp://127.0.0.1:" + std::to_string(port);
  run_children(2, [&](int rank) {
    std::shared_ptr<Communicator> comm = make_communicator(options(rank, 2, init), cpu());
    require(comm->name() == "socket", "backend auto on the CPU gives " + comm->name() + ", not socket");
    check_all_reduce(*comm);
  });
}

TEST(SocketGroup, BroadcastCopiesTheRootsTensorFromEveryRoot) {
  run_group(3, [](Communicator& comm) {
    for (int root = 0; root < 3; ++root) {
      for (int64_t n : {int64_t{0}, int64_t{5}, int64_t{300001}}) {  // 1.2 MB: many relay sends
        for (DType dt : {DType::F32, DType::BF16}) {
          Tensor t = input(comm.rank() + 10 * root, n, dt);
          comm.broadcast(t, root);
          require(bytes_of(t) == bytes_of(input(root + 10 * root, n, dt)),
                  "broadcast from root " + std::to_string(root) + " of " + std::to_string(n) + " " + dtype_name(dt));
        }
      }
    }
    Tensor t = zeros({4});
    require_error([&] { comm.broadcast(t, 3); }, {"root 3", "world_size 3"});
    require_error([&] { comm.broadcast(t, -1); }, {"root -1"});
    comm.barrier();  // the bad roots were caught locally; the group still works
  });
}

TEST(SocketGroup, AllGatherBytesAndBarrier) {
  run_group(3, [](Communicator& comm) {
    const int r = comm.rank();
    std::string mine(static_cast<size_t>(5 * r), static_cast<char>('a' + r));  // rank 0's is empty
    if (r == 2) mine += std::string("\0\xff", 2);
    std::vector<std::string> all = comm.all_gather_bytes(mine);
    require(all.size() == 3, "table size");
    require(all[0].empty() && all[1] == "bbbbb" && all[2] == std::string(10, 'c') + std::string("\0\xff", 2), "table contents");
    std::vector<std::string> empties = comm.all_gather_bytes("");
    require(empties == std::vector<std::string>(3), "empty strings from every rank");
    // Nobody leaves the barrier before rank 1, which arrives late, has entered it.
    auto start = Clock::now();
    if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    comm.barrier();
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    require(waited >= 0.25, "rank " + std::to_string(r) + " left the barrier after " + std::to_string(waited) + " s");
  });
}

TEST(SocketGroup, MismatchedCallsFailOnEveryRankAndTheGroupStaysUsable) {
  run_group(3, [](Communicator& comm) {
    const int r = comm.rank();
    Tensor t = ones({r == 1 ? 1001 : 1000});
    require_error([&] { comm.all_reduce_sum(t); }, {"numel 1000", "numel 1001", "rank 1"});
    Tensor typed = ones({8}, r == 2 ? DType::F64 : DType::F32);
    require_error([&] { comm.all_reduce_sum(typed); }, {"f32", "f64", "rank 2"});
    Tensor b = ones({4});
    require_error([&] { comm.broadcast(b, r == 0 ? 0 : 1); }, {"root 0", "root 1"});
    require_error(
        [&] {
          if (r == 2) comm.barrier();
          else comm.all_reduce_sum(b);
        },
        {"barrier", "all_reduce_sum"});
    Tensor ok = ones({10});
    comm.all_reduce_sum(ok);
    require(ok.to_vector<float>() == std::vector<float>(10, 3.0f), "all_reduce after the mismatches");
  });
}

TEST(SocketGroup, ARankThatExitsMakesTheOthersFailNamingIt) {
  run_group(
      3,
      [](Communicator& comm) {
        if (comm.rank() == 2) return;  // leaves: the process exits and its links close
        auto start = Clock::now();
        Tensor t = ones({1000});
        require_error([&] { comm.all_reduce_sum(t); }, {"all_reduce_sum", "rank 2"});
        double took = std::chrono::duration<double>(Clock::now() - start).count();
        require(took < 1.5, "detecting the exit took " + std::to_string(took) + " s");
        require_error([&] { comm.barrier(); }, {"unusable"});
      },
      2.0);
}

TEST(SocketGroup, ASilentRankTimesOutNamingIt) {
  run_group(
      3,
      [](Communicator& comm) {
        if (comm.rank() == 2) {  // alive but never joins the collective
          std::this_thread::sleep_for(std::chrono::milliseconds(2500));
          return;
        }
        auto start = Clock::now();
        require_error([&] { comm.barrier(); }, {"barrier", "rank 2", "timeout_s"});
        double took = std::chrono::duration<double>(Clock::now() - start).count();
        require(took < 2.4, "the timeout of 1.2 s took " + std::to_string(took) + " s");
      },
      1.2);
}

TEST(SocketGroup, RendezvousRejectsAWrongWorldSizeAndADuplicateRank) {
  {
    TempDir dir;
    run_children(2, [&](int i) {
      // Rank 1 believes in a group of 3.
      DistributedOptions o = options(i, i == 0 ? 2 : 3, dir.init(), 5);
      require_error([&] { connect_socket_group(o); }, {"world_size 3", "world_size 2"});
    });
  }
  TempDir dir;
  run_children(3, [&](int i) {
    DistributedOptions o = options(i == 0 ? 0 : 1, 3, dir.init(), 5);  // two processes claim rank 1
    require_error([&] { connect_socket_group(o); }, {"two processes joined as rank 1"});
  });
}

TEST(DistributedOptions, BadOptionsGiveErrorsNamingTheField) {
  auto message = [](const DistributedOptions& o) { return error_of([&] { connect_socket_group(o); }); };
  EXPECT_NE(message(options(2, 2, "file:///tmp/x")).find("rank 2 and world_size 2"), std::string::npos)
      << message(options(2, 2, "file:///tmp/x"));
  EXPECT_NE(message(options(-1, 2, "file:///tmp/x")).find("rank -1"), std::string::npos);
  EXPECT_NE(message(options(0, 0, "")).find("world_size: expected >= 1, got 0"), std::string::npos);
  EXPECT_NE(message(options(0, 2, "")).find("init: required"), std::string::npos);
  EXPECT_NE(message(options(0, 2, "udp://host:1")).find("unknown scheme in 'udp://host:1'"), std::string::npos);
  EXPECT_NE(message(options(0, 2, "tcp://host:99999")).find("port '99999'"), std::string::npos);
  EXPECT_NE(message(options(0, 2, "tcp://host:abc")).find("port 'abc'"), std::string::npos);
  EXPECT_NE(message(options(0, 2, "file://relative/path")).find("absolute path"), std::string::npos);
  DistributedOptions bad_backend = options(0, 2, "file:///tmp/x");
  bad_backend.backend = "mpi";
  EXPECT_NE(message(bad_backend).find("backend: expected auto, socket or nccl, got 'mpi'"), std::string::npos);
  DistributedOptions bad_timeout = options(0, 2, "file:///tmp/x", 0);
  EXPECT_NE(message(bad_timeout).find("timeout_s"), std::string::npos);
  EXPECT_THROW(make_communicator(options(1, 1, ""), cpu()), Error);
}

TEST(DistributedOptions, MakeCommunicatorForOneProcessAndNcclOnCpu) {
  for (const char* backend : {"auto", "socket"}) {
    DistributedOptions o = options(0, 1, "");
    o.backend = backend;
    std::shared_ptr<Communicator> comm = make_communicator(o, cpu());
    EXPECT_NE(dynamic_cast<SingleProcessCommunicator*>(comm.get()), nullptr) << backend;
    EXPECT_EQ(comm->name(), "single");
    EXPECT_NE(dynamic_cast<SingleProcessCommunicator*>(connect_socket_group(o).get()), nullptr);
  }
  for (int world : {1, 2}) {  // a misconfiguration fails before any connection is tried
    DistributedOptions o = options(0, world, "file:///nonexistent/rendezvous");
    o.backend = "nccl";
    std::string message = error_of([&] { make_communicator(o, cpu()); });
    EXPECT_NE(message.find("nccl"), std::string::npos) << message;
    EXPECT_NE(message.find("device cpu"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace lloco::train
