#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"

namespace lloco::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "lloco-train-1";
constexpr const char* kParamPrefix = "param/";
constexpr const char* kOptimPrefix = "optim/";

int64_t metadata_int(const SafetensorsFile& f, const char* key) {
  const auto it = f.metadata().find(key);
  LLOCO_CHECK(it != f.metadata().end(), "load_checkpoint", f.path(), ": metadata has no '", key, "'");
  try {
    size_t used = 0;
    const int64_t v = std::stoll(it->second, &used);
    LLOCO_CHECK(used == it->second.size() && v >= 0, "load_checkpoint", f.path(), ": metadata '", key, "' = '",
                it->second, "' is not a count");
    return v;
  } catch (const std::logic_error&) {
    LLOCO_FAIL("load_checkpoint", f.path(), ": metadata '", key, "' = '", it->second, "' is not a count");
  }
}

// The metrics.jsonl records of steps <= `upto` (a resumed run drops what it will redo).
std::vector<std::string> kept_metrics(const fs::path& path, int64_t upto) {
  std::vector<std::string> lines;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= upto)
      lines.push_back(line);
  }
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += l + "\n";
  return s;
}

// Sums every parameter's gradient over the ranks, one flat buffer per (dtype, device). A parameter
// some rank left without a gradient counts as zeros there; one that no rank touched keeps none, so
// the optimizer leaves it alone on every rank alike.
void all_reduce_grads(Communicator& comm, const NamedTensors& params) {
  NoGradGuard no_grad;
  std::string mine(params.size(), '0');
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].second.grad().defined()) mine[i] = '1';
  const std::vector<std::string> all = comm.all_gather_bytes(mine);
  std::map<std::pair<int, std::string>, std::vector<size_t>> buckets;
  for (size_t i = 0; i < params.size(); ++i) {
    bool any = false;
    for (const std::string& flags : all) {
      LLOCO_CHECK_EQ(flags.size(), params.size(), "train", "parameters on another rank");
      any = any || flags[i] == '1';
    }
    if (!any) continue;
    const Tensor& p = params[i].second;
    if (!p.grad().defined()) p.set_grad(zeros(p.shape(), p.dtype(), p.device()));
    buckets[{static_cast<int>(p.grad().dtype()), p.grad().device().str()}].push_back(i);
  }
  for (const auto& [key, members] : buckets) {
    std::vector<Tensor> flat;
    for (size_t i : members) flat.push_back(params[i].second.grad().reshape({-1}));
    const Tensor sum = concat(flat, 0);
    comm.all_reduce_sum(sum);
    int64_t offset = 0;
    for (size_t i : members) {
      const Tensor& p = params[i].second;
      const int64_t n = p.grad().numel();
      p.set_grad(sum.narrow(0, offset, n).view(p.grad().shape()));
      offset += n;
    }
  }
}

// Rank 0's parameter values on every rank, so replicas start (and resume) identical.
void broadcast_params(Communicator& comm, const NamedTensors& params) {
  NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    if (p.is_contiguous()) {
      comm.broadcast(p.detach(), 0);
    } else {
      const Tensor tmp = p.detach().contiguous();
      comm.broadcast(tmp, 0);
      copy_(p.detach(), tmp);
    }
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const Optimizer& optimizer, int64_t step) {
  NamedTensors tensors;
  for (const auto& [name, p] : optimizer.params()) tensors.emplace_back(kParamPrefix + name, p.detach());
  const OptimizerState st = optimizer.state_dict();
  for (const auto& [name, t] : st.tensors) tensors.emplace_back(kOptimPrefix + name, t);
  save_safetensors(path, tensors,
                   {{"format", kFormat}, {"step", std::to_string(step)}, {"optimizer_step", std::to_string(st.step)}});
}

int64_t load_checkpoint(const std::string& path, Optimizer& optimizer) {
  const char* op = "load_checkpoint";
  const SafetensorsFile f = load_safetensors(path);
  const auto fmt = f.metadata().find("format");
  LLOCO_CHECK(fmt != f.metadata().end() && fmt->second == kFormat, op, path, ": metadata 'format' is '",
              fmt == f.metadata().end() ? "" : fmt->second, "', expected '", kFormat, "'");
  const int64_t step = metadata_int(f, "step");
  OptimizerState st;
  st.step = metadata_int(f, "optimizer_step");
  std::map<std::string, Tensor> params;
  for (const auto& [name, t] : f.items()) {
    if (name.rfind(kParamPrefix, 0) == 0) params[name.substr(6)] = t;
    else if (name.rfind(kOptimPrefix, 0) == 0) st.tensors.emplace_back(name.substr(6), t);
    else LLOCO_FAIL(op, path, ": unexpected tensor '", name, "'");
  }
  for (const auto& [name, p] : optimizer.params()) {
    const auto it = params.find(name);
    LLOCO_CHECK(it != params.end(), op, path, ": no tensor 'param/", name, "' for the optimizer's parameter");
    LLOCO_CHECK(it->second.shape() == p.shape(), op, path, ": 'param/", name, "' has shape ",
                shape_str(it->second.shape()), ", the parameter ", shape_str(p.shape()));
    copy_(p, it->second.to(p.device()));
    params.erase(it);
  }
  LLOCO_CHECK(params.empty(), op, path, ": tensor 'param/", params.empty() ? "" : params.begin()->first,
              "' is not a parameter of this optimizer");
  optimizer.load_state_dict(st);
  return step;
}

TrainResult train(Optimizer& optimizer, const std::function<double(int64_t)>& lr_at, const LossFn& loss_fn,
                  const TrainOptions& o) {
  const char* op = "train";
  LLOCO_CHECK(o.steps >= 0 && o.grad_accumulation >= 1 && o.log_every >= 1 && o.checkpoint_every >= 0, op,
              "bad options: steps ", o.steps, ", grad_accumulation ", o.grad_accumulation, ", log_every ", o.log_every,
              ", checkpoint_every ", o.checkpoint_every);
  const int world = o.comm ? o.comm->world_size() : 1, rank = o.comm ? o.comm->rank() : 0;
  const bool lead = rank == 0, quiet = o.quiet || !lead;
  const fs::path dir = o.run_dir;
  const fs::path ckpt = dir / "checkpoint.safetensors", metrics_path = dir / "metrics.jsonl";
  TrainResult r;
  std::vector<std::string> metrics;
  if (!o.run_dir.empty()) {
    if (lead) fs::create_directories(dir);
    if (world > 1) o.comm->barrier();  // the directory exists before any rank looks into it
    if (o.resume && fs::exists(ckpt)) {
      r.first_step = load_checkpoint(ckpt.string(), optimizer);
      LLOCO_CHECK(r.first_step <= o.steps, op, ckpt.string(), " is at step ", r.first_step, ", past the run's ", o.steps,
                  " steps");
      if (!quiet) std::fprintf(stderr, "resumed %s at step %lld\n", ckpt.string().c_str(), (long long)r.first_step);
    }
    if (lead) metrics = kept_metrics(metrics_path, r.first_step);
  }
  if (world > 1) {
    const std::vector<std::string> starts = o.comm->all_gather_bytes(std::to_string(r.first_step));
    for (int k = 1; k < world; ++k)
      LLOCO_CHECK(starts[k] == starts[0], op, "rank ", k, " resumes at step ", starts[k], ", rank 0 at step ", starts[0],
                  ": every rank must see the same run directory ", o.run_dir);
    broadcast_params(*o.comm, optimizer.params());
  }
  // Checked after the resume: a finished run may be reopened with any number of ranks.
  LLOCO_CHECK(r.first_step == o.steps || o.grad_accumulation % world == 0, op, "grad_accumulation ",
              o.grad_accumulation, " is not a multiple of the world size ", world,
              " (the ranks share each step's micro-batches)");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_done = 0, step = r.first_step;
  for (; step < o.steps; ++step) {
    if (o.stop_after >= 0 && step - r.first_step >= o.stop_after) break;
    optimizer.zero_grad();
    double loss_sum = 0;
    int64_t tokens = 0;
    for (int64_t m = rank; m < o.grad_accumulation; m += world) {
      const MicroBatchLoss mb = loss_fn(step, m);
      LLOCO_CHECK(mb.loss.defined() && mb.loss.numel() == 1, op, "the loss of step ", step, " micro-batch ", m,
                  " must be a single value");
      loss_sum += mb.loss.item();
      tokens += mb.tokens;
      // Each micro-batch contributes 1/grad_accumulation of the step's mean loss (HF Trainer semantics).
      (o.grad_accumulation == 1 ? mb.loss : mul(mb.loss, 1.0 / o.grad_accumulation)).backward();
    }
    if (world > 1) {
      all_reduce_grads(*o.comm, optimizer.params());
      const Tensor totals = from_vector<double>({loss_sum, static_cast<double>(tokens)}, {2}, DType::F64);
      o.comm->all_reduce_sum(totals);
      const std::vector<double> t = totals.to_vector<double>();
      loss_sum = t[0];
      tokens = static_cast<int64_t>(t[1]);
    }
    const double norm = o.max_grad_norm > 0 ? clip_grad_norm(optimizer.params(), o.max_grad_norm)
                                            : clip_grad_norm(optimizer.params(), INFINITY);
    const double lr = lr_at(step);
    if (std::isfinite(norm)) {
      optimizer.set_lr(lr);
      optimizer.step();
    } else {
      ++r.skipped_steps;
    }
    const double loss = loss_sum / o.grad_accumulation;
    r.losses.push_back(loss);
    tokens_done += tokens;
    const int64_t done = step + 1;
    const bool last = done == o.steps, log = done % o.log_every == 0 || last;
    const bool checkpoint =
        lead && !o.run_dir.empty() && (last || (o.checkpoint_every > 0 && done % o.checkpoint_every == 0));
    if (log) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tok_s = secs > 0 ? tokens_done / secs : 0;
      const double eta = secs / static_cast<double>(done - r.first_step) * static_cast<double>(o.steps - done);
      if (!quiet)
        std::fprintf(stderr, "step %lld/%lld  loss %.4f  grad-norm %.3f  lr %.2e  %.0f tokens/s  ETA %.0f s%s\n",
                     (long long)done, (long long)o.steps, loss, norm, lr, tok_s, eta,
                     std::isfinite(norm) ? "" : "  (non-finite gradient: step skipped)");
      if (lead && !o.run_dir.empty()) {
        json rec = {{"step", done}, {"loss", loss}, {"lr", lr}, {"tokens", tokens}, {"tokens_per_s", tok_s}};
        rec["grad_norm"] = std::isfinite(norm) ? json(norm) : json(nullptr);
        metrics.push_back(rec.dump());
        write_file_atomic(metrics_path.string(), joined(metrics));
      }
    }
    if (checkpoint) save_checkpoint(ckpt.string(), optimizer, done);
  }
  r.steps_done = step;
  if (world > 1) o.comm->barrier();  // rank 0's last checkpoint is on disk when any rank returns
  return r;
}

}  // namespace lloco::train
