#include "core/autograd.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/ops.h"

namespace lloco {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { t_grad_enabled = prev_; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->edges.reserve(inputs.size());
  for (const Tensor& t : inputs)
    node->edges.push_back(t.defined() && t.requires_grad() ? t.autograd_meta() : nullptr);
  node->backward = std::move(fn);
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  meta->shape = out.shape();
  meta->dtype = out.dtype();
  out.set_autograd_meta(std::move(meta));
  return out;
}

namespace {

// Metas reachable from root, ordered so every meta comes before the metas it depends on.
std::vector<AutogradMeta*> topo_order(AutogradMeta* root) {
  std::vector<AutogradMeta*> order;
  std::unordered_set<AutogradMeta*> visited;
  std::vector<std::pair<AutogradMeta*, size_t>> stack{{root, 0}};
  visited.insert(root);
  while (!stack.empty()) {
    auto& [meta, next] = stack.back();
    Node* node = meta->grad_fn.get();
    if (node && next < node->edges.size()) {
      AutogradMeta* child = node->edges[next++].get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(meta);
      stack.pop_back();
    }
  }
  std::reverse(order.begin(), order.end());
  return order;
}

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

// Core walk: propagates grad from root; leaf gradients go to `sink` (meta, grad).
template <typename Sink>
void walk(const Tensor& root, const Tensor& grad, bool retain_graph, Sink&& sink) {
  AutogradMeta* root_meta = root.autograd_meta().get();
  std::unordered_map<AutogradMeta*, Tensor> grads;
  grads[root_meta] = grad;
  NoGradGuard no_grad;
  for (AutogradMeta* meta : topo_order(root_meta)) {
    auto it = grads.find(meta);
    if (it == grads.end()) continue;
    Tensor g = std::move(it->second);
    grads.erase(it);
    Node* node = meta->grad_fn.get();
    if (!node) {
      sink(meta, g);
      continue;
    }
    LLOCO_CHECK(node->backward != nullptr, "backward", "graph of '", node->name,
                "' was already freed; pass retain_graph=true to backward twice");
    if (g.dtype() != meta->dtype) g = g.to(meta->dtype);
    std::vector<Tensor> input_grads = node->backward(g);
    LLOCO_CHECK_EQ(input_grads.size(), node->edges.size(), node->name, "backward gradient count");
    for (size_t i = 0; i < input_grads.size(); ++i) {
      AutogradMeta* child = node->edges[i].get();
      if (!child || !input_grads[i].defined()) continue;
      LLOCO_CHECK(input_grads[i].shape() == child->shape, node->name, "backward produced gradient ",
                  shape_str(input_grads[i].shape()), " for input ", i, " of shape ", shape_str(child->shape));
      grads[child] = accumulate(grads[child], input_grads[i]);
    }
    if (!retain_graph) node->backward = nullptr;
  }
}

Tensor default_root_grad(const Tensor& root, const Tensor& grad) {
  if (grad.defined()) {
    LLOCO_CHECK(grad.shape() == root.shape(), "backward", "gradient shape ", shape_str(grad.shape()),
                " vs output ", shape_str(root.shape()));
    return grad;
  }
  LLOCO_CHECK(root.numel() == 1, "backward", "implicit gradient needs a single-element output, got ",
              shape_str(root.shape()));
  return ones_like(root);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  LLOCO_CHECK(root.requires_grad(), "backward", "output does not require grad (no input requires grad, or it was "
                                                "computed under NoGradGuard)");
  walk(root, default_root_grad(root, grad), retain_graph, [](AutogradMeta* meta, const Tensor& g) {
    if (meta->requires_grad) meta->grad = meta->grad.defined() ? add(meta->grad, g) : g.contiguous();
  });
}

std::vector<Tensor> autograd_grad(const Tensor& output, const Tensor& grad_output, const std::vector<Tensor>& inputs,
                                  bool accumulate_other_leaves) {
  std::vector<Tensor> result(inputs.size());
  if (!output.requires_grad()) return result;
  std::unordered_set<AutogradMeta*> wanted;
  for (const Tensor& t : inputs)
    if (t.defined() && t.autograd_meta()) wanted.insert(t.autograd_meta().get());
  std::unordered_map<AutogradMeta*, Tensor> leaf_grads;
  walk(output, default_root_grad(output, grad_output), false, [&](AutogradMeta* meta, const Tensor& g) {
    if (wanted.count(meta)) {
      leaf_grads[meta] = accumulate(leaf_grads[meta], g);
    } else if (accumulate_other_leaves && meta->requires_grad) {
      meta->grad = meta->grad.defined() ? add(meta->grad, g) : g.contiguous();
    }
  });
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = inputs[i].defined() ? leaf_grads.find(inputs[i].autograd_meta().get()) : leaf_grads.end();
    if (it != leaf_grads.end()) result[i] = it->second;
  }
  return result;
}

Tensor checkpoint(const BlockFn& fn, const std::vector<Tensor>& inputs) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  if (!any_requires_grad(inputs)) return out;
  std::vector<Tensor> saved = inputs;  // keeps only the block inputs alive, not its activations
  return record(out.detach(), "checkpoint", inputs, [fn, saved](const Tensor& g) {
    std::vector<Tensor> leaves;
    leaves.reserve(saved.size());
    for (const Tensor& t : saved) {
      Tensor leaf = t.defined() ? t.detach() : t;
      if (leaf.defined() && t.requires_grad()) leaf.requires_grad_(true);
      leaves.push_back(leaf);
    }
    Tensor recomputed;
    {
      EnableGradGuard enable;
      recomputed = fn(leaves);
    }
    return autograd_grad(recomputed, g, leaves, /*accumulate_other_leaves=*/true);
  });
}

}  // namespace lloco
