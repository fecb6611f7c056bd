// `lloco launch`: starts one process per rank with torchrun's environment (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), binds one GPU to each, prefixes their output with the rank,
// and stops the whole group as soon as one rank fails, so a crash never leaves peers waiting.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/command.h"

namespace {

using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco launch --nproc N [options] [--] COMMAND [ARGS...]

Runs COMMAND as N ranks of one process group (data-parallel `finetune`, `compress-train`,
sharded `compress`). COMMAND is a lloco subcommand (run by this executable) or a program.
Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and by
default CUDA_VISIBLE_DEVICES narrowed to its own GPU (LLOCO_DEVICE_BOUND=1). When a rank exits
with an error the others are stopped (SIGTERM, SIGKILL after --grace seconds) and launch exits
with that rank's status.

  --nproc N            processes on this machine (ranks of this node)
  --nnodes M           machines (default 1); each runs `lloco launch` with its --node-rank
  --node-rank K        this machine's index (default 0): its ranks are K*N .. K*N+N-1
  --master-addr HOST   where rank 0 listens (default 127.0.0.1; required when --nnodes > 1)
  --master-port P      its port (default: a free one; required when --nnodes > 1)
  --no-bind-devices    leave CUDA_VISIBLE_DEVICES alone (ranks then share a GPU: --device cuda:0)
  --no-prefix          pass the ranks' output through unprefixed
  --grace S            seconds between SIGTERM and SIGKILL when stopping the group (default 10)
)";

struct LaunchOptions {
  int nproc = 0, nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  bool bind_devices = true, prefix = true;
  double grace_s = 10;
  std::vector<std::string> command;
};

int parse_int(const std::string& flag, const std::string& v, int lo, int hi) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > hi)
    throw std::runtime_error(flag + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "], got '" + v + "'");
  return static_cast<int>(x);
}

// Options end at "--" or at the first word that is not one: the rest is the command, verbatim.
LaunchOptions parse(const std::vector<std::string>& argv, bool& help) {
  LaunchOptions o;
  size_t i = 0;
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= argv.size()) throw std::runtime_error(flag + " needs a value");
    return argv[++i];
  };
  for (; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.rfind("-", 0) != 0) break;
    if (a == "--help" || a == "-h") help = true;
    else if (a == "--nproc" || a == "-n") o.nproc = parse_int("--nproc", value(a), 1, 1024);
    else if (a == "--nnodes") o.nnodes = parse_int("--nnodes", value(a), 1, 65536);
    else if (a == "--node-rank") o.node_rank = parse_int("--node-rank", value(a), 0, 65535);
    else if (a == "--master-addr") o.master_addr = value(a);
    else if (a == "--master-port") o.master_port = parse_int("--master-port", value(a), 1, 65535);
    else if (a == "--no-bind-devices") o.bind_devices = false;
    else if (a == "--no-prefix") o.prefix = false;
    else if (a == "--grace") o.grace_s = parse_int("--grace", value(a), 0, 3600);
    else throw std::runtime_error("unknown option '" + a + "' (lloco launch --help)");
  }
  if (help) return o;
  o.command.assign(argv.begin() + static_cast<long>(i), argv.end());
  if (o.nproc == 0) throw std::runtime_error("--nproc is required");
  if (o.command.empty()) throw std::runtime_error("no command to launch");
  if (o.node_rank >= o.nnodes)
    throw std::runtime_error("--node-rank " + std::to_string(o.node_rank) + " is not below --nnodes " +
                             std::to_string(o.nnodes));
  if (o.nnodes > 1 && o.master_port == 0)
    throw std::runtime_error("--nnodes " + std::to_string(o.nnodes) + " needs --master-port (and --master-addr)");
  return o;
}

// A port nothing listens on now. Rank 0 binds it moments later; another process taking it in
// between makes rank 0 fail to listen (clear error), not the group hang.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("launch: socket(): ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("launch: no free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The GPUs ranks are bound to: the launcher's CUDA_VISIBLE_DEVICES list, else 0 .. nproc-1.
std::vector<std::string> device_list(int nproc) {
  std::vector<std::string> ids;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible && *visible) {
    std::stringstream list(visible);
    for (std::string id; std::getline(list, id, ',');) ids.push_back(id);
    if (static_cast<int>(ids.size()) < nproc)
      throw std::runtime_error("CUDA_VISIBLE_DEVICES='" + std::string(visible) + "' lists " +
                               std::to_string(ids.size()) + " devices for --nproc " + std::to_string(nproc) +
                               ": list more, or pass --no-bind-devices to let ranks share them");
  } else {
    for (int i = 0; i < nproc; ++i) ids.push_back(std::to_string(i));
  }
  return ids;
}

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;   // read ends of the rank's stdout / stderr (-1: closed or unprefixed)
  std::string out_buf, err_buf;   // partial lines
  bool running = true;
  int status = 0;
};

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

// Writes the complete lines of `buf` to `stream` behind "[rank r] ", keeping a partial tail
// (all of it at `eof`).
void flush_lines(std::string& buf, FILE* stream, int rank, bool eof) {
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
    std::fprintf(stream, "[rank %d] %.*s\n", rank, static_cast<int>(nl - start), buf.data() + start);
  buf.erase(0, start);
  if (eof && !buf.empty()) {
    std::fprintf(stream, "[rank %d] %s\n", rank, buf.c_str());
    buf.clear();
  }
  std::fflush(stream);
}

// Starts rank r.rank as the leader of a new process group (signals reach its children too).
pid_t spawn(const LaunchOptions& o, int local_rank, const std::vector<std::string>& devices, Rank& r) {
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (o.prefix && (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0))
    throw std::runtime_error(std::string("launch: pipe(): ") + std::strerror(errno));
  const bool is_subcommand = lloco::apps::command_registry().count(o.command[0]) > 0;
  std::vector<std::string> words;
  if (is_subcommand) words.push_back("/proc/self/exe");
  words.insert(words.end(), o.command.begin(), o.command.end());
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("launch: fork(): ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);  // the rank and whatever it starts form one group, stopped together
    if (o.prefix) {
      ::dup2(out_pipe[1], STDOUT_FILENO);
      ::dup2(err_pipe[1], STDERR_FILENO);
      ::close(out_pipe[0]), ::close(out_pipe[1]), ::close(err_pipe[0]), ::close(err_pipe[1]);
    }
    const int world = o.nproc * o.nnodes;
    ::setenv("RANK", std::to_string(r.rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    ::setenv("LOCAL_RANK", std::to_string(local_rank).c_str(), 1);
    ::setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
    ::setenv("MASTER_ADDR", o.master_addr.c_str(), 1);
    ::setenv("MASTER_PORT", std::to_string(o.master_port).c_str(), 1);
    if (o.bind_devices) {
      ::setenv("CUDA_VISIBLE_DEVICES", devices[static_cast<size_t>(local_rank)].c_str(), 1);
      ::setenv("LLOCO_DEVICE_BOUND", "1", 1);
    }
    std::vector<char*> cargv;
    for (std::string& w : words) cargv.push_back(w.data());
    cargv.push_back(nullptr);
    if (is_subcommand) ::execv(cargv[0], cargv.data());
    else ::execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "lloco launch: cannot run '%s': %s\n", o.command[0].c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so a signal sent right after fork finds the group
  if (o.prefix) {
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    r.out_fd = out_pipe[0];
    r.err_fd = err_pipe[0];
  }
  return pid;
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "exited with status " + std::to_string(exit_code(status));
}

void signal_all(std::vector<Rank>& ranks, int sig) {
  for (Rank& r : ranks)
    if (r.running) ::kill(-r.pid, sig);
}

// Reads what the ranks wrote, for up to `wait_ms`.
void pump_output(std::vector<Rank>& ranks, int wait_ms) {
  std::vector<pollfd> fds;
  std::vector<std::pair<Rank*, bool>> owners;  // (rank, is_stdout)
  for (Rank& r : ranks) {
    if (r.out_fd >= 0) fds.push_back({r.out_fd, POLLIN, 0}), owners.push_back({&r, true});
    if (r.err_fd >= 0) fds.push_back({r.err_fd, POLLIN, 0}), owners.push_back({&r, false});
  }
  if (fds.empty()) {
    ::usleep(static_cast<useconds_t>(wait_ms) * 1000);
    return;
  }
  if (::poll(fds.data(), fds.size(), wait_ms) <= 0) return;
  char chunk[65536];
  for (size_t k = 0; k < fds.size(); ++k) {
    if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    auto [r, is_out] = owners[k];
    const ssize_t n = ::read(fds[k].fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    std::string& buf = is_out ? r->out_buf : r->err_buf;
    FILE* stream = is_out ? stdout : stderr;
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      flush_lines(buf, stream, r->rank, false);
    } else {
      flush_lines(buf, stream, r->rank, true);
      ::close(fds[k].fd);
      (is_out ? r->out_fd : r->err_fd) = -1;
    }
  }
}

std::chrono::steady_clock::time_point grace_deadline(double seconds) {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

int run_launch(const std::vector<std::string>& argv) {
  bool help = false;
  LaunchOptions o = parse(argv, help);
  if (help) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (o.master_port == 0) o.master_port = free_port();
  const std::vector<std::string> devices = o.bind_devices ? device_list(o.nproc) : std::vector<std::string>{};
  std::fprintf(stderr, "launch: ranks %d..%d of %d, rendezvous %s:%d\n", o.node_rank * o.nproc,
               o.node_rank * o.nproc + o.nproc - 1, o.nproc * o.nnodes, o.master_addr.c_str(), o.master_port);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::vector<Rank> ranks(static_cast<size_t>(o.nproc));
  for (int l = 0; l < o.nproc; ++l) {
    Rank& r = ranks[static_cast<size_t>(l)];
    r.rank = o.node_rank * o.nproc + l;
    r.pid = spawn(o, l, devices, r);
  }
  int result = 0;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  for (;;) {
    pump_output(ranks, 100);
    if (g_signal != 0 && !stopping) {
      std::fprintf(stderr, "launch: got %s, stopping the ranks\n", strsignal(g_signal));
      result = 128 + g_signal;
      stopping = true;
      signal_all(ranks, SIGTERM);
      stop_deadline = grace_deadline(o.grace_s);
    }
    bool any_running = false;
    for (Rank& r : ranks) {
      if (!r.running) continue;
      int status = 0;
      const pid_t got = ::waitpid(r.pid, &status, WNOHANG);
      if (got == 0) {
        any_running = true;
        continue;
      }
      r.running = false;
      r.status = status;
      if (exit_code(status) != 0 && !stopping) {
        std::fprintf(stderr, "launch: rank %d %s; stopping the other ranks\n", r.rank, describe(status).c_str());
        result = exit_code(status);
        stopping = true;
        signal_all(ranks, SIGTERM);
        stop_deadline = grace_deadline(o.grace_s);
      }
    }
    if (!any_running) break;
    if (stopping && std::chrono::steady_clock::now() > stop_deadline) {
      std::fprintf(stderr, "launch: ranks still running %.0f s after SIGTERM: SIGKILL\n", o.grace_s);
      signal_all(ranks, SIGKILL);
      stop_deadline = std::chrono::steady_clock::time_point::max();
    }
  }
  for (int i = 0; i < 50; ++i) {  // drain what the ranks wrote just before exiting
    bool open = false;
    for (const Rank& r : ranks) open = open || r.out_fd >= 0 || r.err_fd >= 0;
    if (!open) break;
    pump_output(ranks, 100);
  }
  if (result == 0) std::fprintf(stderr, "launch: all %d ranks finished\n", o.nproc);
  return result;
}

}  // namespace

LLOCO_COMMAND("launch", "run a command as N ranks of a process group (data-parallel training, sharded compression)",
              run_launch);
