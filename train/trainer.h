// The generic training loop: gradient accumulation, global-norm clipping, a learning-rate schedule,
// progress lines (loss, tokens/s, ETA), metrics.jsonl, and checkpoints that resume exactly.
//
// Exact resume rests on one contract: the loss of micro-batch m of optimizer step s is a pure
// function of (s, m) and the parameters (data order, dropout seeds, ... derive from s and m). The
// checkpoint then only needs the parameters, the optimizer state and s, and a run stopped after any
// checkpoint and resumed ends bit-identical to one that never stopped.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/optim.h"
#include "core/tensor.h"

namespace lloco::train {

struct TrainOptions {
  int64_t steps = 100;              // optimizer steps in the whole run
  int64_t grad_accumulation = 1;    // micro-batches per optimizer step
  double max_grad_norm = 1.0;       // <= 0: no clipping
  int64_t log_every = 10;           // progress line + metrics.jsonl record every N steps (and the last)
  int64_t checkpoint_every = 0;     // steps between checkpoints; 0: only the final one
  std::string run_dir;              // "" = no files at all; otherwise metrics.jsonl + checkpoint.safetensors
  bool resume = true;               // continue from run_dir/checkpoint.safetensors when it exists
  int64_t stop_after = -1;          // >= 0: return after this many steps of this call (tests, preemption)
  bool quiet = false;               // no progress lines on stderr
  // Data parallelism: the ranks of `comm` share each step's grad_accumulation micro-batches (rank r
  // runs m = r, r + W, ...; grad_accumulation must be a multiple of W), sum their gradients, and take
  // identical optimizer steps, so the run equals a one-process run of the same grad_accumulation.
  // Rank 0 alone prints and writes run_dir, which every rank must see (a resume reads it on all).
  std::shared_ptr<Communicator> comm;  // nullptr: one process
};

struct MicroBatchLoss {
  Tensor loss;         // 0-d mean loss of the micro-batch, with a graph to the parameters
  int64_t tokens = 0;  // tokens the loss averages over (throughput, metrics)
};
// `micro` is the step's global micro-batch index in [0, grad_accumulation), on whichever rank runs it.
using LossFn = std::function<MicroBatchLoss(int64_t step, int64_t micro)>;

struct TrainResult {
  int64_t first_step = 0;     // the step this call started at (> 0 after a resume)
  int64_t steps_done = 0;     // steps completed in total (== options.steps unless stopped early)
  int64_t skipped_steps = 0;  // steps whose gradient norm was not finite (no update made)
  std::vector<double> losses; // mean micro-batch loss of each step this call ran (over all ranks)
};

// Runs steps [resumed step, options.steps) of `optimizer` over its parameters (which must be exactly
// the tensors the loss depends on that should train). lr_at(s) is the learning rate of step s.
TrainResult train(Optimizer& optimizer, const std::function<double(int64_t)>& lr_at, const LossFn& loss_fn,
                  const TrainOptions& options);

// The checkpoint file: "param/<name>" for every optimizer parameter, "optim/<name>" for its state,
// and metadata {"format": "lloco-train-1", "step", "optimizer_step"}. Written atomically.
void save_checkpoint(const std::string& path, const Optimizer& optimizer, int64_t step);
// Loads params and optimizer state in place; returns the step to continue from. Errors name the file
// and the tensor or field.
int64_t load_checkpoint(const std::string& path, Optimizer& optimizer);

}  // namespace lloco::train
