#include "compress/autocompressor.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compress/manifest_json.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace lloco::compress {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kSummaryWeight = "embed_summary.weight";

}  // namespace

AutoCompressor::AutoCompressor(models::LlamaModel model, Tensor embed_summary, bool accumulate_summary)
    : model_(std::move(model)), embed_summary_(std::move(embed_summary)), accumulate_(accumulate_summary) {
  const char* op = "AutoCompressor";
  LLOCO_CHECK(embed_summary_.defined() && embed_summary_.dim() == 2 && embed_summary_.size(0) >= 1 &&
                  embed_summary_.size(1) == model_.config.hidden_size,
              op, "embed_summary must be [summary_length >= 1, ", model_.config.hidden_size, "], got ",
              embed_summary_.defined() ? shape_str(embed_summary_.shape()) : std::string("nothing"));
  if (embed_summary_.dtype() != model_.embed_tokens.dtype()) embed_summary_ = embed_summary_.to(model_.embed_tokens.dtype());
  if (embed_summary_.device() != model_.embed_tokens.device())
    embed_summary_ = embed_summary_.to(model_.embed_tokens.device());
}

AutoCompressor AutoCompressor::load(const std::string& dir, const models::LoadOptions& options) {
  const char* op = "AutoCompressor::load";
  const fs::path config_path = fs::path(dir) / "config.json";
  const json j = read_json_file(config_path.string(), op);
  LLOCO_CHECK(j.is_object() && j.contains("summary_length") && j["summary_length"].is_number_integer(), op,
              config_path.string(), ": field 'summary_length' (an integer) is missing: not an AutoCompressor config");
  const int64_t summary_length = j["summary_length"].get<int64_t>();
  bool accumulate = false;  // AutoCompressors' default
  if (j.contains("accumulate_summary")) {
    LLOCO_CHECK(j["accumulate_summary"].is_boolean(), op, config_path.string(),
                ": field 'accumulate_summary' must be a boolean, got ", j["accumulate_summary"].dump());
    accumulate = j["accumulate_summary"].get<bool>();
  }
  const models::LlamaConfig config = models::LlamaConfig::from_json_file(config_path.string());
  models::HfTensors t = models::load_hf_tensors(dir);
  const auto it = std::find_if(t.tensors.begin(), t.tensors.end(), [](const auto& p) { return p.first == kSummaryWeight; });
  LLOCO_CHECK(it != t.tensors.end(), op, t.source, ": no tensor '", kSummaryWeight, "'");
  Tensor summary = it->second;
  t.tensors.erase(it);
  LLOCO_CHECK(summary.dim() == 2 && summary.size(0) == summary_length && summary.size(1) == config.hidden_size, op,
              t.source, ": tensor '", kSummaryWeight, "' has shape ", shape_str(summary.shape()), " but the config implies [",
              summary_length, ", ", config.hidden_size, "]");
  models::LlamaModel model = models::model_from_tensors(config, t.tensors, t.source, options);
  return AutoCompressor(std::move(model), summary, accumulate);
}

int64_t AutoCompressor::num_vectors(int64_t n_tokens, const CompressOptions& o) const {
  LLOCO_CHECK(n_tokens >= 1 && o.segment_length >= 1, "AutoCompressor::num_vectors", "need >= 1 token and segment "
              "length >= 1, got ", n_tokens, " tokens, segment length ", o.segment_length);
  const int64_t segments = (n_tokens + o.segment_length - 1) / o.segment_length;
  const int64_t summarized = o.summarize_last_segment ? segments : segments - 1;
  return summary_length() * (accumulate_ ? summarized : std::min<int64_t>(summarized, 1));
}

Tensor AutoCompressor::compress(const std::vector<int32_t>& ids, const CompressOptions& o) const {
  const char* op = "AutoCompressor::compress";
  LLOCO_CHECK(!ids.empty(), op, "the document has no tokens");
  LLOCO_CHECK(o.segment_length >= 1, op, "segment_length must be >= 1, got ", o.segment_length);
  for (int32_t id : ids)
    LLOCO_CHECK(id >= 0 && id < model_.config.vocab_size, op, "token id ", id, " outside the vocabulary of ",
                model_.config.vocab_size);
  NoGradGuard no_grad;
  const Device device = model_.embed_tokens.device();
  const int64_t n = static_cast<int64_t>(ids.size()), S = summary_length(), D = model_.config.hidden_size;
  Tensor softprompt = zeros({0, D}, model_.embed_tokens.dtype(), device);
  for (int64_t start = 0; start < n; start += o.segment_length) {
    const int64_t len = std::min(o.segment_length, n - start);
    // Without summary tokens the last segment only feeds logits nobody reads: skip its forward.
    if (!o.summarize_last_segment && start + len == n) break;
    const std::vector<int64_t> seg(ids.begin() + start, ids.begin() + start + len);
    std::vector<Tensor> parts;
    if (softprompt.size(0) > 0) parts.push_back(softprompt);
    parts.push_back(model_.embed(from_vector<int64_t>(seg, {1, len}, DType::I64, device)).squeeze(0));
    parts.push_back(embed_summary_);
    models::ForwardInput in;
    in.inputs_embeds = concat(parts, 0).unsqueeze(0);  // [1, L, D]; positions default to 0 .. L-1
    in.output_hidden = true;
    in.compute_logits = false;
    const Tensor hidden = model_.forward(in).hidden.squeeze(0);  // [L, D]
    const Tensor fresh = hidden.narrow(0, hidden.size(0) - S, S).contiguous();
    softprompt = accumulate_ && softprompt.size(0) > 0 ? concat({softprompt, fresh}, 0) : fresh;
  }
  return softprompt;
}

AutoCompressor AutoCompressor::to(Device device) const {
  return AutoCompressor(model_.to(device), embed_summary_.to(device), accumulate_);
}

models::LlamaModel load_decoder(const std::string& dir, const models::LoadOptions& options) {
  const json j = read_json_file((fs::path(dir) / "config.json").string(), "load_decoder");
  if (j.is_object() && j.contains("summary_length")) return AutoCompressor::load(dir, options).model();
  return models::load_hf_model(dir, options);
}

}  // namespace lloco::compress
