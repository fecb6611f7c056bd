#include "train/socket_group.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/cpu/half_convert.h"

namespace lloco::train::net {

namespace {

// One send() call moves at most this much, so a fast sender still returns to poll() and drains its
// receive side (the peer may be blocked sending to us).
constexpr size_t kMaxSendCall = size_t{1} << 20;
constexpr size_t kFrameHeaderBytes = 12;
// A frame longer than this is garbage on the wire (a stray client or a desynchronised stream).
constexpr uint64_t kMaxFramePayload = uint64_t{1} << 40;

int poll_ms(double seconds) {
  return static_cast<int>(std::clamp(std::ceil(seconds * 1000.0), 0.0, static_cast<double>(INT_MAX)));
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
T get(std::string_view bytes, size_t& pos, const char* op) {
  if (pos > bytes.size() || bytes.size() - pos < sizeof(T))
    throw LinkError(detail::concat("[", op, "] truncated message (", bytes.size(), " bytes)"));
  T value;
  std::memcpy(&value, bytes.data() + pos, sizeof(T));
  pos += sizeof(T);
  return value;
}

struct Header {  // what a tensor collective's star round compares across ranks
  int64_t numel = 0;
  uint32_t dtype = 0;
  int32_t root = 0;
};

std::string pack_header(const Header& h) {
  std::string s;
  put(s, h.numel);
  put(s, h.dtype);
  put(s, h.root);
  return s;
}

const char* op_name(SocketGroup::Op op) {
  switch (op) {
    case SocketGroup::Op::AllGather: return "all_gather_bytes";
    case SocketGroup::Op::Barrier: return "barrier";
    case SocketGroup::Op::AllReduce: return "all_reduce_sum";
    case SocketGroup::Op::Broadcast: return "broadcast";
  }
  return "unknown collective";
}

std::string describe_header(SocketGroup::Op op, const std::string& payload) {
  size_t pos = 0;
  Header h;
  h.numel = get<int64_t>(payload, pos, op_name(op));
  h.dtype = get<uint32_t>(payload, pos, op_name(op));
  h.root = get<int32_t>(payload, pos, op_name(op));
  std::string s = detail::concat("numel ", h.numel, ", dtype ", dtype_name(static_cast<DType>(h.dtype)));
  if (op == SocketGroup::Op::Broadcast) s += detail::concat(", root ", h.root);
  return s;
}

// Empty when `theirs` may join rank 0's call, else why not (the same text every rank will throw).
std::string mismatch(SocketGroup::Op mine, const std::string& my_payload, int peer, uint32_t their_tag,
                     const std::string& their_payload) {
  auto theirs = static_cast<SocketGroup::Op>(their_tag);
  if (theirs != mine) {
    const char* their_name = their_tag >= 1 && their_tag <= 4 ? op_name(theirs) : "an unknown collective";
    return detail::concat("[", op_name(mine), "] ranks called different collectives: rank 0 called ",
                          op_name(mine), " but rank ", peer, " called ", their_name);
  }
  bool tensor_op = mine == SocketGroup::Op::AllReduce || mine == SocketGroup::Op::Broadcast;
  if (!tensor_op || their_payload == my_payload) return {};
  return detail::concat("[", op_name(mine), "] ranks passed different tensors: rank 0 passed ",
                        describe_header(mine, my_payload), " but rank ", peer, " passed ",
                        describe_header(mine, their_payload));
}

}  // namespace

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void Socket::shutdown() const {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void transfer(const Link* out, const void* src, size_t nsend, const Link* in, void* dst, size_t nrecv,
              double timeout_s, const char* op, bool relay) {
  const char* send_bytes = static_cast<const char*>(src);
  char* recv_bytes = static_cast<char*>(dst);
  size_t sent = 0, got = 0;
  while (sent < nsend || got < nrecv) {
    size_t sendable = relay ? std::min(got, nsend) : nsend;
    pollfd fds[2];
    int nfds = 0, out_slot = -1, in_slot = -1;
    if (sent < sendable) {
      out_slot = nfds;
      fds[nfds++] = pollfd{out->socket.fd(), POLLOUT, 0};
    }
    if (got < nrecv) {
      in_slot = nfds;
      fds[nfds++] = pollfd{in->socket.fd(), POLLIN, 0};
    }
    int ready = ::poll(fds, static_cast<nfds_t>(nfds), poll_ms(timeout_s));
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw LinkError(detail::concat("[", op, "] poll failed: ", std::strerror(errno)));
    }
    if (ready == 0) {
      std::string waiting = in_slot >= 0 ? detail::concat("receiving from peer rank ", in->peer) : "";
      if (out_slot >= 0)
        waiting += detail::concat(waiting.empty() ? "" : " and ", "sending to peer rank ", out->peer);
      throw LinkError(detail::concat("[", op, "] no progress for ", timeout_s, " s (timeout_s) ", waiting,
                                     "; did that rank die or call a different collective?"));
    }
    if (in_slot >= 0 && fds[in_slot].revents != 0) {
      ssize_t k = ::recv(in->socket.fd(), recv_bytes + got, nrecv - got, 0);
      if (k > 0) {
        got += static_cast<size_t>(k);
      } else if (k == 0) {
        throw LinkError(detail::concat("[", op, "] peer rank ", in->peer, " closed the connection (",
                                       got, " of ", nrecv, " bytes received)"));
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw LinkError(detail::concat("[", op, "] receiving from peer rank ", in->peer,
                                       " failed: ", std::strerror(errno)));
      }
    }
    if (out_slot >= 0 && fds[out_slot].revents != 0) {
      size_t chunk = std::min(sendable - sent, kMaxSendCall);
      ssize_t k = ::send(out->socket.fd(), send_bytes + sent, chunk, MSG_NOSIGNAL);
      if (k >= 0) {
        sent += static_cast<size_t>(k);
      } else if (errno == EPIPE || errno == ECONNRESET) {
        throw LinkError(detail::concat("[", op, "] peer rank ", out->peer, " closed the connection (",
                                       sent, " of ", nsend, " bytes sent)"));
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw LinkError(detail::concat("[", op, "] sending to peer rank ", out->peer,
                                       " failed: ", std::strerror(errno)));
      }
    }
  }
}

void send_frame(const Link& link, uint32_t tag, std::string_view payload, double timeout_s, const char* op) {
  std::string bytes;
  bytes.reserve(kFrameHeaderBytes + payload.size());
  put(bytes, tag);
  put(bytes, static_cast<uint64_t>(payload.size()));
  bytes.append(payload);
  transfer(&link, bytes.data(), bytes.size(), nullptr, nullptr, 0, timeout_s, op);
}

Frame recv_frame(const Link& link, double timeout_s, const char* op) {
  char header[kFrameHeaderBytes];
  transfer(nullptr, nullptr, 0, &link, header, sizeof(header), timeout_s, op);
  Frame frame;
  uint64_t length;
  std::memcpy(&frame.tag, header, 4);
  std::memcpy(&length, header + 4, 8);
  if (length > kMaxFramePayload)
    throw LinkError(detail::concat("[", op, "] garbled message from peer rank ", link.peer, " (length ", length, ")"));
  frame.payload.resize(length);
  transfer(nullptr, nullptr, 0, &link, frame.payload.data(), length, timeout_s, op);
  return frame;
}

std::string pack_strings(const std::vector<std::string>& items) {
  std::string out;
  put(out, static_cast<uint64_t>(items.size()));
  for (const std::string& item : items) {
    put(out, static_cast<uint64_t>(item.size()));
    out += item;
  }
  return out;
}

std::vector<std::string> unpack_strings(std::string_view bytes, const char* op) {
  size_t pos = 0;
  uint64_t count = get<uint64_t>(bytes, pos, op);
  std::vector<std::string> items;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t length = get<uint64_t>(bytes, pos, op);
    if (length > bytes.size() - pos)
      throw LinkError(detail::concat("[", op, "] truncated table (", bytes.size(), " bytes)"));
    items.emplace_back(bytes.substr(pos, length));
    pos += length;
  }
  return items;
}

SocketGroup::SocketGroup(int rank, int world_size, double timeout_s, std::vector<Link> star, Link next, Link prev)
    : rank_(rank), world_(world_size), timeout_s_(timeout_s), star_(std::move(star)),
      next_(std::move(next)), prev_(std::move(prev)) {}

void SocketGroup::break_group(const std::string& why) {
  broken_ = why;
  for (const Link& link : star_) link.socket.shutdown();
  next_.socket.shutdown();
  prev_.socket.shutdown();
}

template <typename F>
auto SocketGroup::guarded(const char* op, F&& body) {
  LLOCO_CHECK(broken_.empty(), op, "the group is unusable after an earlier failure: ", broken_);
  try {
    return body();
  } catch (const LinkError& e) {
    break_group(e.what());
    throw;
  }
}

std::vector<std::string> SocketGroup::gather_at_root(Op op, const std::string& payload) {
  const char* name = op_name(op);
  std::vector<std::string> table(static_cast<size_t>(world_));
  table[0] = payload;
  std::string fatal, disagreement;
  std::vector<bool> alive(static_cast<size_t>(world_), true);
  // Read every rank's frame even after a failure, so no link is closed with unread data (which
  // would reset it and could destroy the error reply before the peer reads it).
  for (int k = 1; k < world_; ++k) {
    try {
      Frame frame = recv_frame(star_[k], timeout_s_, name);
      if (disagreement.empty()) disagreement = mismatch(op, payload, k, frame.tag, frame.payload);
      table[k] = std::move(frame.payload);
    } catch (const LinkError& e) {
      alive[k] = false;
      if (fatal.empty()) fatal = e.what();
    }
  }
  auto reply_all = [&](uint32_t status, const std::string& body) {
    for (int k = 1; k < world_; ++k) {
      if (!alive[k]) continue;
      try {
        send_frame(star_[k], status, body, timeout_s_, name);
      } catch (const LinkError&) {
        // The peer is gone too; the error we are about to throw already explains the failure.
      }
    }
  };
  if (!fatal.empty()) {
    reply_all(kReplyFatal, fatal);
    throw LinkError(fatal);
  }
  if (!disagreement.empty()) {
    reply_all(kReplyMismatch, disagreement);
    throw Error(disagreement);
  }
  std::string packed = pack_strings(table);
  for (int k = 1; k < world_; ++k) send_frame(star_[k], kReplyOk, packed, timeout_s_, name);
  return table;
}

std::vector<std::string> SocketGroup::star_round(Op op, const std::string& payload) {
  if (rank_ == 0) return gather_at_root(op, payload);
  const char* name = op_name(op);
  send_frame(star_[0], static_cast<uint32_t>(op), payload, timeout_s_, name);
  // Rank 0 may spend a full timeout diagnosing a silent peer before it replies with the diagnosis.
  Frame reply = recv_frame(star_[0], 2 * timeout_s_, name);
  if (reply.tag == kReplyOk) {
    std::vector<std::string> table = unpack_strings(reply.payload, name);
    if (static_cast<int>(table.size()) != world_)
      throw LinkError(detail::concat("[", name, "] rank 0 sent ", table.size(), " entries for a group of ", world_));
    return table;
  }
  if (reply.tag == kReplyMismatch) throw Error(reply.payload);
  throw LinkError(detail::concat(reply.payload, " (reported by rank 0)"));
}

template <typename Acc>
void SocketGroup::ring_all_reduce(Acc* data, int64_t n) {
  // Chunk c is [begin(c), begin(c+1)); sizes differ by at most one and may be 0.
  auto begin = [&](int c) { return n * c / world_; };
  auto length = [&](int c) { return static_cast<size_t>(begin(c + 1) - begin(c)); };
  auto chunk_of = [&](int c) { return ((c % world_) + world_) % world_; };
  const size_t need = static_cast<size_t>(n / world_ + 1) * sizeof(Acc);  // a chunk has floor or ceil of n/W
  if (scratch_bytes_ < need) {
    scratch_ = std::make_unique_for_overwrite<char[]>(need);
    scratch_bytes_ = need;
  }
  Acc* incoming = reinterpret_cast<Acc*>(scratch_.get());
  // Reduce-scatter: after step s, chunk r-s-1 on rank r holds the sum over ranks r-s-1..r, so after
  // W-1 steps rank r alone holds the complete sum of chunk r+1.
  for (int s = 0; s < world_ - 1; ++s) {
    int send_c = chunk_of(rank_ - s), recv_c = chunk_of(rank_ - s - 1);
    transfer(&next_, data + begin(send_c), length(send_c) * sizeof(Acc), &prev_, incoming,
             length(recv_c) * sizeof(Acc), timeout_s_, "all_reduce_sum");
    Acc* acc = data + begin(recv_c);
    for (size_t i = 0; i < length(recv_c); ++i) acc[i] += incoming[i];
  }
  // All-gather: the complete chunks travel around the ring and overwrite the partial sums, so every
  // rank ends with the owner's bits.
  for (int s = 0; s < world_ - 1; ++s) {
    int send_c = chunk_of(rank_ + 1 - s), recv_c = chunk_of(rank_ - s);
    transfer(&next_, data + begin(send_c), length(send_c) * sizeof(Acc), &prev_, data + begin(recv_c),
             length(recv_c) * sizeof(Acc), timeout_s_, "all_reduce_sum");
  }
}

void SocketGroup::relay_broadcast(char* data, size_t nbytes, int root) {
  // A chain root -> root+1 -> ... -> root-1, forwarded byte by byte as it arrives.
  int position = ((rank_ - root) % world_ + world_) % world_;
  const char* op = "broadcast";
  if (position == 0) {
    transfer(&next_, data, nbytes, nullptr, nullptr, 0, timeout_s_, op);
  } else if (position == world_ - 1) {
    transfer(nullptr, nullptr, 0, &prev_, data, nbytes, timeout_s_, op);
  } else {
    transfer(&next_, data, nbytes, &prev_, data, nbytes, timeout_s_, op, /*relay=*/true);
  }
}

void SocketGroup::all_reduce_sum(const Tensor& t) {
  const char* op = "all_reduce_sum";
  LLOCO_CHECK(t.defined(), op, "undefined tensor");
  LLOCO_CHECK(t.is_contiguous(), op, "needs a contiguous tensor, got ", t.str(), " with strides ",
              shape_str(t.strides()));
  DType dt = t.dtype();
  LLOCO_CHECK(dtype_is_float(dt), op, "sums f32, f64, bf16 or f16 tensors, got ", dtype_name(dt));
  guarded(op, [&] {
    star_round(Op::AllReduce, pack_header({t.numel(), static_cast<uint32_t>(dt), 0}));
    const int64_t n = t.numel();
    if (n == 0) return;
    Tensor host = t.device().type == DeviceType::CPU ? t : t.detach().to(cpu());
    if (dt == DType::F32) {
      ring_all_reduce(static_cast<float*>(host.data_ptr()), n);
    } else if (dt == DType::F64) {
      ring_all_reduce(static_cast<double*>(host.data_ptr()), n);
    } else {
      // Halves are summed in f32 and rounded once, after the last addition.
      std::vector<float> wide(static_cast<size_t>(n));
      auto* halves = static_cast<uint16_t*>(host.data_ptr());
      cpu_impl::widen_half(halves, wide.data(), n, dt);
      ring_all_reduce(wide.data(), n);
      cpu_impl::narrow_to_half(wide.data(), halves, n, dt);
    }
    if (t.device().type != DeviceType::CPU) copy_(t, host);
  });
}

void SocketGroup::broadcast(const Tensor& t, int root) {
  const char* op = "broadcast";
  LLOCO_CHECK(t.defined(), op, "undefined tensor");
  LLOCO_CHECK(root >= 0 && root < world_, op, "root: expected 0 <= root < world_size, got root ", root,
              " and world_size ", world_);
  LLOCO_CHECK(t.is_contiguous(), op, "needs a contiguous tensor, got ", t.str(), " with strides ",
              shape_str(t.strides()));
  guarded(op, [&] {
    star_round(Op::Broadcast, pack_header({t.numel(), static_cast<uint32_t>(t.dtype()), root}));
    if (t.numel() == 0) return;
    bool on_cpu = t.device().type == DeviceType::CPU;
    // Receivers on a device only need a host buffer to land in, not a copy of their old values.
    Tensor host = on_cpu ? t : rank_ == root ? t.detach().to(cpu()) : empty(t.shape(), t.dtype(), cpu());
    relay_broadcast(static_cast<char*>(host.data_ptr()), host.nbytes(), root);
    if (!on_cpu && rank_ != root) copy_(t, host);
  });
}

std::vector<std::string> SocketGroup::all_gather_bytes(const std::string& mine) {
  return guarded("all_gather_bytes", [&] { return star_round(Op::AllGather, mine); });
}

void SocketGroup::barrier() {
  guarded("barrier", [&] { star_round(Op::Barrier, std::string()); });
}

}  // namespace lloco::train::net
