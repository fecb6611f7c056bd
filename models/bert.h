// BERT encoder (HF BertModel semantics: absolute positions, post-LN layers, exact GELU) for dense
// retrieval. LLoCO's retrieval baseline embeds chunks with Contriever (facebook/contriever:
// bert-base-uncased weights + mean pooling, see mean_pool) and keeps the top 5.
//
// The forward packs the valid tokens of a padded batch back to back and runs every layer on those
// rows only, with attention_varlen for the self-attention (see BertModel::forward).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace lloco::models {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Throws naming `source` and the field when a value is out of range or inconsistent.
  void validate(const std::string& source = "BertConfig") const;
  // HF config.json (model_type "bert"). Only hidden_act "gelu" and position_embedding_type
  // "absolute" are supported; anything else is an error naming the file, the field and the value.
  static BertConfig from_json_text(const std::string& text, const std::string& source);
  static BertConfig from_json_file(const std::string& path);

  static BertConfig bert_base();  // bert-base-uncased, the shape of facebook/contriever
};

struct BertLayer {
  Tensor query_w, key_w, value_w, attn_out_w;  // [D, D]
  Tensor query_b, key_b, value_b, attn_out_b;  // [D]
  Tensor attn_norm_w, attn_norm_b;             // [D]
  Tensor ffn_in_w, ffn_in_b;                   // [F, D], [F]
  Tensor ffn_out_w, ffn_out_b;                 // [D, F], [D]
  Tensor ffn_norm_w, ffn_norm_b;               // [D]
};

// A parameter slot under its HF BertModel name with the shape the config implies.
struct BertParamSlot {
  std::string name;
  Tensor* tensor;
  Shape shape;
};

struct BertModel {
  BertConfig config;
  Tensor word_embeddings;        // [V, D]
  Tensor position_embeddings;    // [P, D]
  Tensor token_type_embeddings;  // [type_vocab_size, D]
  Tensor embed_norm_w, embed_norm_b;  // [D]
  std::vector<BertLayer> layers;

  // An HF directory: config.json + model.safetensors (or shards with model.safetensors.index.json),
  // memory-mapped; parameters are cast to `dtype` and placed on `device`. See bert_from_tensors for
  // which tensor names are accepted.
  static BertModel load(const std::string& dir, Device device = cpu(), DType dtype = DType::F32);

  // HF BertModel names (no "bert." prefix) in HF order, with their expected shapes.
  std::vector<BertParamSlot> parameter_slots();
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  Device device() const { return word_embeddings.device(); }
  DType dtype() const { return word_embeddings.dtype(); }

  // ids [B, T] i32/i64; attention_mask [B, T] (nonzero = token, 0 = padding; undefined = no padding)
  // -> last hidden state [B, T, D] in the parameters' dtype. Token type 0 and position t for column t
  // (HF's defaults), so any padding pattern gives HF's values at the unmasked positions; masked
  // positions are 0. Every row needs at least one token. Differentiable in the parameters.
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor()) const;
  // Contriever sentence embeddings: mean_pool(forward(ids, mask), mask) -> [B, D].
  Tensor embed(const Tensor& ids, const Tensor& attention_mask = Tensor()) const;
};

// Checks names and shapes of `tensors` against `config` and builds the model on `device` in `dtype`.
// Names may carry a "bert." prefix (BertForMaskedLM / BertForPreTraining checkpoints) or not
// (BertModel); TF-era "LayerNorm.gamma/beta" are read as weight/bias (as HF's loader renames them).
// Ignored: pooler.* (Contriever mean-pools, the pooler's tanh head is unused), cls.* (the MLM / NSP
// heads) and the embeddings.position_ids buffer. Any other unexpected or missing tensor, and any
// shape mismatch, is an error naming `source` and the tensor.
BertModel bert_from_tensors(const BertConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                            const std::string& source, Device device = cpu(), DType dtype = DType::F32);

// Contriever pooling: the mean of hidden [B, T, D] over the positions where mask [B, T] is nonzero
// (sum / count, in f32 for half inputs) -> [B, D] in hidden's dtype. Every row needs a token.
Tensor mean_pool(const Tensor& hidden, const Tensor& mask);
// The first position's hidden state (the [CLS] token with right padding): hidden [B, T, D] -> [B, D].
Tensor cls_pool(const Tensor& hidden);

}  // namespace lloco::models
