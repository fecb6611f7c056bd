#include "cuda/simt/engine.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "cuda/simt/wgmma_state.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LLOCO_SIMT_ASAN 1
#endif

#if !defined(__x86_64__)
#error "simt fibers switch stacks with x86-64 assembly; build simt only on x86-64"
#endif

// Saves the callee-saved registers on the current stack, stores the stack pointer in *from and
// resumes the fiber whose saved stack pointer is `to` (System V x86-64 ABI).
extern "C" void lloco_simt_switch(void** from, void* to);
asm(R"(
.text
.globl lloco_simt_switch
.type lloco_simt_switch,@function
lloco_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size lloco_simt_switch, .-lloco_simt_switch
.section .note.GNU-stack,"",@progbits
.text
)");

namespace lloco::simt {

thread_local ThreadState* tls_thread = nullptr;

namespace {

constexpr size_t kStackBytes = 256 << 10;  // kernels keep their "registers" (arrays) on this stack
constexpr size_t kGuardBytes = 4096;       // an overflow faults instead of corrupting a neighbour
constexpr int kMaxThreads = 1024;
constexpr size_t kMaxDynamicSmem = 232448;  // sm_90 opt-in limit per block (227 KB)
constexpr size_t kDefaultDynamicSmem = 48 << 10;

struct Stack {
  unsigned char* base = nullptr;  // lowest address (guard page)
  Stack() {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    LLOCO_CHECK(p != MAP_FAILED, "simt", "cannot map a ", kStackBytes, "-byte fiber stack");
    base = static_cast<unsigned char*>(p);
    mprotect(base, kGuardBytes, PROT_NONE);
  }
  ~Stack() { munmap(base, kStackBytes); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
};

struct CpAsyncCopy {
  void* dst;
  const void* src;
  int bytes, src_bytes;
  int group;  // commit-group number, -1 while not committed
};

enum class State { Ready, AtBarrier, AtCollective, Done };

struct Fiber {
  void* sp = nullptr;
  Stack* stack = nullptr;
  void* asan_fake_stack = nullptr;
  State state = State::Ready;
  ThreadState ts{};
  std::vector<CpAsyncCopy> copies;
  int next_group = 0;
  WgmmaThread wgmma;
};

struct Warp {
  uint32_t present = 0;   // lanes that exist in this block
  uint32_t exited = 0;    // lanes whose thread returned
  uint32_t arrived = 0;   // lanes waiting in the current collective
  uint32_t mask = 0;      // the collective's member mask
  const char* op = nullptr;
  CollectiveFn compute = nullptr;
  Slot in[32], out[32];
};

constexpr int kWarpgroupThreads = 128;

struct Warpgroup {
  int arrived = 0;  // threads waiting in the current collective
  int exited = 0;
  const char* op = nullptr;
  WarpgroupFn compute = nullptr;
  void* args[kWarpgroupThreads];
};

// One block in flight (launches are serialized, so there is at most one per host thread).
struct Block {
  const char* kernel = nullptr;
  uint3 idx{};
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<Warpgroup> warpgroups;  // complete groups of 128 threads only
  WgmmaBlock wgmma;
  int live = 0, at_barrier = 0;
  void* scheduler_sp = nullptr;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;  // AddressSanitizer's view of the scheduler's stack
  size_t scheduler_stack_size = 0;
  Fiber* running = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<unsigned char> smem;
  std::string error;

  std::string where() const {
    return detail::concat(kernel, " block (", idx.x, ",", idx.y, ",", idx.z, ")");
  }
  std::string thread_name(const Fiber& f) const {
    return detail::concat("thread ", f.ts.linear, " (warp ", f.ts.warp, ", lane ", f.ts.lane, ")");
  }
  Warpgroup* warpgroup_of(const Fiber& f) {
    const size_t g = static_cast<size_t>(f.ts.linear) / kWarpgroupThreads;
    return g < warpgroups.size() ? &warpgroups[g] : nullptr;
  }
};

thread_local Block* tls_block = nullptr;
std::mutex g_launch_mutex;  // one grid at a time: static __shared__ variables are process-wide

std::vector<std::unique_ptr<Stack>>& stack_pool() {
  static std::vector<std::unique_ptr<Stack>> pool;
  return pool;
}

// Stack switches, announced to AddressSanitizer when it is on (scripts/simt_memcheck.sh) so that
// it tracks the fiber stacks instead of reporting the jumps as stack corruption.
void switch_to_fiber(Block& b, Fiber& f) {
#if LLOCO_SIMT_ASAN
  __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, f.stack->base + kGuardBytes, kStackBytes - kGuardBytes);
#endif
  lloco_simt_switch(&b.scheduler_sp, f.sp);
#if LLOCO_SIMT_ASAN
  __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
}

// From the running fiber back to the scheduler; returns when the scheduler resumes this fiber
// (never, when `finished`).
void switch_to_scheduler(Block& b, Fiber& f, bool finished) {
#if LLOCO_SIMT_ASAN
  __sanitizer_start_switch_fiber(finished ? nullptr : &f.asan_fake_stack, b.scheduler_stack_bottom,
                                 b.scheduler_stack_size);
#else
  (void)finished;
#endif
  lloco_simt_switch(&f.sp, b.scheduler_sp);
#if LLOCO_SIMT_ASAN
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
}

// Returns to the scheduler; the caller resumes when the scheduler switches back to it.
void yield_to_scheduler() {
  Block& b = *tls_block;
  switch_to_scheduler(b, *b.running, false);
}

void release_barrier(Block& b) {
  for (Fiber& f : b.fibers)
    if (f.state == State::AtBarrier) f.state = State::Ready;
  b.at_barrier = 0;
}

// The message is moved out of the caller's frame, which is abandoned without unwinding.
[[noreturn]] void fail(std::string msg) {
  Block& b = *tls_block;
  b.error = std::move(msg);
  b.running->state = State::Done;  // abandoned: the launch reports the error and drops the block
  switch_to_scheduler(b, *b.running, true);
  __builtin_unreachable();
}

// fail() with "<kernel> block (x,y,z): thread t (warp w, lane l)" before `parts`. The message is
// built in a statement of its own so no temporary outlives it in the abandoned frames.
template <typename... Parts>
[[noreturn]] void fail_in_thread(const Parts&... parts) {
  Block& b = *tls_block;
  std::string msg = detail::concat(b.where(), ": ", b.thread_name(*b.running), parts...);
  fail(std::move(msg));
}

void finish_thread(Block& b, Fiber& f) {
  f.state = State::Done;
  --b.live;
  Warp& w = b.warps[f.ts.warp];
  w.exited |= 1u << f.ts.lane;
  if (w.arrived && (w.mask & (1u << f.ts.lane)))
    fail_in_thread(" exited while lanes of its warp wait in ", w.op, " with a mask that names it");
  if (Warpgroup* g = b.warpgroup_of(f)) {
    ++g->exited;
    if (g->arrived) fail_in_thread(" exited while threads of its warpgroup wait in ", g->op);
  }
  wgmma_check_exit();
  if (b.at_barrier > 0 && b.at_barrier == b.live) release_barrier(b);
}

extern "C" [[noreturn]] void lloco_simt_fiber_entry() {
  Block& b = *tls_block;
  Fiber& f = *b.running;
#if LLOCO_SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
  std::string thrown;
  try {
    (*b.body)();
  } catch (const std::exception& e) {
    thrown = e.what();
  }
  if (!thrown.empty()) {
    std::string msg = detail::concat(b.where(), ": ", b.thread_name(f), " threw: ", thrown);
    std::string().swap(thrown);  // this frame is never unwound
    fail(std::move(msg));
  }
  finish_thread(b, f);
  switch_to_scheduler(b, f, true);
  __builtin_unreachable();
}

// Stack image that lloco_simt_switch "returns" from into lloco_simt_fiber_entry: six zeroed
// callee-saved registers, the entry address, and a fake return address that keeps the entry's
// stack pointer 16-byte aligned plus 8, as after a call.
void* initial_stack(Stack& s) {
#if LLOCO_SIMT_ASAN
  __asan_unpoison_memory_region(s.base + kGuardBytes, kStackBytes - kGuardBytes);  // frames an abandoned fiber left
#endif
  auto top = reinterpret_cast<uintptr_t>(s.base + kStackBytes) & ~uintptr_t{15};
  auto* sp = reinterpret_cast<void**>(top - 8 * sizeof(void*));
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(&lloco_simt_fiber_entry);
  sp[7] = nullptr;
  return sp;
}

std::string deadlock_report(const Block& b) {
  std::string s = detail::concat(b.where(), ": deadlock, ", b.live, " live threads; ", b.at_barrier,
                                 " wait at __syncthreads");
  for (size_t w = 0; w < b.warps.size(); ++w) {
    const Warp& wp = b.warps[w];
    if (!wp.arrived) continue;
    s += detail::concat("; warp ", w, " waits in ", wp.op, " (arrived lanes 0x", std::hex, wp.arrived, ", mask 0x",
                        wp.mask, std::dec, ")");
  }
  for (size_t g = 0; g < b.warpgroups.size(); ++g)
    if (b.warpgroups[g].arrived)
      s += detail::concat("; warpgroup ", g, " waits in ", b.warpgroups[g].op, " (", b.warpgroups[g].arrived,
                          " of ", kWarpgroupThreads, " threads arrived)");
  return s;
}

// Between synchronization points the threads run one after another: in thread order in even
// blocks and in reverse order in odd ones, so a missing barrier shows whichever thread writes first.
void run_block(Block& b, bool reverse) {
  auto& pool = stack_pool();
  while (pool.size() < b.fibers.size()) pool.push_back(std::make_unique<Stack>());
  for (size_t i = 0; i < b.fibers.size(); ++i) {
    b.fibers[i].stack = pool[i].get();
    b.fibers[i].sp = initial_stack(*pool[i]);
  }
  b.live = static_cast<int>(b.fibers.size());
  const size_t n = b.fibers.size();
  while (b.live > 0 && b.error.empty()) {
    bool progressed = false;
    for (size_t i = 0; i < n; ++i) {
      Fiber& f = b.fibers[reverse ? n - 1 - i : i];
      if (f.state != State::Ready) continue;
      progressed = true;
      b.running = &f;
      tls_thread = &f.ts;
      switch_to_fiber(b, f);
      if (!b.error.empty()) break;
    }
    if (!progressed && b.error.empty()) b.error = deadlock_report(b);
  }
  tls_thread = nullptr;
  b.running = nullptr;
}

}  // namespace

void run_grid(const char* kernel, const void* kernel_id, dim3 grid, dim3 block, size_t dynamic_smem,
              const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  LLOCO_CHECK(threads >= 1 && threads <= kMaxThreads && block.z <= 64, "launch ", kernel, ": block (", block.x, ",",
              block.y, ",", block.z, ") has ", threads, " threads; CUDA allows 1..", kMaxThreads, " (z <= 64)");
  LLOCO_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u && grid.y <= 65535 &&
                  grid.z <= 65535,
              "launch ", kernel, ": grid (", grid.x, ",", grid.y, ",", grid.z,
              ") outside CUDA's limits (x 1..2^31-1, y and z 1..65535)");
  const int opt_in = max_dynamic_smem(kernel_id);
  const size_t smem_limit = opt_in > 0 ? static_cast<size_t>(opt_in) : kDefaultDynamicSmem;
  LLOCO_CHECK(dynamic_smem <= smem_limit, "launch ", kernel, ": ", dynamic_smem,
              " bytes of dynamic shared memory exceed the kernel's limit of ", smem_limit,
              opt_in > 0 ? " (cudaFuncAttributeMaxDynamicSharedMemorySize)" : " (no cudaFuncSetAttribute opt-in)");
  LLOCO_CHECK(smem_limit <= kMaxDynamicSmem, "launch ", kernel, ": opt-in of ", smem_limit,
              " bytes of dynamic shared memory exceeds the device maximum ", kMaxDynamicSmem);

  std::lock_guard<std::mutex> lock(g_launch_mutex);
  Block b;
  b.kernel = kernel;
  b.body = &body;
  b.fibers.resize(threads);
  b.warps.resize((threads + 31) / 32);
  b.warpgroups.resize(threads / kWarpgroupThreads);
  b.smem.resize(std::max<size_t>(dynamic_smem, 16));
  tls_block = &b;
  for (uint32_t bz = 0; bz < grid.z; ++bz)
    for (uint32_t by = 0; by < grid.y; ++by)
      for (uint32_t bx = 0; bx < grid.x; ++bx) {
        b.idx = uint3{bx, by, bz};
        std::fill(b.smem.begin(), b.smem.end(), 0xFF);
        for (Warp& w : b.warps) w = Warp{};
        for (Warpgroup& g : b.warpgroups) g = Warpgroup{};
        b.wgmma.reset(b.smem.size());
        for (uint64_t t = 0; t < threads; ++t) {
          Fiber& f = b.fibers[t];
          f.state = State::Ready;
          f.copies.clear();
          f.next_group = 0;
          f.wgmma.reset();
          const auto tx = static_cast<unsigned>(t % block.x), ty = static_cast<unsigned>(t / block.x % block.y),
                     tz = static_cast<unsigned>(t / (uint64_t{block.x} * block.y));
          f.ts = ThreadState{uint3{tx, ty, tz}, b.idx, block, grid, static_cast<int>(t), static_cast<int>(t % 32),
                             static_cast<int>(t / 32)};
          b.warps[t / 32].present |= 1u << (t % 32);
        }
        b.at_barrier = 0;
        run_block(b, (bx + by + bz) % 2 == 1);
        if (!b.error.empty()) {
          tls_block = nullptr;
          LLOCO_FAIL("simt", b.error);
        }
      }
  tls_block = nullptr;
}

void sync_threads() {
  Block& b = *tls_block;
  Fiber& f = *b.running;
  if (b.warps[f.ts.warp].arrived)
    fail_in_thread(" reached __syncthreads while lanes of its warp wait in ", b.warps[f.ts.warp].op);
  if (const Warpgroup* g = b.warpgroup_of(f); g && g->arrived)
    fail_in_thread(" reached __syncthreads while threads of its warpgroup wait in ", g->op);
  f.state = State::AtBarrier;
  if (++b.at_barrier == b.live) {
    release_barrier(b);  // the last arrival goes on without a switch
    return;
  }
  yield_to_scheduler();
}

void device_trap(const char* what) { fail_in_thread(": ", what); }

void device_trap(std::string&& what) {
  Block& b = *tls_block;
  std::string msg = detail::concat(b.where(), ": ", b.thread_name(*b.running), ": ", what);
  std::string().swap(what);  // the caller's frame is abandoned without unwinding
  fail(std::move(msg));
}

unsigned char* dynamic_smem() { return tls_block->smem.data(); }

uint32_t shared_address(const void* p) {
  Block& b = *tls_block;
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < b.smem.data() || c >= b.smem.data() + b.smem.size())
    fail_in_thread(": shared-window address of a pointer outside the block's dynamic shared memory");
  return static_cast<uint32_t>(c - b.smem.data());
}

unsigned char* shared_pointer(uint32_t addr, size_t bytes) {
  Block& b = *tls_block;
  if (size_t{addr} + bytes > b.smem.size())
    fail_in_thread(": shared address ", addr, " + ", bytes,
                   " bytes is past the ", b.smem.size(), " bytes of shared memory");
  return b.smem.data() + addr;
}

void warp_collective(const char* op, uint32_t mask, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     CollectiveFn compute) {
  Block& b = *tls_block;
  Fiber& f = *b.running;
  Warp& w = b.warps[f.ts.warp];
  const uint32_t bit = 1u << f.ts.lane;
  if (!(mask & bit))
    fail_in_thread(" calls ", op, " with a mask 0x", std::hex, mask, " that does not name its own lane");
  if (w.arrived == 0) {
    w.op = op;
    w.mask = mask;
    w.compute = compute;
  } else if (std::strcmp(w.op, op) != 0 || w.mask != mask) {
    fail_in_thread(" reached ", op, " (mask 0x", std::hex, mask,
                   ") while other lanes of its warp wait in ", w.op, " (mask 0x", w.mask, ")");
  }
  const uint32_t missing = mask & ~w.present;
  if (missing || (mask & w.exited))
    fail_in_thread(" calls ", op, " with mask 0x", std::hex, mask,
                   " naming lanes that do not exist or have exited (0x", (missing | (mask & w.exited)), ")");
  if (in_bytes) std::memcpy(w.in[f.ts.lane].bytes, in, in_bytes);
  w.arrived |= bit;
  if (w.arrived == mask) {
    w.compute(w.in, w.out, mask);
    for (int lane = 0; lane < 32; ++lane) {
      if (!(mask & (1u << lane)) || lane == f.ts.lane) continue;
      b.fibers[f.ts.warp * 32 + lane].state = State::Ready;
    }
    w.arrived = 0;
  } else {
    f.state = State::AtCollective;
    yield_to_scheduler();
  }
  if (out_bytes) std::memcpy(out, w.out[f.ts.lane].bytes, out_bytes);
}

void warpgroup_collective(const char* op, void* arg, WarpgroupFn compute) {
  Block& b = *tls_block;
  Fiber& f = *b.running;
  Warpgroup* g = b.warpgroup_of(f);
  if (!g)
    fail_in_thread(" calls ", op, " in a block of ", b.fibers.size(),
                   " threads; warpgroup instructions need a multiple of 128 threads");
  if (g->arrived == 0) {
    g->op = op;
    g->compute = compute;
  } else if (std::strcmp(g->op, op) != 0) {
    fail_in_thread(" reached ", op, " while other threads of its warpgroup wait in ", g->op);
  }
  if (g->exited) fail_in_thread(" calls ", op, " after ", g->exited, " threads of its warpgroup exited");
  const int first = f.ts.linear / kWarpgroupThreads * kWarpgroupThreads;
  g->args[f.ts.linear - first] = arg;
  if (++g->arrived < kWarpgroupThreads) {
    f.state = State::AtCollective;
    yield_to_scheduler();
    return;
  }
  g->compute(g->args, first);
  for (int t = first; t < first + kWarpgroupThreads; ++t)
    if (t != f.ts.linear) b.fibers[t].state = State::Ready;
  g->arrived = 0;
}

WgmmaThread& wgmma_thread() { return tls_block->running->wgmma; }
WgmmaThread& wgmma_thread(int linear) { return tls_block->fibers[linear].wgmma; }
int block_threads() { return static_cast<int>(tls_block->fibers.size()); }
WgmmaBlock& wgmma_block() { return tls_block->wgmma; }

void cp_async(void* smem, const void* gmem, int bytes, int src_bytes) {
  Block& b = *tls_block;
  const auto* c = static_cast<unsigned char*>(smem);
  if (c < b.smem.data() || c + bytes > b.smem.data() + b.smem.size())
    fail_in_thread(": cp.async destination outside the block's dynamic shared memory");
  if (reinterpret_cast<uintptr_t>(smem) % bytes || reinterpret_cast<uintptr_t>(gmem) % bytes)
    fail_in_thread(": cp.async of ", bytes, " bytes needs both addresses aligned to ", bytes);
  wgmma_note_cp_async_issue(b.running->ts.linear, static_cast<uint32_t>(c - b.smem.data()));
  b.running->copies.push_back(CpAsyncCopy{smem, gmem, bytes, src_bytes, -1});
}

void cp_async_commit() {
  Fiber& f = *tls_block->running;
  for (CpAsyncCopy& c : f.copies)
    if (c.group < 0) c.group = f.next_group;
  ++f.next_group;
}

void cp_async_wait(int pending_groups) {
  Block& b = *tls_block;
  Fiber& f = *b.running;
  const int complete_below = f.next_group - pending_groups;  // groups older than the N newest
  auto done = [&](const CpAsyncCopy& c) { return c.group >= 0 && c.group < complete_below; };
  for (const CpAsyncCopy& c : f.copies) {
    if (!done(c)) continue;
    std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
    std::memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, static_cast<size_t>(c.bytes - c.src_bytes));
    wgmma_note_cp_async_write(f.ts.linear, static_cast<uint32_t>(static_cast<unsigned char*>(c.dst) - b.smem.data()));
  }
  f.copies.erase(std::remove_if(f.copies.begin(), f.copies.end(), done), f.copies.end());
}

}  // namespace lloco::simt
