#include "cuda/simt/wgmma.h"

#include <algorithm>
#include <cstring>
#include <ios>
#include <limits>
#include <string>

#include "core/error.h"
#include "cuda/simt/warp_ops.h"
#include "cuda/simt/wgmma_state.h"

namespace lloco::simt {
namespace {

constexpr int kGroup = 128;  // threads per warpgroup

struct IssueArgs {
  WgmmaThread* st;
  float* d;
  const float* c;  // accumulator input: d's newest in-flight result if it has one, else d itself
  const uint32_t* a;  // A fragments, or null when A comes from shared memory through desc_a
  uint64_t desc_a, desc;
  bool accumulate;
  int n;
  bool bf16, trans_a, trans_b;
};

// Collective names: the instruction with its shape, type and operand layouts.
const char* issue_name(int n, bool bf16, int a_layout, bool trans_b) {  // a_layout: 0 regs, 1 K-major, 2 M-major
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (int n128 = 0; n128 < 2; ++n128)
      for (int b = 0; b < 2; ++b)
        for (int al = 0; al < 3; ++al)
          for (int tb = 0; tb < 2; ++tb)
            names.push_back(std::string("wgmma.mma_async.m64n") + (n128 ? "128" : "64") + "k16." +
                            (b ? "bf16" : "f16") +
                            (al == 0 ? " (A in registers, " : al == 1 ? " (K-major A, " : " (M-major A, ") +
                            (tb ? "N-major B)" : "K-major B)"));
    return names;
  }();
  return kNames[((n == 128) * 2 + bf16) * 6 + a_layout * 2 + trans_b].c_str();
}

void release_op(WgmmaBlock& blk, int op) {
  WgmmaOp& o = blk.ops[op];
  if (--o.holders > 0) return;
  for (uint32_t ch : o.chunks) --blk.reads[ch];
  blk.free_ops.push_back(op);
}

// Byte address of B[k][n] before the 128-byte swizzle (PTX canonical layouts, 16-bit elements):
// K-major: n-rows of 128 bytes, 8-row atoms SBO apart; N-major: k-rows, 64-column blocks LBO apart
// and 8-row groups SBO apart. A[m][k] is laid out the same way with m in place of n.
uint32_t b_address(uint32_t start, uint32_t lbo, uint32_t sbo, bool trans_b, int k, int n) {
  if (!trans_b) return start + (n / 8) * sbo + (n % 8) * 128 + k * 2;
  return start + (n / 64) * lbo + (n % 64) * 2 + (k / 8) * sbo + (k % 8) * 128;
}

struct Descriptor {
  uint32_t start, lbo, sbo;
};

Descriptor decode(uint64_t desc) {
  const auto layout = static_cast<int>(desc >> 62), base_offset = static_cast<int>((desc >> 49) & 7);
  if (layout != 1)
    device_trap(detail::concat("simt: wgmma descriptor layout type ", layout,
                               " not emulated (only 1, 128-byte swizzle)"));
  if (base_offset != 0)
    device_trap(detail::concat("simt: wgmma descriptor base offset ", base_offset, " not emulated (only 0)"));
  return {static_cast<uint32_t>(desc & 0x3FFF) << 4, static_cast<uint32_t>((desc >> 16) & 0x3FFF) << 4,
          static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4};
}

// Element (k, i) of a 16 x `extent` shared-memory operand (i = n for B, m for A), read through its
// descriptor; the 16-byte chunks it touches are appended to `chunks`.
double read_operand(const char* name, uint64_t desc, bool transposed, bool bf16, int k, int i,
                    std::vector<uint32_t>& chunks) {
  const Descriptor d = decode(desc);
  const WgmmaBlock& blk = wgmma_block();
  const uint32_t logical = b_address(d.start, d.lbo, d.sbo, transposed, k, i);
  const uint32_t phys = logical ^ ((logical >> 3) & 0x70);
  if (size_t{phys} + 2 > blk.smem_bytes)
    device_trap(detail::concat("wgmma.mma_async reads ", name, " element (k ", k, ", ", i, ") at shared address ",
                               phys, ", past the ", blk.smem_bytes, " bytes of shared memory (descriptor 0x", std::hex,
                               desc, ")"));
  uint16_t bits;
  std::memcpy(&bits, dynamic_smem() + phys, 2);
  if (chunks.empty() || chunks.back() != phys >> 4) chunks.push_back(phys >> 4);
  return bf16 ? half_bits_to_double<__nv_bfloat16>(bits) : half_bits_to_double<__half>(bits);
}

// Fails when a cp.async into `chunk` has not landed yet, or when some thread's cp.async wrote it
// without a fence.proxy.async since.
void check_chunk_ready(const WgmmaBlock& blk, uint32_t chunk) {
  if (blk.copying[chunk])
    device_trap(detail::concat("wgmma reads shared memory that a cp.async still in flight writes (16 bytes at shared "
                               "address ",
                               chunk * 16, ", issued by thread ", blk.copier[chunk],
                               "; its cp.async.wait_group and a barrier must come first)"));
  if (!blk.unfenced[chunk]) return;
  int writer = -1;
  for (int t = 0; t < block_threads() && writer < 0; ++t) {
    const auto& list = wgmma_thread(t).unfenced;
    if (std::find(list.begin(), list.end(), chunk) != list.end()) writer = t;
  }
  device_trap(detail::concat("wgmma reads shared memory written by cp.async or st.shared without fence.proxy.async "
                             "(16 bytes at shared address ",
                             chunk * 16, ", written by thread ", writer,
                             "; each writer fences before the barrier that publishes the tile)"));
}

void multiply(IssueArgs* const* args, const double (&A)[64][16], const double (&B)[16][128], int op) {
  const int n = args[0]->n, regs = n / 2;
  for (int t = 0; t < kGroup; ++t) {
    IssueArgs& me = *args[t];
    const int row = 16 * (t / 32) + (t % 32) / 4, c = t % 4;
    WgmmaEntry e{me.d, regs, op, -1, {}};
    for (int r = 0; r < regs; ++r) {
      const int i = r % 4, rr = row + (i >= 2 ? 8 : 0), col = 8 * (r / 4) + 2 * c + (i & 1);
      double acc = me.accumulate ? static_cast<double>(me.c[r]) : 0.0;
      for (int k = 0; k < 16; ++k) acc += A[rr][k] * B[k][col];
      e.result[r] = static_cast<float>(acc);
    }
    me.st->pending.push_back(e);  // after reading me.c, which may point into this vector
    std::fill(me.d, me.d + regs, std::numeric_limits<float>::quiet_NaN());
  }
}

// A from the warpgroup's register fragments (the mma.m16n8k16 A layout per warp).
template <typename T>
void gather_a(IssueArgs* const* args, double (&A)[64][16]) {
  for (int t = 0; t < kGroup; ++t) {
    const int row = 16 * (t / 32) + (t % 32) / 4, c = t % 4;
    const uint32_t* a = args[t]->a;
    for (int h = 0; h < 2; ++h) {
      A[row][2 * c + h] = half_bits_to_double<T>(a[0] >> (16 * h));
      A[row + 8][2 * c + h] = half_bits_to_double<T>(a[1] >> (16 * h));
      A[row][2 * c + 8 + h] = half_bits_to_double<T>(a[2] >> (16 * h));
      A[row + 8][2 * c + 8 + h] = half_bits_to_double<T>(a[3] >> (16 * h));
    }
  }
}

void issue_compute(void* const* raw, int first) {
  IssueArgs* const* args = reinterpret_cast<IssueArgs* const*>(raw);
  const IssueArgs& lead = *args[0];
  for (int t = 1; t < kGroup; ++t) {
    if (args[t]->desc != lead.desc)
      device_trap(detail::concat("wgmma.mma_async: thread ", first + t, " passes B descriptor 0x", std::hex,
                                 args[t]->desc, " but thread ", std::dec, first, " passes 0x", std::hex, lead.desc));
    if (!lead.a && args[t]->desc_a != lead.desc_a)
      device_trap(detail::concat("wgmma.mma_async: thread ", first + t, " passes A descriptor 0x", std::hex,
                                 args[t]->desc_a, " but thread ", std::dec, first, " passes 0x", std::hex,
                                 lead.desc_a));
    if (args[t]->accumulate != lead.accumulate)
      device_trap(detail::concat("wgmma.mma_async: threads ", first, " and ", first + t,
                                 " of one warpgroup disagree on scale-d (accumulate)"));
  }
  // Reused scratch, not a local: a trap below abandons this frame without running destructors.
  static thread_local std::vector<uint32_t> chunks;
  chunks.clear();
  double A[64][16], B[16][128];
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < lead.n; ++n) B[k][n] = read_operand("B", lead.desc, lead.trans_b, lead.bf16, k, n, chunks);
  if (lead.a) {
    if (lead.bf16) gather_a<__nv_bfloat16>(args, A);
    else gather_a<__half>(args, A);
  } else {
    for (int k = 0; k < 16; ++k)
      for (int m = 0; m < 64; ++m) A[m][k] = read_operand("A", lead.desc_a, lead.trans_a, lead.bf16, k, m, chunks);
  }
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  WgmmaBlock& blk = wgmma_block();
  for (uint32_t ch : chunks) check_chunk_ready(blk, ch);

  int op;
  if (blk.free_ops.empty()) {
    op = static_cast<int>(blk.ops.size());
    blk.ops.emplace_back();
  } else {
    op = blk.free_ops.back();
    blk.free_ops.pop_back();
  }
  blk.ops[op].chunks.assign(chunks.begin(), chunks.end());
  blk.ops[op].holders = kGroup;
  for (uint32_t ch : blk.ops[op].chunks) ++blk.reads[ch];
  multiply(args, A, B, op);
}

void fence_compute(void* const* args, int) {
  for (int t = 0; t < kGroup; ++t) static_cast<WgmmaThread*>(args[t])->fenced = true;
}

void commit_compute(void* const* args, int) {
  for (int t = 0; t < kGroup; ++t) {
    auto& st = *static_cast<WgmmaThread*>(args[t]);
    for (WgmmaEntry& e : st.pending)
      if (e.group < 0) e.group = st.next_group;
    ++st.next_group;
  }
}

// Retires every committed group but the newest kPending, oldest first, so a chain on one accumulator
// ends with its newest result. Runs for the whole warpgroup at once: no thread goes on (and, say,
// refills the B tile with cp.async) while others still hold the retired wgmma's reads.
template <int kPending>
void wait_compute(void* const* args, int) {
  WgmmaBlock& blk = wgmma_block();
  for (int t = 0; t < kGroup; ++t) {
    auto& st = *static_cast<WgmmaThread*>(args[t]);
    const int complete_below = st.next_group - kPending;
    auto done = [&](const WgmmaEntry& e) { return e.group >= 0 && e.group < complete_below; };
    for (const WgmmaEntry& e : st.pending) {
      if (!done(e)) continue;
      std::memcpy(e.d, e.result, sizeof(float) * static_cast<size_t>(e.regs));
      release_op(blk, e.op);
    }
    st.pending.erase(std::remove_if(st.pending.begin(), st.pending.end(), done), st.pending.end());
    st.fenced = false;
  }
}

// Shared by the register-A and shared-memory-A forms: fence check, chained accumulator input, collective.
void issue(IssueArgs args, int a_layout) {
  WgmmaThread& st = wgmma_thread();
  if (!st.fenced)
    device_trap("wgmma.mma_async without a preceding wgmma.fence (one is needed before the first wgmma and "
                "after each wgmma.wait_group)");
  args.st = &st;
  args.c = args.d;
  for (auto it = st.pending.rbegin(); it != st.pending.rend(); ++it)
    if (it->d == args.d) {
      args.c = it->result;
      break;
    }
  warpgroup_collective(issue_name(args.n, args.bf16, a_layout, args.trans_b), &args, &issue_compute);
}

}  // namespace

void wgmma_issue(int n, bool bf16, float* d, const uint32_t* a, uint64_t desc_b, bool accumulate, bool trans_b) {
  issue(IssueArgs{nullptr, d, nullptr, a, 0, desc_b, accumulate, n, bf16, false, trans_b}, 0);
}

void wgmma_issue_ss(int n, bool bf16, float* d, uint64_t desc_a, uint64_t desc_b, bool accumulate, bool trans_a,
                    bool trans_b) {
  issue(IssueArgs{nullptr, d, nullptr, nullptr, desc_a, desc_b, accumulate, n, bf16, trans_a, trans_b},
        trans_a ? 2 : 1);
}

void wgmma_fence() { warpgroup_collective("wgmma.fence", &wgmma_thread(), &fence_compute); }

void wgmma_commit_group() { warpgroup_collective("wgmma.commit_group", &wgmma_thread(), &commit_compute); }

void wgmma_wait_group(int pending) {
  static const char* const kNames[] = {"wgmma.wait_group 0", "wgmma.wait_group 1", "wgmma.wait_group 2",
                                       "wgmma.wait_group 3", "wgmma.wait_group 4", "wgmma.wait_group 5",
                                       "wgmma.wait_group 6", "wgmma.wait_group 7"};
  static constexpr WarpgroupFn kCompute[] = {&wait_compute<0>, &wait_compute<1>, &wait_compute<2>,
                                             &wait_compute<3>, &wait_compute<4>, &wait_compute<5>,
                                             &wait_compute<6>, &wait_compute<7>};
  if (pending < 0 || pending > 7)
    device_trap(detail::concat("wgmma.wait_group ", pending, ": the pending-group count must be 0..7"));
  warpgroup_collective(kNames[pending], &wgmma_thread(), kCompute[pending]);
}

void fence_proxy_async() {
  WgmmaThread& st = wgmma_thread();
  WgmmaBlock& blk = wgmma_block();
  const int me = current().linear;
  for (uint32_t ch : st.unfenced) {
    --blk.unfenced[ch];
    if (blk.last_writer[ch] == me) blk.last_writer[ch] = -1;
  }
  st.unfenced.clear();
}

namespace {

// A generic-proxy write (`what`: st.shared or cp.async) into chunk ch must not race an in-flight
// wgmma that reads it.
void check_not_read_in_flight(const WgmmaBlock& blk, uint32_t ch, const char* what) {
  if (blk.reads[ch])
    device_trap(detail::concat(what, " overwrites shared memory that an in-flight wgmma reads (16 bytes at shared "
                               "address ",
                               ch * 16, "); wgmma.wait_group must retire that wgmma first"));
}

// Each thread lists a chunk once per fence interval unless another thread wrote it in between; the
// per-chunk count then holds one unit per listing, so fences undo exactly what writes added.
void mark_unfenced(WgmmaBlock& blk, int thread, uint32_t ch) {
  if (blk.last_writer[ch] == thread) return;
  blk.last_writer[ch] = thread;
  ++blk.unfenced[ch];
  wgmma_thread(thread).unfenced.push_back(ch);
}

}  // namespace

void shared_store_for_wgmma(uint32_t addr, const void* src, int bytes) {
  if ((bytes != 4 && bytes != 16) || addr % bytes)
    device_trap(detail::concat("shared_store_for_wgmma: ", bytes, " bytes at shared address ", addr,
                               " (4 or 16 bytes, aligned)"));
  WgmmaBlock& blk = wgmma_block();
  const uint32_t ch = addr >> 4;
  check_not_read_in_flight(blk, ch, "st.shared");
  std::memcpy(shared_pointer(addr, static_cast<size_t>(bytes)), src, static_cast<size_t>(bytes));
  mark_unfenced(blk, current().linear, ch);
}

// ---- hooks called by the engine --------------------------------------------------------------------

void wgmma_note_cp_async_issue(int thread, uint32_t addr) {
  WgmmaBlock& blk = wgmma_block();
  const uint32_t ch = addr >> 4;
  check_not_read_in_flight(blk, ch, "cp.async");
  ++blk.copying[ch];
  blk.copier[ch] = thread;
}

void wgmma_note_cp_async_write(int thread, uint32_t addr) {
  WgmmaBlock& blk = wgmma_block();
  const uint32_t ch = addr >> 4;
  --blk.copying[ch];
  mark_unfenced(blk, thread, ch);
}

void wgmma_check_exit() {
  const WgmmaThread& st = wgmma_thread();
  if (!st.pending.empty())
    device_trap(detail::concat("exited with ", st.pending.size(),
                               " wgmma.mma_async results never retired by wgmma.wait_group"));
}

}  // namespace lloco::simt
