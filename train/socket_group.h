// Internals of the socket backend (train/distributed.h is the public face): non-blocking TCP links
// with timed, interruption-safe IO, length-prefixed frames, and the ring/star communicator built on
// links that the rendezvous in distributed.cpp has already connected.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/collective.h"
#include "core/error.h"

namespace lloco::train::net {

// A transport failure (peer closed, died or stalled past the timeout). The group cannot recover
// from one: the byte streams between ranks are no longer in step.
class LinkError : public Error {
 public:
  using Error::Error;
};

// An owned socket fd in non-blocking mode; closed on destruction.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Ends both directions now (the peer sees end-of-stream) but keeps the fd until destruction.
  void shutdown() const;

 private:
  int fd_ = -1;
};

// A connection to one peer; `peer` (its rank) names it in errors.
struct Link {
  Socket socket;
  int peer = -1;
};

// Moves `nsend` bytes from `src` to `out` while receiving `nrecv` bytes from `in` into `dst`, both at
// once, so two ranks sending each other large buffers cannot deadlock on full kernel buffers. With
// `relay`, src == dst and a byte is forwarded only once it has arrived (pipelined broadcast). Either
// link may be null when its count is 0. Throws LinkError naming `op` and the peer when a peer
// closes or neither direction makes progress for `timeout_s`.
void transfer(const Link* out, const void* src, size_t nsend, const Link* in, void* dst, size_t nrecv,
              double timeout_s, const char* op, bool relay = false);

// Frames: u32 tag, u64 payload length, payload.
struct Frame {
  uint32_t tag = 0;
  std::string payload;
};
void send_frame(const Link& link, uint32_t tag, std::string_view payload, double timeout_s, const char* op);
Frame recv_frame(const Link& link, double timeout_s, const char* op);

// Tables of byte strings (every rank's payload, in rank order) as one frame payload.
std::string pack_strings(const std::vector<std::string>& items);
std::vector<std::string> unpack_strings(std::string_view bytes, const char* op);

// Status tags of rank 0's replies on the star links.
enum ReplyStatus : uint32_t { kReplyOk = 0, kReplyMismatch = 1, kReplyFatal = 2 };

// The socket communicator over connected links. Rank 0 holds a star link to every other rank
// (star[k] for rank k, star[0] unused); the others hold one, star[0], to rank 0. `next` goes to
// rank (r+1)%W and `prev` comes from rank (r-1)%W.
class SocketGroup final : public Communicator {
 public:
  SocketGroup(int rank, int world_size, double timeout_s, std::vector<Link> star, Link next, Link prev);

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string name() const override { return "socket"; }
  void all_reduce_sum(const Tensor& t) override;
  void broadcast(const Tensor& t, int root) override;
  std::vector<std::string> all_gather_bytes(const std::string& mine) override;
  void barrier() override;

  enum class Op : uint32_t { AllGather = 1, Barrier = 2, AllReduce = 3, Broadcast = 4 };

 private:
  // Every rank's payload goes to rank 0, which checks that all ranks called the same op (and, for
  // tensor collectives, passed the same header) and sends the table of payloads back to everyone,
  // or the same error to everyone.
  std::vector<std::string> star_round(Op op, const std::string& payload);
  std::vector<std::string> gather_at_root(Op op, const std::string& payload);
  template <typename Acc>
  void ring_all_reduce(Acc* data, int64_t n);
  void relay_broadcast(char* data, size_t nbytes, int root);
  // Runs a collective; a LinkError leaves the group broken (every later call fails at once) and
  // shuts every link so the neighbours fail fast instead of waiting for their timeout.
  template <typename F>
  auto guarded(const char* op, F&& body);
  void break_group(const std::string& why);

  int rank_, world_;
  double timeout_s_;
  std::vector<Link> star_;
  Link next_, prev_;
  std::string broken_;
  // The reduce-scatter's receive buffer, kept across calls: a fresh one per call costs a map, page
  // faults and an unmap once chunks pass glibc's mmap threshold (about 30% of a 64 MiB all-reduce).
  std::unique_ptr<char[]> scratch_;
  size_t scratch_bytes_ = 0;
};

}  // namespace lloco::train::net
