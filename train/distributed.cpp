// Option checks, the rendezvous that connects the socket group, and the choice of backend.
#include "train/distributed.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "train/socket_group.h"

namespace lloco::train {

namespace {

using net::Frame;
using net::Link;
using net::LinkError;
using net::Socket;

constexpr const char* kOp = "distributed";
constexpr uint32_t kHelloTag = 0x4c4c4f43;  // "LLOC": tells our peers from stray clients

struct InitAddress {
  bool file = false;
  std::string host, path;  // host for tcp://, path for file://
  int port = 0;
};

InitAddress parse_init(const std::string& init) {
  const std::string tcp = "tcp://", file = "file://";
  InitAddress out;
  if (init.rfind(file, 0) == 0) {
    out.file = true;
    out.path = init.substr(file.size());
    LLOCO_CHECK(!out.path.empty() && out.path[0] == '/', kOp, "init: file:// needs an absolute path, got '",
                init, "'");
    return out;
  }
  LLOCO_CHECK(init.rfind(tcp, 0) == 0, kOp, "init: unknown scheme in '", init,
              "'; expected tcp://HOST:PORT or file:///ABS/PATH");
  std::string rest = init.substr(tcp.size());
  size_t colon = rest.rfind(':');
  LLOCO_CHECK(colon != std::string::npos && colon > 0, kOp, "init: expected tcp://HOST:PORT, got '", init, "'");
  out.host = rest.substr(0, colon);
  std::string port = rest.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  out.port = digits ? std::stoi(port) : 0;
  LLOCO_CHECK(out.port >= 1 && out.port <= 65535, kOp, "init: port '", port, "' in '", init,
              "' is not a number in [1, 65535]");
  return out;
}

using Clock = std::chrono::steady_clock;

struct Deadline {
  explicit Deadline(double seconds)
      : end(Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))) {}
  double left() const { return std::max(0.0, std::chrono::duration<double>(end - Clock::now()).count()); }
  Clock::time_point end;
};

std::string ip_str(uint32_t ip_network_order) {
  char text[INET_ADDRSTRLEN] = "?";
  in_addr a{ip_network_order};
  inet_ntop(AF_INET, &a, text, sizeof(text));
  return text;
}

Socket new_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  LLOCO_CHECK(fd >= 0, kOp, "socket() failed: ", std::strerror(errno));
  return Socket(fd);
}

// Small messages (headers, hellos) must not wait for Nagle's algorithm.
void set_nodelay(const Socket& s) {
  int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Listens on every interface; port 0 picks an ephemeral one.
Socket make_listener(int port) {
  Socket s = new_socket();
  int one = 1;
  ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // rebind a port in TIME_WAIT
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  LLOCO_CHECK(::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, kOp, "cannot bind port ",
              port, ": ", std::strerror(errno));
  LLOCO_CHECK(::listen(s.fd(), SOMAXCONN) == 0, kOp, "listen() failed: ", std::strerror(errno));
  return s;
}

int local_port(const Socket& s) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

std::optional<sockaddr_in> resolve(const std::string& host, int port, std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    why = lloco::detail::concat("cannot resolve '", host, "': ", gai_strerror(rc));
    return std::nullopt;
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  ::freeaddrinfo(found);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// One non-blocking connect bounded by `seconds`; an invalid socket (and `why`) when it fails.
Socket try_connect(const sockaddr_in& addr, double seconds, std::string& why) {
  Socket s = new_socket();
  if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      why = std::strerror(errno);
      return Socket();
    }
    pollfd p{s.fd(), POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, static_cast<int>(std::ceil(seconds * 1000)));
    } while (ready < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready <= 0) {
      why = "connect timed out";
      return Socket();
    }
    ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      why = std::strerror(err);
      return Socket();
    }
  }
  set_nodelay(s);
  return s;
}

// Retries (with backoff) while the peer is not listening yet, until the deadline. `where` gives the
// address to try, or nullopt and why not (rank 0 has not published it yet).
Socket connect_retrying(const std::function<std::optional<sockaddr_in>(std::string&)>& where,
                        const Deadline& deadline, const std::string& what, double timeout_s) {
  double backoff_s = 0.01;
  std::string why = "not tried";
  while (true) {
    if (std::optional<sockaddr_in> addr = where(why)) {
      Socket s = try_connect(*addr, std::min(deadline.left(), 5.0), why);
      if (s.valid()) return s;
    }
    if (deadline.left() <= 0)
      LLOCO_FAIL(kOp, "could not connect to ", what, " within ", timeout_s, " s (timeout_s): ", why);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(backoff_s, deadline.left())));
    backoff_s = std::min(backoff_s * 2, 0.5);
  }
}

Socket accept_one(const Socket& listener, const Deadline& deadline, sockaddr_in& from, const std::string& what,
                  double timeout_s) {
  while (true) {
    pollfd p{listener.fd(), POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::ceil(deadline.left() * 1000)));
    if (ready < 0 && errno == EINTR) continue;
    LLOCO_CHECK(ready > 0, kOp, "timed out after ", timeout_s, " s (timeout_s) waiting for ", what);
    socklen_t len = sizeof(from);
    int fd = ::accept4(listener.fd(), reinterpret_cast<sockaddr*>(&from), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // The client gave up between poll and accept (or a signal came): wait for the next one.
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) continue;
      LLOCO_FAIL(kOp, "accept() failed while waiting for ", what, ": ", std::strerror(errno));
    }
    Socket s(fd);
    set_nodelay(s);
    return s;
  }
}

// The address peers reach rank 0 at, for file:// init: this host's first IPv4 address, unless that
// is a loopback one (then only same-machine peers can work, through 127.0.0.1).
std::string host_to_publish() {
  char name[256] = {};
  std::string why;
  if (::gethostname(name, sizeof(name) - 1) == 0) {
    if (std::optional<sockaddr_in> addr = resolve(name, 0, why)) {
      if ((ntohl(addr->sin_addr.s_addr) >> 24) != 127) return ip_str(addr->sin_addr.s_addr);
    }
  }
  return "127.0.0.1";
}

// Rank 0's "host:port" from the rendezvous file; nullopt while it is missing or incomplete.
std::optional<std::pair<std::string, int>> read_published(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  size_t colon = line.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  int port = std::atoi(line.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return std::nullopt;
  return std::make_pair(line.substr(0, colon), port);
}

struct Hello {
  int32_t rank = 0, world_size = 0;
  uint32_t ring_port = 0;
};

// Rank 0's half of the rendezvous: accept every other rank, check its hello, send everyone the table
// of ring addresses (IPs as rank 0's accept() saw them; rank 0's own entry is filled in by each peer
// with the address it reached rank 0 at). Returns the star links, indexed by rank.
std::vector<Link> gather_peers(const DistributedOptions& o, const InitAddress& init, int ring_port,
                               std::vector<uint32_t>& ips, std::vector<uint32_t>& ports, const Deadline& deadline) {
  Socket listener = make_listener(init.file ? 0 : init.port);
  if (init.file) write_file_atomic(init.path, host_to_publish() + ":" + std::to_string(local_port(listener)) + "\n");
  const int W = o.world_size;
  std::vector<Link> star(static_cast<size_t>(W));
  ports[0] = static_cast<uint32_t>(ring_port);
  // Tells the offending process and everyone who joined so far, so none of them waits for a table.
  auto reject = [&](Link& culprit, const std::string& message) {
    star[0] = std::move(culprit);  // rank 0 has no link to itself, so the slot is free
    for (Link& link : star) {
      if (!link.socket.valid()) continue;
      try {
        send_frame(link, net::kReplyFatal, message, o.timeout_s, kOp);
      } catch (const LinkError&) {
        // That peer is gone already; the message is still thrown here.
      }
    }
    throw Error(message);
  };
  for (int joined = 1; joined < W;) {
    sockaddr_in from{};
    Link link{accept_one(listener, deadline, from, lloco::detail::concat(W - joined, " more of ", W - 1, " ranks to join"),
                         o.timeout_s),
              -1};
    Frame hello_frame;
    try {
      hello_frame = recv_frame(link, std::min(deadline.left(), o.timeout_s), kOp);
    } catch (const LinkError&) {
      continue;  // not one of ours (a port scan, a stale client): drop it
    }
    if (hello_frame.tag != kHelloTag || hello_frame.payload.size() != sizeof(Hello)) continue;
    Hello hello;
    std::memcpy(&hello, hello_frame.payload.data(), sizeof(Hello));
    link.peer = hello.rank;
    const std::string peer_ip = ip_str(from.sin_addr.s_addr);
    if (hello.world_size != W)
      reject(link, lloco::detail::concat("[", kOp, "] world_size: rank ", hello.rank, " (", peer_ip, ") has world_size ",
                                  hello.world_size, " but rank 0 has world_size ", W));
    if (hello.rank < 1 || hello.rank >= W)
      reject(link, lloco::detail::concat("[", kOp, "] rank: a process at ", peer_ip, " joined as rank ", hello.rank,
                                  " but rank 0 expects ranks 1..", W - 1));
    Link& slot = star[static_cast<size_t>(hello.rank)];
    if (slot.socket.valid())
      reject(link, lloco::detail::concat("[", kOp, "] rank: two processes joined as rank ", hello.rank, " (from ",
                                  ip_str(ips[static_cast<size_t>(hello.rank)]), " and from ", peer_ip, ")"));
    ips[static_cast<size_t>(hello.rank)] = from.sin_addr.s_addr;
    ports[static_cast<size_t>(hello.rank)] = hello.ring_port;
    slot = std::move(link);
    ++joined;
  }
  if (init.file) ::unlink(init.path.c_str());  // everyone is in; a later run must not find a stale address
  std::string table;
  for (int r = 0; r < W; ++r) {
    table.append(reinterpret_cast<const char*>(&ips[static_cast<size_t>(r)]), 4);
    table.append(reinterpret_cast<const char*>(&ports[static_cast<size_t>(r)]), 4);
  }
  for (int r = 1; r < W; ++r) send_frame(star[static_cast<size_t>(r)], net::kReplyOk, table, o.timeout_s, kOp);
  return star;
}

// A non-zero rank's half: reach rank 0, say hello, read the table.
Link join_root(const DistributedOptions& o, const InitAddress& init, int ring_port, std::vector<uint32_t>& ips,
               std::vector<uint32_t>& ports, const Deadline& deadline) {
  std::string where = init.file ? lloco::detail::concat("rank 0 (address published in ", init.path, ")")
                                : lloco::detail::concat("rank 0 at ", init.host, ":", init.port);
  auto address = [&](std::string& why) -> std::optional<sockaddr_in> {
    if (!init.file) return resolve(init.host, init.port, why);
    std::optional<std::pair<std::string, int>> published = read_published(init.path);
    if (!published) {
      why = "rank 0 has not published its address yet";
      return std::nullopt;
    }
    return resolve(published->first, published->second, why);
  };
  Link root{connect_retrying(address, deadline, where, o.timeout_s), 0};
  Hello hello{o.rank, o.world_size, static_cast<uint32_t>(ring_port)};
  send_frame(root, kHelloTag, std::string_view(reinterpret_cast<const char*>(&hello), sizeof(hello)), o.timeout_s, kOp);
  // Rank 0 answers once the last rank has joined, which may take up to its own timeout.
  Frame reply = recv_frame(root, 2 * o.timeout_s, kOp);
  if (reply.tag != net::kReplyOk) throw Error(reply.payload);
  const size_t W = static_cast<size_t>(o.world_size);
  LLOCO_CHECK_EQ(reply.payload.size(), 8 * W, kOp, "bytes in rank 0's address table");
  for (size_t r = 0; r < W; ++r) {
    std::memcpy(&ips[r], reply.payload.data() + 8 * r, 4);
    std::memcpy(&ports[r], reply.payload.data() + 8 * r + 4, 4);
  }
  sockaddr_in root_addr{};
  socklen_t len = sizeof(root_addr);
  ::getpeername(root.socket.fd(), reinterpret_cast<sockaddr*>(&root_addr), &len);
  ips[0] = root_addr.sin_addr.s_addr;
  return root;
}

}  // namespace

void validate_options(const DistributedOptions& o) {
  LLOCO_CHECK(o.world_size >= 1, kOp, "world_size: expected >= 1, got ", o.world_size);
  LLOCO_CHECK(o.rank >= 0 && o.rank < o.world_size, kOp, "rank: expected 0 <= rank < world_size, got rank ",
              o.rank, " and world_size ", o.world_size);
  LLOCO_CHECK(o.local_rank >= 0, kOp, "local_rank: expected >= 0, got ", o.local_rank);
  LLOCO_CHECK(std::isfinite(o.timeout_s) && o.timeout_s > 0, kOp, "timeout_s: expected > 0, got ", o.timeout_s);
  LLOCO_CHECK(o.backend == "auto" || o.backend == "socket" || o.backend == "nccl", kOp,
              "backend: expected auto, socket or nccl, got '", o.backend, "'");
  LLOCO_CHECK(o.world_size == 1 || !o.init.empty(), kOp, "init: required when world_size > 1 (world_size ",
              o.world_size, "); pass tcp://HOST:PORT or file:///ABS/PATH");
  if (!o.init.empty()) parse_init(o.init);
}

std::shared_ptr<Communicator> connect_socket_group(const DistributedOptions& o) {
  validate_options(o);
  if (o.world_size == 1) return std::make_shared<SingleProcessCommunicator>();
  const InitAddress init = parse_init(o.init);
  const int W = o.world_size, r = o.rank;
  const Deadline deadline(o.timeout_s);
  // Listen for the ring predecessor before saying hello, so the table never names a closed port.
  Socket ring_listener = make_listener(0);
  const int ring_port = local_port(ring_listener);
  std::vector<uint32_t> ips(static_cast<size_t>(W)), ports(static_cast<size_t>(W));
  std::vector<Link> star;
  if (r == 0) {
    star = gather_peers(o, init, ring_port, ips, ports, deadline);
  } else {
    star.push_back(join_root(o, init, ring_port, ips, ports, deadline));
  }

  // Everyone is listening, so connect forward first and accept from behind second (no cycle).
  const int next = (r + 1) % W, prev = (r + W - 1) % W;
  const Deadline ring_deadline(o.timeout_s);
  auto next_address = [&](std::string&) -> std::optional<sockaddr_in> {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = ips[static_cast<size_t>(next)];
    addr.sin_port = htons(static_cast<uint16_t>(ports[static_cast<size_t>(next)]));
    return addr;
  };
  Link next_link{connect_retrying(next_address, ring_deadline,
                                  lloco::detail::concat("ring successor rank ", next, " at ", ip_str(ips[static_cast<size_t>(next)]),
                                                 ":", ports[static_cast<size_t>(next)]),
                                  o.timeout_s),
                 next};
  const int32_t my_rank = r;
  net::transfer(&next_link, &my_rank, sizeof(my_rank), nullptr, nullptr, 0, o.timeout_s, kOp);
  sockaddr_in from{};
  Link prev_link{accept_one(ring_listener, ring_deadline, from, lloco::detail::concat("ring predecessor rank ", prev),
                            o.timeout_s),
                 prev};
  int32_t their_rank = -1;
  net::transfer(nullptr, nullptr, 0, &prev_link, &their_rank, sizeof(their_rank), o.timeout_s, kOp);
  LLOCO_CHECK(their_rank == prev, kOp, "ring: expected rank ", prev, " to connect to rank ", r, ", got rank ",
              their_rank);
  return std::make_shared<net::SocketGroup>(r, W, o.timeout_s, std::move(star), std::move(next_link),
                                               std::move(prev_link));
}

std::shared_ptr<Communicator> make_communicator(const DistributedOptions& o, Device device) {
  validate_options(o);
  DeviceCommunicatorFactory factory = device_communicator_factory(device.type);
  // A misconfigured backend fails even in a one-process run, where it is cheap to find.
  if (o.backend == "nccl") {
    LLOCO_CHECK(device.type != DeviceType::CPU, kOp, "backend: nccl needs tensors on a GPU, got device ",
                device.str(), "; use backend socket or auto");
    LLOCO_CHECK(factory != nullptr, kOp, "backend: nccl asked for, but no communicator library is registered for ",
                device.str(), " (is the CUDA backend linked in?)");
  }
  if (o.world_size == 1) return std::make_shared<SingleProcessCommunicator>();
  std::shared_ptr<Communicator> sockets = connect_socket_group(o);
  if (o.backend == "socket" || factory == nullptr) return sockets;
  if (std::unique_ptr<Communicator> library = factory(sockets, device)) return std::shared_ptr<Communicator>(std::move(library));
  LLOCO_CHECK(o.backend == "auto", kOp, "backend: nccl asked for, but its library could not be loaded for ",
              device.str());
  return sockets;
}

}  // namespace lloco::train
