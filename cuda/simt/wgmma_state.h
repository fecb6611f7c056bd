// Internal to the simt executor (engine.cpp, wgmma.cpp): the bookkeeping behind the wgmma emulation
// (wgmma.h). Per thread: the wgmma results still in flight and the shared-memory chunks its cp.async
// wrote since its last fence.proxy.async. Per block: per 16-byte chunk of shared memory, how many
// in-flight wgmma read it, how many cp.async copies into it are still in flight and how many unfenced
// cp.async writes it holds, so each hazard check is one array lookup per chunk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lloco::simt {

constexpr int kWgmmaMaxRegs = 64;  // m64n128: 128 x 64 accumulators / 128 threads

// A wgmma result that this thread's accumulators receive at the wait_group retiring `group`.
struct WgmmaEntry {
  float* d;
  int regs;
  int op;     // index into WgmmaBlock::ops
  int group;  // commit-group number, -1 while not committed
  float result[kWgmmaMaxRegs];
};

struct WgmmaThread {
  bool fenced = false;  // wgmma.fence since the start or the last wait_group
  int next_group = 0;
  std::vector<WgmmaEntry> pending;  // in issue order
  std::vector<uint32_t> unfenced;   // chunks written by this thread (cp.async, shared_store_for_wgmma), not yet fenced

  void reset() {
    fenced = false;
    next_group = 0;
    pending.clear();
    unfenced.clear();
  }
};

// One warpgroup-wide wgmma: the chunks it read stay "in flight" until every thread retired its result.
struct WgmmaOp {
  std::vector<uint32_t> chunks;  // sorted, unique
  int holders = 0;               // threads whose entry is still pending
};

struct WgmmaBlock {
  size_t smem_bytes = 0;
  std::vector<uint32_t> reads;        // per chunk: in-flight wgmma ops that read it
  std::vector<uint32_t> unfenced;     // per chunk: unfenced generic-proxy writes of all threads
  std::vector<uint32_t> copying;      // per chunk: cp.async issued but not landed (no wait_group yet)
  std::vector<int32_t> copier;        // per chunk: the thread that issued the latest such cp.async
  std::vector<int32_t> last_writer;   // per chunk: thread whose unfenced list has it last, or -1
  std::vector<WgmmaOp> ops;
  std::vector<int> free_ops;

  void reset(size_t bytes) {
    smem_bytes = bytes;
    const size_t chunks = (bytes + 15) / 16;
    reads.assign(chunks, 0);
    unfenced.assign(chunks, 0);
    last_writer.assign(chunks, -1);
    copying.assign(chunks, 0);
    copier.assign(chunks, -1);
    ops.clear();
    free_ops.clear();
  }
};

// Engine accessors (engine.cpp) for the running block.
WgmmaThread& wgmma_thread();  // the running thread's state
WgmmaThread& wgmma_thread(int linear);
int block_threads();
WgmmaBlock& wgmma_block();

// Hooks the engine calls (wgmma.cpp); they trap in the running thread on a hazard.
void wgmma_note_cp_async_issue(int thread, uint32_t addr);  // at cp.async
void wgmma_note_cp_async_write(int thread, uint32_t addr);  // when the copy lands (cp.async.wait_group)
void wgmma_check_exit();  // the running thread returns

}  // namespace lloco::simt
