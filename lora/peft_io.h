// PEFT adapter directories (what peft's save_pretrained writes and from_pretrained reads):
// adapter_config.json + adapter_model.safetensors with weights named
// base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (see peft_weight_name).
// Supported: LoRA on any of the seven LLaMA projections with one rank and alpha for all of them,
// optionally rsLoRA. Everything else PEFT can express (DoRA, per-module rank or alpha patterns, bias
// training, modules_to_save, fan_in_fan_out, regex target_modules) is rejected with the field named.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "lora/adapters.h"

namespace lloco::lora {

struct PeftAdapter {
  LoraConfig config;
  std::string base_model;                               // base_model_name_or_path ("" when null)
  std::vector<std::pair<std::string, Tensor>> weights;  // adapter_model.safetensors, file order
};

// Parses an adapter_config.json text; errors name `source` and the field.
LoraConfig parse_peft_config(const std::string& json_text, const std::string& source, std::string* base_model = nullptr);
std::string peft_config_json(const LoraConfig& config, const std::string& base_model);

PeftAdapter read_peft_adapter(const std::string& dir);

// Stacks the adapters saved in `dirs` (adapter i = dirs[i]) for `model`. They must agree on rank,
// alpha and targets, and hold exactly the weights of every (layer, target) with the right shapes;
// errors name the file and the tensor.
LoraAdapters load_peft_adapters(const models::LlamaConfig& model, const std::vector<std::string>& dirs,
                                DType dtype = DType::F32, Device device = cpu());

// Writes adapter `adapter` as a PEFT directory (created if missing; each file atomically), loadable
// by peft's PeftModel.from_pretrained on the base model.
void save_peft_adapter(const LoraAdapters& adapters, int64_t adapter, const std::string& dir,
                       const std::string& base_model = "");

}  // namespace lloco::lora
