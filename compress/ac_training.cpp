#include "compress/ac_training.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/safetensors.h"
#include "lora/adapter_training.h"
#include "models/checkpoint.h"
#include "train/data_order.h"

namespace lloco::compress {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int64_t kMinSegment = 2;  // AutoCompressors' smallest random segment

// A seed for (seed, a, b) that differs for every pair (counter-based: no generator state to resume).
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (a + 1));
  state = train::splitmix64(state) ^ (0x8CB92BA72F3D8DD7ull * (b + 1));
  return train::splitmix64(state);
}

// Smallest sequence random_segment_plan can cut: each substep needs k segments of >= 2 tokens and
// k - 1 distinct breakpoints.
int64_t min_plan_tokens(int64_t substeps, int64_t k) { return substeps * (kMinSegment * k + k - 1); }

}  // namespace

// ---- segment plans ---------------------------------------------------------------------------------

int64_t SegmentPlan::total_tokens() const { return std::accumulate(lengths.begin(), lengths.end(), int64_t{0}); }

void SegmentPlan::validate(int64_t n_tokens, const std::string& source) const {
  LLOCO_CHECK(!lengths.empty() && !substep_segments.empty(), source, "the plan has no segments or no substeps");
  for (size_t i = 0; i < lengths.size(); ++i)
    LLOCO_CHECK(lengths[i] >= 1, source, "segment ", i, " has length ", lengths[i]);
  LLOCO_CHECK_EQ(total_tokens(), n_tokens, source, "sum of segment lengths vs sequence tokens");
  int64_t seg = 0;
  for (size_t s = 0; s < substep_segments.size(); ++s) {
    const int64_t count = substep_segments[s];
    LLOCO_CHECK(count >= 1 && seg + count <= static_cast<int64_t>(lengths.size()), source, "substep ", s, " has ",
                count, " segments, but segments ", seg, " .. of ", lengths.size(), " are left");
    const int64_t tokens = std::accumulate(lengths.begin() + seg, lengths.begin() + seg + count, int64_t{0});
    // A one-token substep predicts nothing (its first token starts a new AutoCompressors call).
    LLOCO_CHECK(tokens >= 2, source, "substep ", s, " has ", tokens, " token(s); each needs >= 2");
    seg += count;
  }
  LLOCO_CHECK_EQ(seg, static_cast<int64_t>(lengths.size()), source, "segments in substeps vs segments");
}

SegmentPlan random_segment_plan(int64_t n_tokens, int64_t substeps, int64_t k, uint64_t seed) {
  const char* op = "random_segment_plan";
  LLOCO_CHECK(substeps >= 1 && k >= 1, op, "need >= 1 substep and segment, got ", substeps, " substeps of ", k,
              " segments");
  LLOCO_CHECK(n_tokens >= min_plan_tokens(substeps, k), op, n_tokens, " tokens cannot make ", substeps, " substeps of ",
              k, " segments of >= ", kMinSegment, " tokens (needs >= ", min_plan_tokens(substeps, k), ")");
  SegmentPlan plan;
  for (int64_t s = 0; s < substeps; ++s) {
    const int64_t len = (s + 1) * n_tokens / substeps - s * n_tokens / substeps;
    const int64_t variable = len - kMinSegment * k;
    // k - 1 distinct breakpoints in [0, variable) (Floyd's sampling); segment = gap + minimum.
    uint64_t state = derive_seed(seed, static_cast<uint64_t>(s));
    std::set<int64_t> cuts;
    for (int64_t j = variable - (k - 1); j < variable; ++j) {
      const auto t = static_cast<int64_t>(train::splitmix64(state) % static_cast<uint64_t>(j + 1));
      cuts.insert(cuts.count(t) ? j : t);
    }
    int64_t prev = 0;
    for (int64_t c : cuts) {
      plan.lengths.push_back(c - prev + kMinSegment);
      prev = c;
    }
    plan.lengths.push_back(variable - prev + kMinSegment);
    plan.substep_segments.push_back(k);
  }
  plan.validate(n_tokens, op);
  return plan;
}

// ---- the objective -----------------------------------------------------------------------------------

AcLoss autocompressor_loss(const models::LlamaModel& model, const Tensor& embed_summary, bool accumulate,
                           const std::vector<int32_t>& ids, const SegmentPlan& plan, const AcLossOptions& o) {
  const char* op = "autocompressor_loss";
  const int64_t n = static_cast<int64_t>(ids.size()), D = model.config.hidden_size;
  plan.validate(n, op);
  LLOCO_CHECK(embed_summary.defined() && embed_summary.dim() == 2 && embed_summary.size(0) >= 1 &&
                  embed_summary.size(1) == D,
              op, "embed_summary must be [summary_length >= 1, ", D, "], got ",
              embed_summary.defined() ? shape_str(embed_summary.shape()) : std::string("nothing"));
  LLOCO_CHECK(embed_summary.device() == model.embed_tokens.device(), op,
              "embed_summary must be on the model's device (a device copy would cut its gradient)");
  LLOCO_CHECK(o.early_backward_scale >= 0 && (o.early_backward_scale == 0 || o.detach_between_substeps), op,
              "early_backward_scale (", o.early_backward_scale, ") needs detach_between_substeps and must be >= 0");
  for (int32_t id : ids)
    LLOCO_CHECK(id >= 0 && id < model.config.vocab_size, op, "token id ", id, " outside the vocabulary of ",
                model.config.vocab_size);
  const Device device = model.embed_tokens.device();
  const DType dtype = model.embed_tokens.dtype();
  const int64_t S = embed_summary.size(0), substeps = static_cast<int64_t>(plan.substep_segments.size());
  const int64_t predicted = n - substeps;
  Tensor softprompt = zeros({0, D}, dtype, device);
  Tensor objective;         // sum of the substeps' shares still holding a graph
  double backpropagated = 0;  // value of the shares already backpropagated (early_backward_scale)
  int64_t at = 0, seg = 0;
  for (int64_t s = 0; s < substeps; ++s) {
    // Cast per substep: an early backward releases the graph this substep built.
    const Tensor summary = embed_summary.dtype() == dtype ? embed_summary : cast(embed_summary, dtype);
    const int64_t substep_start = at;
    std::vector<Tensor> hiddens;  // the segment positions' final hidden states, in order
    for (int64_t c = 0; c < plan.substep_segments[s]; ++c, ++seg) {
      const int64_t len = plan.lengths[static_cast<size_t>(seg)];
      const bool last = seg + 1 == static_cast<int64_t>(plan.lengths.size());
      if (o.before_segment) o.before_segment(seg);
      const std::vector<int64_t> tokens(ids.begin() + at, ids.begin() + at + len);
      std::vector<Tensor> parts;
      if (softprompt.size(0) > 0) parts.push_back(softprompt);
      parts.push_back(model.embed(from_vector<int64_t>(tokens, {1, len}, DType::I64, device)).squeeze(0));
      // The sequence's last segment feeds no later segment: its summary tokens would not change the loss.
      if (!last) parts.push_back(summary);
      models::ForwardInput in;
      in.inputs_embeds = concat(parts, 0).unsqueeze(0);  // [1, P + len (+ S), D], positions 0 .. L-1
      in.output_hidden = true;
      in.compute_logits = false;
      const Tensor hidden = model.forward(in).hidden.squeeze(0);  // [L, D]
      const int64_t P = softprompt.size(0);
      hiddens.push_back(hidden.narrow(0, P, len));
      if (!last) {
        const Tensor fresh = hidden.narrow(0, P + len, S);
        softprompt = accumulate && P > 0 ? concat({softprompt, fresh}, 0) : fresh;
      }
      at += len;
    }
    if (o.detach_between_substeps) softprompt = softprompt.detach();
    // The substep's shifted causal-LM loss: position t predicts token t + 1 inside the substep.
    const int64_t m = at - substep_start;
    const Tensor logits = cast(linear(concat(hiddens, 0).narrow(0, 0, m - 1), model.lm_head), DType::F32);
    const std::vector<int64_t> targets(ids.begin() + substep_start + 1, ids.begin() + at);
    const Tensor ce = cross_entropy(logits, from_vector<int64_t>(targets, {m - 1}, DType::I64, device));
    // Weighted by its share of predicted tokens: the sum over substeps is the mean over all of them.
    const Tensor share = mul(ce, static_cast<double>(m - 1) / static_cast<double>(predicted));
    if (o.early_backward_scale > 0 && s + 1 < substeps) {
      backpropagated += share.item();
      mul(share, o.early_backward_scale).backward();
    } else {
      objective = objective.defined() ? add(objective, share) : share;
    }
  }
  return AcLoss{backpropagated != 0 ? add(objective, backpropagated) : objective, predicted};
}

// ---- training ----------------------------------------------------------------------------------------

lora::LoraConfig autocompressor_lora_config() {
  lora::LoraConfig c;
  c.rank = 16;
  c.alpha = 16.0;
  c.dropout = 0.05;
  c.targets = {models::Proj::Q, models::Proj::K, models::Proj::V, models::Proj::O};
  return c;
}

AcTrainResult train_autocompressor(const AutoCompressor& base, const std::vector<std::vector<int32_t>>& sequences,
                                   const AcTrainOptions& o) {
  const char* op = "train_autocompressor";
  LLOCO_CHECK(!sequences.empty(), op, "no training sequences");
  const int64_t need = min_plan_tokens(o.substeps, o.segments_per_substep);
  for (size_t i = 0; i < sequences.size(); ++i)
    LLOCO_CHECK(static_cast<int64_t>(sequences[i].size()) >= need, op, "sequence ", i, " has ", sequences[i].size(),
                " tokens; ", o.substeps, " substeps x ", o.segments_per_substep, " segments need >= ", need);
  models::LlamaModel model = base.model();
  for (auto& [name, p] : model.named_parameters())
    LLOCO_CHECK(!p.requires_grad(), op, "base parameter ", name, " requires grad; the base model stays frozen");
  // Per-segment dropout seeds would not replay in a checkpointed layer's recompute.
  model.gradient_checkpointing = false;
  const Device device = model.embed_tokens.device();
  const DType dtype = model.embed_tokens.dtype();

  auto adapters = std::make_shared<lora::LoraAdapters>(lora::LoraAdapters::zeros(model.config, o.lora, 1, dtype, device));
  adapters->init_peft(0, derive_seed(o.seed, 0x10AA));
  Tensor summary = base.embed_summary().detach().clone();
  summary.requires_grad_(true);
  NamedTensors params{{"embed_summary.weight", summary}};
  for (auto& named : lora::trainable_adapter_parameters(*adapters)) params.push_back(std::move(named));
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  AdamW optimizer(params, ao);
  const std::unique_ptr<LrSchedule> schedule = make_schedule(o.schedule, o.lr, o.warmup_steps, o.loop.steps);

  auto binding = lora::attach(model, adapters, {0});
  train::EpochSampler sample(static_cast<int64_t>(sequences.size()), o.seed);
  const train::LossFn loss_fn = [&](int64_t step, int64_t micro) {
    const int64_t g = step * o.loop.grad_accumulation + micro;  // global micro-batch = one sequence
    const std::vector<int32_t>& ids = sequences[static_cast<size_t>(sample(g))];
    const SegmentPlan plan = random_segment_plan(static_cast<int64_t>(ids.size()), o.substeps, o.segments_per_substep,
                                                 derive_seed(o.seed, static_cast<uint64_t>(g), 0x9A4));
    AcLossOptions lo;
    lo.early_backward_scale = 1.0 / static_cast<double>(o.loop.grad_accumulation);  // train::train's factor
    lo.before_segment = [&](int64_t segment) {
      binding->dropout_seed = derive_seed(o.seed, static_cast<uint64_t>(g), 0xD20 + static_cast<uint64_t>(segment));
    };
    const AcLoss l = autocompressor_loss(model, summary, base.accumulate_summary(), ids, plan, lo);
    return train::MicroBatchLoss{l.loss, l.predicted_tokens};
  };
  train::TrainResult r;
  {
    const lora::TrainingScope training(*binding);
    r = train::train(optimizer, [&](int64_t s) { return schedule->lr(s); }, loss_fn, o.loop);
  }
  for (auto& [name, p] : params) p.requires_grad_(false);
  return AcTrainResult{AutoCompressor(lora::merge(model, *adapters, 0), summary.detach(), base.accumulate_summary()),
                       std::move(r)};
}

void save_autocompressor(const AutoCompressor& encoder, const std::string& dir) {
  const char* op = "save_autocompressor";
  const models::LlamaModel m = models::to_half_rotate(encoder.model());
  std::error_code ec;
  fs::create_directories(dir, ec);
  LLOCO_CHECK(!ec, op, dir, ": cannot create directory: ", ec.message());
  json config = json::parse(m.config.to_json_text());
  config["architectures"] = {"LlamaAutoCompressorModel"};
  config["summary_length"] = encoder.summary_length();
  config["accumulate_summary"] = encoder.accumulate_summary();
  std::vector<std::pair<std::string, Tensor>> tensors = m.named_parameters();
  tensors.emplace_back("embed_summary.weight", encoder.embed_summary().detach().contiguous());
  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace lloco::compress
