#include "lora/adapter_training.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/ops.h"
#include "core/optim.h"
#include "train/data_order.h"

namespace lloco::lora {

QaBatch make_qa_batch(const models::LlamaModel& model, const std::vector<const QaExample*>& examples) {
  const char* op = "make_qa_batch";
  LLOCO_CHECK(!examples.empty(), op, "no examples");
  const int64_t D = model.config.hidden_size, B = static_cast<int64_t>(examples.size());
  const Device device = model.embed_tokens.device();
  const DType dtype = model.embed_tokens.dtype();
  std::vector<Tensor> rows;
  std::vector<int64_t> labels;
  int64_t S = 0;
  for (const QaExample* e : examples) {
    const int64_t P = e->prefix.defined() ? e->prefix.size(0) : 0;
    if (P > 0)
      LLOCO_CHECK(e->prefix.dim() == 2 && e->prefix.size(1) == D, op, "prefix must be [P, ", D, "], got ",
                  shape_str(e->prefix.shape()));
    LLOCO_CHECK(!e->answer.empty(), op, "an example has no answer tokens (nothing to learn)");
    S = std::max<int64_t>(S, P + static_cast<int64_t>(e->prompt.size() + e->answer.size()));
  }
  for (const QaExample* e : examples) {
    const int64_t P = e->prefix.defined() ? e->prefix.size(0) : 0;
    std::vector<int64_t> ids(e->prompt.begin(), e->prompt.end());
    ids.insert(ids.end(), e->answer.begin(), e->answer.end());
    for (int64_t id : ids)
      LLOCO_CHECK(id >= 0 && id < model.config.vocab_size, op, "token id ", id, " outside the vocabulary of ",
                  model.config.vocab_size);
    const int64_t T = static_cast<int64_t>(ids.size()), L = P + T;
    std::vector<Tensor> parts;
    if (P > 0) parts.push_back(e->prefix.to(device).to(dtype));
    parts.push_back(model.embed(from_vector<int64_t>(ids, {1, T}, DType::I64, device)).squeeze(0));
    if (L < S) parts.push_back(zeros({S - L, D}, dtype, device));
    rows.push_back(concat(parts, 0));
    const int64_t answer_at = P + static_cast<int64_t>(e->prompt.size());
    for (int64_t t = 0; t < S; ++t)
      labels.push_back(t >= answer_at && t < L ? ids[static_cast<size_t>(t - P)] : -100);
  }
  QaBatch batch;
  batch.input.inputs_embeds = stack(rows, 0);
  batch.labels = from_vector<int64_t>(labels, {B, S}, DType::I64, device);
  for (const QaExample* e : examples) batch.answer_tokens += static_cast<int64_t>(e->answer.size());
  return batch;
}

Tensor answer_loss(const Tensor& logits, const Tensor& labels) {
  LLOCO_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                  logits.size(1) == labels.size(1) && logits.size(1) >= 2,
              "answer_loss", "logits [B, S, V] and labels [B, S] with S >= 2, got ", shape_str(logits.shape()), " and ",
              shape_str(labels.shape()));
  const int64_t B = logits.size(0), S = logits.size(1), V = logits.size(2);
  const Tensor l = logits.narrow(1, 0, S - 1).reshape({B * (S - 1), V});
  const Tensor t = labels.narrow(1, 1, S - 1).reshape({B * (S - 1)});
  return cross_entropy(l, t, -100);
}

int64_t steps_for_epochs(int64_t n_examples, double epochs, int64_t batch_size, int64_t grad_accumulation) {
  LLOCO_CHECK(n_examples > 0 && epochs > 0 && batch_size > 0 && grad_accumulation > 0, "steps_for_epochs",
              "need positive sizes, got ", n_examples, " examples, ", epochs, " epochs, batch ", batch_size,
              ", accumulation ", grad_accumulation);
  const double per_step = static_cast<double>(batch_size * grad_accumulation);
  return static_cast<int64_t>(std::ceil(epochs * static_cast<double>(n_examples) / per_step));
}

NamedTensors trainable_adapter_parameters(LoraAdapters& adapters) {
  LLOCO_CHECK(adapters.num_adapters() == 1, "trainable_adapter_parameters", "one adapter expected, got ",
              adapters.num_adapters());
  NamedTensors params;
  const auto named = adapters.named_weights(0);
  const std::vector<Tensor*> stacked = adapters.parameters();  // same (layer, target, a/b) order
  for (size_t i = 0; i < stacked.size(); ++i) {
    stacked[i]->requires_grad_(true);
    params.emplace_back(named[i].first, *stacked[i]);
  }
  return params;
}

train::TrainResult train_adapter(models::LlamaModel& model, const std::shared_ptr<LoraAdapters>& adapters,
                                 const std::vector<QaExample>& examples, const AdapterTrainOptions& o) {
  const char* op = "train_adapter";
  LLOCO_CHECK(adapters && adapters->num_adapters() == 1, op, "train one adapter at a time (got ",
              adapters ? adapters->num_adapters() : 0, "): AdamW would also decay the others");
  LLOCO_CHECK(!examples.empty() && o.batch_size >= 1, op, "need examples and batch_size >= 1, got ", examples.size(),
              " examples, batch_size ", o.batch_size);
  for (auto& [name, p] : model.named_parameters())
    LLOCO_CHECK(!p.requires_grad(), op, "base parameter ", name, " requires grad; the base model stays frozen");

  const NamedTensors params = trainable_adapter_parameters(*adapters);
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  AdamW optimizer(params, ao);
  const auto warmup = static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(o.loop.steps)));
  const std::unique_ptr<LrSchedule> schedule = make_schedule(o.schedule, o.lr, warmup, o.loop.steps);

  auto binding = attach(model, adapters, std::vector<int64_t>(static_cast<size_t>(o.batch_size), 0));
  train::EpochSampler sample(static_cast<int64_t>(examples.size()), o.seed);
  const train::LossFn loss_fn = [&](int64_t step, int64_t micro) {
    const int64_t g = step * o.loop.grad_accumulation + micro;  // global micro-batch index
    std::vector<const QaExample*> batch;
    for (int64_t k = g * o.batch_size; k < (g + 1) * o.batch_size; ++k)
      batch.push_back(&examples[static_cast<size_t>(sample(k))]);
    binding->dropout_seed = o.seed * 0x100000001B3ull + static_cast<uint64_t>(g);
    const QaBatch qa = make_qa_batch(model, batch);
    const Tensor logits = model.forward(qa.input).logits;
    return train::MicroBatchLoss{answer_loss(logits, qa.labels), qa.answer_tokens};
  };
  train::TrainResult r;
  {
    const TrainingScope training(*binding);
    r = train::train(optimizer, [&](int64_t s) { return schedule->lr(s); }, loss_fn, o.loop);
  }
  binding->sequence_adapters = {0};
  for (Tensor* p : adapters->parameters()) p->requires_grad_(false);
  return r;
}

}  // namespace lloco::lora
