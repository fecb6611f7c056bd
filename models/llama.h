// LLaMA-2 decoder (HF LlamaForCausalLM semantics): config, parameters under HF names, and a forward
// pass over token ids and/or input embeddings with an optional KV cache. LLoCO feeds summary
// embeddings as `prefix_embeddings` in front of the prompt tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace lloco::models {

struct KVCache;

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_layers = 32;
  int64_t num_heads = 32;
  int64_t num_kv_heads = 32;
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  double rope_scaling = 1.0;  // HF rope_scaling {type: linear, factor}; 1 = none
  bool tie_word_embeddings = false;
  // HF checkpoints rotate halves; llama2.c (Meta layout) rotates interleaved pairs.
  RopeStyle rope_style = RopeStyle::HalfRotate;
  DType dtype = DType::F32;  // HF torch_dtype: the stored dtype
  int32_t bos_token_id = 1, eos_token_id = 2;

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Throws naming `source` and the field when a value is out of range or inconsistent.
  void validate(const std::string& source = "LlamaConfig") const;
  // HF config.json text / file. Errors name the file and the field.
  static LlamaConfig from_json_text(const std::string& text, const std::string& source);
  static LlamaConfig from_json_file(const std::string& path);
  std::string to_json_text() const;  // HF config.json (model_type llama); rope_style must be HalfRotate

  static LlamaConfig llama2_7b();
  // princeton-nlp/AutoCompressor-Llama-2-7b-6k: the LLaMA-2-7B shape (the encoder and LLoCO decoder).
  static LlamaConfig autocompressor_llama2_7b_6k();
  // A few-KB model for tests: GQA 4/2 heads, 2 layers, hidden 32, vocab 64.
  static LlamaConfig tiny();
};

struct LlamaLayer {
  Tensor input_norm;                      // [D]
  Tensor q_proj, k_proj, v_proj, o_proj;  // [H*Dh, D], [Hkv*Dh, D], [Hkv*Dh, D], [D, H*Dh]
  Tensor post_norm;                       // [D]
  Tensor gate_proj, up_proj, down_proj;   // [F, D], [F, D], [D, F]
};

// Which projection a ProjectionHook is asked to compute.
enum class Proj : uint8_t { Q, K, V, O, Gate, Up, Down };
// Replaces linear(x, weight) for one projection (e.g. to add a LoRA delta). x [..., in] -> [..., out].
using ProjectionHook = std::function<Tensor(int64_t layer, Proj which, const Tensor& x, const Tensor& weight)>;
// The tensors a ProjectionHook reads for one layer (a LoRA's A and B). A checkpointed layer takes them
// as block inputs: with a frozen base neither x nor the layer's weights need gradients, and without
// them the layer would not be recorded at all and the hook's weights would get none.
using HookParameters = std::function<std::vector<Tensor>(int64_t layer)>;

struct ForwardInput {
  Tensor input_ids;          // [B, T] i32/i64 (or undefined when inputs_embeds is given)
  Tensor inputs_embeds;      // [B, T, D] used instead of input_ids
  Tensor prefix_embeddings;  // [B, P, D] placed before the tokens (LLoCO summary vectors)
  // [B, S] or [S] for the S = P + T new positions; default cache length + 0..S-1.
  Tensor positions;
  // [B, C + S] 1 = attend, 0 = padding, over cached + new keys (HF attention_mask); undefined = all 1.
  Tensor attention_mask;
  bool output_hidden = false;     // also return the final hidden states (after the final norm)
  bool compute_logits = true;
  bool last_logits_only = false;  // logits of the last position only ([B, 1, V]): decoding
};

struct ForwardOutput {
  Tensor logits;  // [B, S, V] (or [B, 1, V])
  Tensor hidden;  // [B, S, D] after the final norm, when output_hidden
};

struct LlamaModel {
  LlamaConfig config;
  Tensor embed_tokens;  // [V, D]
  std::vector<LlamaLayer> layers;
  Tensor norm;     // [D]
  Tensor lm_head;  // [V, D]; the same tensor as embed_tokens when tied
  bool gradient_checkpointing = false;  // recompute each layer in backward (lloco::checkpoint)
  ProjectionHook projection_hook;       // optional
  HookParameters projection_hook_parameters;  // optional, set with projection_hook when it trains

  // N(0, 0.02) weights, unit norms (HF initializer), deterministic in seed. Every tensor is drawn
  // directly on `device` (Philox: the same values on every device), so a 7B model never touches the host.
  static LlamaModel random(const LlamaConfig& config, uint64_t seed, DType dtype = DType::F32,
                           Device device = cpu());

  // HF names in HF order; lm_head.weight is left out when tied.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor*>> named_parameter_slots();
  int64_t num_parameters() const;

  Tensor embed(const Tensor& ids) const;  // [B, T] -> [B, T, D]
  ForwardOutput forward(const ForwardInput& in, KVCache* cache = nullptr) const;
  // Casts every parameter (new tensors) and sets config.dtype.
  LlamaModel to(DType dtype) const;
  LlamaModel to(Device device) const;  // copies every parameter to `device`
};

// Additive attention mask [B, 1, S, C + S] from a key mask [B, C + S] (1 keep, 0 pad), causal and
// bottom-right aligned; each query always sees its own key so padded rows stay finite.
Tensor build_attention_mask(const Tensor& key_mask, int64_t new_len, DType dtype);

}  // namespace lloco::models
