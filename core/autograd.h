// Define-by-run autograd. Every op whose inputs require grad records a Node holding the inputs'
// autograd metas (edges) and a backward closure; Tensor::backward walks the graph in reverse
// topological order. Backward closures are built from ops, so they run on any device.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lloco {

// Returns one gradient per input (undefined Tensor = no gradient for that input).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;
  std::vector<std::shared_ptr<AutogradMeta>> edges;  // one per input; null if it needs no grad
  BackwardFn backward;                               // cleared after use unless retain_graph
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient (leaves)
  std::shared_ptr<Node> grad_fn;  // producer (non-leaves)
  Shape shape;                    // of the tensor, to check incoming gradients
  DType dtype = DType::F32;
};

bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
 private:
  bool prev_;
};
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
 private:
  bool prev_;
};

// True when grad mode is on and some input requires grad.
bool any_requires_grad(const std::vector<Tensor>& inputs);
// Attaches a Node to `out` when any input requires grad (and grad mode is on); returns out.
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn);

// Runs backward from `root` with incoming gradient `grad` (ones for scalars when undefined).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Gradients of `output` (weighted by grad_output) w.r.t. `inputs`. Other leaves reached (e.g. weights
// captured by a checkpointed block) get their .grad accumulated only when accumulate_other_leaves.
std::vector<Tensor> autograd_grad(const Tensor& output, const Tensor& grad_output,
                                  const std::vector<Tensor>& inputs, bool accumulate_other_leaves = false);

// Runs fn without recording a graph; in backward, recomputes it with grad on and backpropagates
// through the recomputation. Saves activation memory inside fn at the cost of a second forward.
using BlockFn = std::function<Tensor(const std::vector<Tensor>&)>;
Tensor checkpoint(const BlockFn& fn, const std::vector<Tensor>& inputs);

}  // namespace lloco
