// The training-loop options `finetune` and `compress-train` share: --max-grad-norm, --checkpoint-every,
// --run-dir (default OUT/run), --quiet, and the process group the steps are shared over.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/args.h"
#include "core/collective.h"
#include "train/trainer.h"

namespace lloco::apps {

// Call once loop.steps is set: a progress line comes every steps / 20 steps.
inline void read_loop_args(const Args& args, const std::string& out, std::shared_ptr<Communicator> comm,
                           train::TrainOptions& loop) {
  loop.max_grad_norm = args.real("max-grad-norm", 1.0);
  loop.checkpoint_every = args.integer("checkpoint-every", 0);
  loop.log_every = std::max<int64_t>(1, loop.steps / 20);
  loop.run_dir = args.str("run-dir", (std::filesystem::path(out) / "run").string());
  loop.quiet = args.flag("quiet");
  loop.comm = std::move(comm);  // train::train checks that the ranks divide grad_accumulation
}

}  // namespace lloco::apps
