// simt: a CPU executor for our CUDA kernels, so that their device code runs (and is tested) on
// machines without a GPU. The kernel sources are compiled as host C++ (see simt.h); every launch
// runs its blocks one after another, each CUDA thread as a cooperative fiber with its own stack.
// Fibers switch only where CUDA threads synchronize: __syncthreads, warp collectives (shuffles,
// ldmatrix, mma.sync) and cp.async waits, so the code between two synchronization points runs
// thread after thread (ascending in even blocks, descending in odd ones). That order makes a
// missing barrier visible (a thread reads shared memory another has not written yet), and
// poisoned shared memory turns such reads into NaN.
//
// What it checks beyond the results: launch limits (block size, grid dims, dynamic shared memory
// against the kernel's cudaFuncSetAttribute opt-in), barriers that not all live threads reach
// (deadlock), warp collectives whose lanes disagree on the operation or mask, lanes that exit
// before a collective they are named in, cp.async data used before its wait_group, misaligned
// ldmatrix / cp.async addresses and shared-window addresses outside the block's shared memory, and
// for wgmma (wgmma.h): warpgroup collectives, accumulators read before their wait_group, missing
// fences, and shared memory that an in-flight wgmma reads or that cp.async wrote without a proxy fence.
// It does not model memory-ordering races between blocks, registers, or timing.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <utility>

namespace lloco::simt {

// The emulated CUDA thread that is running now (valid only inside a kernel).
struct ThreadState {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  int linear;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
  int lane, warp;
};

extern thread_local ThreadState* tls_thread;
inline ThreadState& current() { return *tls_thread; }

// Runs `body` for every thread of every block of the grid. Throws lloco::Error naming `kernel`
// on a launch-limit violation or a synchronization error inside the kernel.
void run_grid(const char* kernel, const void* kernel_id, dim3 grid, dim3 block, size_t dynamic_smem,
              const std::function<void()>& body);

// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) bookkeeping (runtime.cpp).
void set_max_dynamic_smem(const void* kernel_id, int bytes);
int max_dynamic_smem(const void* kernel_id);

// Launch parameters captured by LLOCO_LAUNCH; calling it with the kernel arguments runs the grid.
template <typename... P>
struct Launch {
  const char* name;
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;

  // Takes the kernel's parameter types, so arguments convert (braced lists too) as in a kernel call.
  void operator()(P... args) const {
    const std::tuple<P...> params(std::move(args)...);
    run_grid(name, reinterpret_cast<const void*>(kernel), grid, block, smem,
             [&] { std::apply(kernel, params); });
  }
};

template <typename... P>
Launch<P...> make_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, void (*kernel)(P...), const char* name) {
  return Launch<P...>{name, kernel, grid, block, smem};
}

// ---- device-side services used by simt.h ------------------------------------------------------------

void sync_threads();
[[noreturn]] void device_trap(const char* what);
// Same, for a message built at run time; `what` is released before the thread's frames are abandoned.
[[noreturn]] void device_trap(std::string&& what);

// Dynamic shared memory of the running block, poisoned with 0xFF bytes (NaN for every float type).
unsigned char* dynamic_smem();

// 32-bit shared-window address of a pointer into the block's dynamic shared memory, and back.
uint32_t shared_address(const void* p);
unsigned char* shared_pointer(uint32_t addr, size_t bytes);

// One warp-wide exchange: every lane in `mask` calls it with the same `op`; once all have arrived,
// `compute` turns the 32 inputs into the 32 outputs. Inputs and outputs are at most kSlotBytes.
constexpr size_t kSlotBytes = 48;
struct alignas(16) Slot {
  unsigned char bytes[kSlotBytes];
};
using CollectiveFn = void (*)(const Slot* in, Slot* out, uint32_t mask);
void warp_collective(const char* op, uint32_t mask, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     CollectiveFn compute);

// One warpgroup-wide operation: the 128 threads 128i .. 128i + 127 of the block all call it with the
// same `op`, each passing a pointer to its own argument struct (which stays valid while it waits, as
// its fiber's stack is kept). The last arrival runs `compute` once over the 128 pointers (in thread
// order; `first_thread` is the block-linear index of args[0]) and then all go on.
using WarpgroupFn = void (*)(void* const* args, int first_thread);
void warpgroup_collective(const char* op, void* arg, WarpgroupFn compute);

// cp.async: copies are queued per thread and performed at the cp.async.wait_group that covers them.
void cp_async(void* smem, const void* gmem, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);

}  // namespace lloco::simt
