// Loading LLaMA weights: HF directories (config.json + model.safetensors or sharded
// model-XXXXX-of-YYYYY.safetensors with model.safetensors.index.json) and llama2.c .bin files;
// exporting to an HF directory. Errors name the file and the tensor.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/llama.h"

namespace lloco::models {

struct LoadOptions {
  // Parameter dtype; nullopt keeps the stored dtype. Tensors already in that dtype stay zero-copy
  // views of the memory-mapped file.
  std::optional<DType> dtype;
};

// Checks names, shapes and the tie flag of `tensors` against `config` and builds the model.
// `source` names the file(s) in errors. Casts when options.dtype differs from a tensor's dtype.
LlamaModel model_from_tensors(const LlamaConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::string& source, const LoadOptions& options = {});

// Every tensor of an HF directory (model.safetensors, or the shards listed by
// model.safetensors.index.json, checked against it), as memory-mapped views; `source` names the
// file(s) for errors. Models with extra tensors (an AutoCompressor's embed_summary) start here.
struct HfTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::string source;
};
HfTensors load_hf_tensors(const std::string& dir);

LlamaModel load_hf_model(const std::string& dir, const LoadOptions& options = {});
// llama2.c checkpoints: legacy (version 0, 7-int32 header; negative vocab = untied classifier) and
// "ak42" version 1 (fp32). Version 2 (int8) is rejected. The model uses interleaved RoPE.
LlamaModel load_llama2c_model(const std::string& path, const LoadOptions& options = {});
// A directory loads as HF, a file as llama2.c.
LlamaModel load_model(const std::string& path, const LoadOptions& options = {});

// Permutes the q/k projection rows from interleaved (Meta / llama2.c) to HF half-rotate RoPE order,
// so the model computes the same function with RopeStyle::HalfRotate. Identity for HF models.
LlamaModel to_half_rotate(const LlamaModel& model);

// Writes config.json + model.safetensors into `dir` (created if missing), each atomically.
// Interleaved-RoPE models are converted with to_half_rotate first.
void export_hf_model(const LlamaModel& model, const std::string& dir);

}  // namespace lloco::models
