#include "lora/adapters.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/ops.h"

namespace lloco::lora {

using models::Proj;

namespace {

constexpr int kProjCount = 7;
constexpr Proj kAllProjs[kProjCount] = {Proj::Q, Proj::K, Proj::V, Proj::O, Proj::Gate, Proj::Up, Proj::Down};

int index_of(Proj p) { return static_cast<int>(p); }

bool is_attention(Proj p) { return p == Proj::Q || p == Proj::K || p == Proj::V || p == Proj::O; }

}  // namespace

// ---- LoraConfig -----------------------------------------------------------------------------------

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

bool LoraConfig::targets_proj(Proj p) const { return std::find(targets.begin(), targets.end(), p) != targets.end(); }

void LoraConfig::validate(const std::string& source) const {
  LLOCO_CHECK(rank >= 1, source, "r (rank) must be >= 1, got ", rank);
  LLOCO_CHECK(alpha > 0 && std::isfinite(alpha), source, "lora_alpha must be positive, got ", alpha);
  LLOCO_CHECK(dropout >= 0 && dropout < 1, source, "lora_dropout must be in [0, 1), got ", dropout);
  LLOCO_CHECK(!targets.empty(), source, "target_modules is empty");
  for (size_t i = 0; i < targets.size(); ++i)
    for (size_t j = i + 1; j < targets.size(); ++j)
      LLOCO_CHECK(targets[i] != targets[j], source, "target_modules lists ", proj_module_name(targets[i]), " twice");
}

// ---- names and shapes -----------------------------------------------------------------------------

const char* proj_module_name(Proj p) {
  switch (p) {
    case Proj::Q: return "q_proj";
    case Proj::K: return "k_proj";
    case Proj::V: return "v_proj";
    case Proj::O: return "o_proj";
    case Proj::Gate: return "gate_proj";
    case Proj::Up: return "up_proj";
    case Proj::Down: return "down_proj";
  }
  return "?";
}

Proj proj_from_module_name(const std::string& name, const std::string& source) {
  for (Proj p : kAllProjs)
    if (name == proj_module_name(p)) return p;
  LLOCO_FAIL(source, "target module '", name,
             "' is not a LLaMA projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
}

std::pair<int64_t, int64_t> proj_features(const models::LlamaConfig& m, Proj p) {
  const int64_t D = m.hidden_size, F = m.intermediate_size, Dh = m.head_dim();
  switch (p) {
    case Proj::Q: return {D, m.num_heads * Dh};
    case Proj::K:
    case Proj::V: return {D, m.num_kv_heads * Dh};
    case Proj::O: return {m.num_heads * Dh, D};
    case Proj::Gate:
    case Proj::Up: return {D, F};
    case Proj::Down: return {F, D};
  }
  return {0, 0};
}

std::string peft_weight_name(int64_t layer, Proj p, bool is_b) {
  return "base_model.model.model.layers." + std::to_string(layer) + (is_attention(p) ? ".self_attn." : ".mlp.") +
         proj_module_name(p) + (is_b ? ".lora_B.weight" : ".lora_A.weight");
}

// ---- LoraAdapters ---------------------------------------------------------------------------------

LoraAdapters LoraAdapters::zeros(const models::LlamaConfig& model, const LoraConfig& config, int64_t num_adapters,
                                 DType dtype, Device device) {
  config.validate();
  LLOCO_CHECK(num_adapters >= 1, "LoraAdapters::zeros", "num_adapters must be >= 1, got ", num_adapters);
  LoraAdapters out;
  out.config_ = config;
  out.model_ = model;
  out.num_adapters_ = num_adapters;
  out.a_.assign(static_cast<size_t>(model.num_layers), std::vector<Tensor>(kProjCount));
  out.b_.assign(static_cast<size_t>(model.num_layers), std::vector<Tensor>(kProjCount));
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (Proj p : config.targets) {
      const auto [in, outf] = proj_features(model, p);
      out.a_[l][index_of(p)] = lloco::zeros({num_adapters, config.rank, in}, dtype, device);
      out.b_[l][index_of(p)] = lloco::zeros({num_adapters, outf, config.rank}, dtype, device);
    }
  return out;
}

const Tensor& LoraAdapters::a(int64_t layer, Proj p) const {
  LLOCO_CHECK(layer >= 0 && layer < num_layers(), "LoraAdapters", "layer ", layer, " out of [0, ", num_layers(), ")");
  return a_[layer][index_of(p)];
}

const Tensor& LoraAdapters::b(int64_t layer, Proj p) const {
  LLOCO_CHECK(layer >= 0 && layer < num_layers(), "LoraAdapters", "layer ", layer, " out of [0, ", num_layers(), ")");
  return b_[layer][index_of(p)];
}

void LoraAdapters::init_peft(int64_t adapter, uint64_t seed) {
  LLOCO_CHECK(adapter >= 0 && adapter < num_adapters_, "LoraAdapters::init_peft", "adapter ", adapter,
              " out of [0, ", num_adapters_, ")");
  uint64_t offset = 0;  // one Philox stream for the whole adapter: every a gets its own range
  for (int64_t l = 0; l < num_layers(); ++l)
    for (Proj p : config_.targets) {
      const Tensor& a = a_[l][index_of(p)];
      const int64_t in = a.size(2);
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      const Tensor u = rand({config_.rank, in}, seed, DType::F32, a.device(), offset);
      offset += static_cast<uint64_t>(config_.rank * in);
      copy_(a.select(0, adapter), add(mul(u, 2.0 * bound), -bound));
      fill_(b_[l][index_of(p)].select(0, adapter), 0.0);
    }
}

void LoraAdapters::set(int64_t adapter, int64_t layer, Proj p, const Tensor& a, const Tensor& b,
                       const std::string& source) {
  LLOCO_CHECK(adapter >= 0 && adapter < num_adapters_, source, "adapter ", adapter, " out of [0, ", num_adapters_, ")");
  LLOCO_CHECK(layer >= 0 && layer < num_layers(), source, "layer ", layer, " out of [0, ", num_layers(), ")");
  LLOCO_CHECK(config_.targets_proj(p), source, proj_module_name(p), " is not a target of these adapters");
  const Tensor& sa = a_[layer][index_of(p)];
  const Tensor& sb = b_[layer][index_of(p)];
  const std::string an = peft_weight_name(layer, p, false), bn = peft_weight_name(layer, p, true);
  LLOCO_CHECK(a.dim() == 2 && a.size(0) == sa.size(1) && a.size(1) == sa.size(2), source, an, " has shape ",
              shape_str(a.shape()), ", expected [", sa.size(1), ", ", sa.size(2), "]");
  LLOCO_CHECK(b.dim() == 2 && b.size(0) == sb.size(1) && b.size(1) == sb.size(2), source, bn, " has shape ",
              shape_str(b.shape()), ", expected [", sb.size(1), ", ", sb.size(2), "]");
  copy_(sa.select(0, adapter), a.to(sa.device()));
  copy_(sb.select(0, adapter), b.to(sb.device()));
}

std::vector<std::pair<std::string, Tensor>> LoraAdapters::named_weights(int64_t adapter) const {
  LLOCO_CHECK(adapter >= 0 && adapter < num_adapters_, "LoraAdapters::named_weights", "adapter ", adapter,
              " out of [0, ", num_adapters_, ")");
  std::vector<std::pair<std::string, Tensor>> out;
  for (int64_t l = 0; l < num_layers(); ++l)
    for (Proj p : kAllProjs) {
      if (!config_.targets_proj(p)) continue;
      out.emplace_back(peft_weight_name(l, p, false), a_[l][index_of(p)].select(0, adapter));
      out.emplace_back(peft_weight_name(l, p, true), b_[l][index_of(p)].select(0, adapter));
    }
  return out;
}

std::vector<Tensor*> LoraAdapters::parameters() {
  std::vector<Tensor*> out;
  for (int64_t l = 0; l < num_layers(); ++l)
    for (Proj p : kAllProjs)
      if (config_.targets_proj(p)) {
        out.push_back(&a_[l][index_of(p)]);
        out.push_back(&b_[l][index_of(p)]);
      }
  return out;
}

LoraAdapters LoraAdapters::to(Device device) const {
  LoraAdapters out = *this;
  for (auto* stacks : {&out.a_, &out.b_})
    for (auto& layer : *stacks)
      for (Tensor& t : layer)
        if (t.defined()) t = t.to(device);
  return out;
}

// ---- attach / merge -------------------------------------------------------------------------------

namespace {

// The segments of the last batch shape and assignment, so a decode loop uploads them once.
struct SegmentCache {
  int64_t batch = -1, seq = -1;
  std::vector<int64_t> adapters;
  Device device;
  LoraSegments segments;
};

const LoraSegments& segments_for(SegmentCache& cache, const LoraBinding& binding, int64_t B, int64_t S,
                                 Device device) {
  if (cache.batch == B && cache.seq == S && cache.adapters == binding.sequence_adapters && cache.device == device)
    return cache.segments;
  std::vector<int64_t> indptr(static_cast<size_t>(B + 1));
  for (int64_t b = 0; b <= B; ++b) indptr[b] = b * S;
  cache.segments = LoraSegments::by_segment(std::move(indptr), binding.sequence_adapters, device);
  cache.batch = B;
  cache.seq = S;
  cache.adapters = binding.sequence_adapters;
  cache.device = device;
  return cache.segments;
}

}  // namespace

std::shared_ptr<LoraBinding> attach(models::LlamaModel& model, std::shared_ptr<LoraAdapters> adapters,
                                    std::vector<int64_t> sequence_adapters) {
  const char* op = "lora::attach";
  LLOCO_CHECK(adapters != nullptr, op, "no adapters");
  LLOCO_CHECK_EQ(adapters->num_layers(), model.config.num_layers, op, "adapter layers vs model layers");
  for (int64_t l = 0; l < adapters->num_layers(); ++l)
    for (Proj p : adapters->config().targets) {
      const auto [in, out] = proj_features(model.config, p);
      LLOCO_CHECK(adapters->a(l, p).size(2) == in && adapters->b(l, p).size(1) == out, op, "layer ", l, " ",
                  proj_module_name(p), ": adapters are for [", adapters->b(l, p).size(1), ", ",
                  adapters->a(l, p).size(2), "] but the model's projection is [", out, ", ", in, "]");
    }
  auto binding = std::make_shared<LoraBinding>();
  binding->adapters = std::move(adapters);
  binding->sequence_adapters = std::move(sequence_adapters);
  auto cache = std::make_shared<SegmentCache>();
  model.projection_hook = [binding, cache](int64_t layer, Proj which, const Tensor& x, const Tensor& w) -> Tensor {
    const LoraAdapters& ad = *binding->adapters;
    if (!ad.config().targets_proj(which)) return linear(x, w);
    const char* hook = "lora hook";
    LLOCO_CHECK(x.dim() == 3, hook, proj_module_name(which), " input must be [B, S, in], got ", shape_str(x.shape()));
    const int64_t B = x.size(0), S = x.size(1);
    LLOCO_CHECK(static_cast<int64_t>(binding->sequence_adapters.size()) == B, hook, "the batch has ", B,
                " sequences but sequence_adapters has ", binding->sequence_adapters.size(), " entries");
    for (int64_t id : binding->sequence_adapters)
      LLOCO_CHECK(id >= -1 && id < ad.num_adapters(), hook, "adapter id ", id, " out of [-1, ", ad.num_adapters(),
                  ")");
    const LoraSegments& seg = segments_for(*cache, *binding, B, S, x.device());
    const double p = ad.config().dropout;
    if (!binding->training || p == 0.0)
      return lora_linear(x, w, ad.a(layer, which), ad.b(layer, which), ad.config().scale(), seg);
    // PEFT: base(x) + scale * B A dropout(x). Each (layer, projection) owns 2^40 mask counters.
    const uint64_t offset = (static_cast<uint64_t>(layer) * 7 + static_cast<uint64_t>(which)) << 40;
    const Tensor xd = dropout(x, p, binding->dropout_seed, offset).reshape({B * S, x.size(2)});
    const Tensor delta = lora_delta(xd, ad.a(layer, which), ad.b(layer, which), ad.config().scale(), seg);
    return add(linear(x, w), delta.reshape({B, S, delta.size(1)}));
  };
  model.projection_hook_parameters = [binding](int64_t layer) {
    std::vector<Tensor> out;
    for (Proj p : binding->adapters->config().targets) {
      out.push_back(binding->adapters->a(layer, p));
      out.push_back(binding->adapters->b(layer, p));
    }
    return out;
  };
  return binding;
}

void detach(models::LlamaModel& model) {
  model.projection_hook = nullptr;
  model.projection_hook_parameters = nullptr;
}

models::LlamaModel merge(const models::LlamaModel& model, const LoraAdapters& adapters, int64_t adapter) {
  const char* op = "lora::merge";
  LLOCO_CHECK(adapter >= 0 && adapter < adapters.num_adapters(), op, "adapter ", adapter, " out of [0, ",
              adapters.num_adapters(), ")");
  LLOCO_CHECK_EQ(adapters.num_layers(), model.config.num_layers, op, "adapter layers vs model layers");
  models::LlamaModel out = model;
  out.projection_hook = nullptr;
  out.projection_hook_parameters = nullptr;
  for (int64_t l = 0; l < model.config.num_layers; ++l) {
    models::LlamaLayer& L = out.layers[l];
    Tensor* slots[] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
    for (Proj p : adapters.config().targets) {
      Tensor& w = *slots[index_of(p)];
      const Tensor a = adapters.a(l, p).select(0, adapter).detach().to(DType::F32);
      const Tensor b = adapters.b(l, p).select(0, adapter).detach().to(DType::F32);
      const Tensor delta = mul(matmul(b, a), adapters.config().scale()).to(w.device());  // [out, in]
      w = add(w.detach().to(DType::F32), delta).to(w.dtype());
    }
  }
  return out;
}

}  // namespace lloco::lora
