#include "models/llama.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "models/kv_cache.h"

namespace lloco::models {

using json = nlohmann::json;

// ---------------------------------------------------------------- config

void LlamaConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* field) {
    LLOCO_CHECK(v > 0, "LlamaConfig", source, ": ", field, " must be > 0, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(num_kv_heads, "num_key_value_heads");
  positive(max_position_embeddings, "max_position_embeddings");
  LLOCO_CHECK(hidden_size % num_heads == 0, "LlamaConfig", source, ": hidden_size ", hidden_size,
              " is not divisible by num_attention_heads ", num_heads);
  LLOCO_CHECK(num_heads % num_kv_heads == 0, "LlamaConfig", source, ": num_attention_heads ", num_heads,
              " is not divisible by num_key_value_heads ", num_kv_heads);
  LLOCO_CHECK(head_dim() % 2 == 0, "LlamaConfig", source, ": head dim ", head_dim(), " must be even for RoPE");
  LLOCO_CHECK(rms_norm_eps > 0, "LlamaConfig", source, ": rms_norm_eps must be > 0, got ", rms_norm_eps);
  LLOCO_CHECK(rope_theta > 0, "LlamaConfig", source, ": rope_theta must be > 0, got ", rope_theta);
  LLOCO_CHECK(rope_scaling > 0, "LlamaConfig", source, ": rope_scaling.factor must be > 0, got ", rope_scaling);
}

namespace {

template <typename T>
T field(const json& j, const char* name, const std::string& source, const T* fallback) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    LLOCO_CHECK(fallback != nullptr, "LlamaConfig", source, ": missing field '", name, "'");
    return *fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception& e) {
    LLOCO_FAIL("LlamaConfig", source, ": field '", name, "' has the wrong type (", it->dump(), "): ", e.what());
  }
}

DType dtype_from_torch(const std::string& s, const std::string& source) {
  if (s == "float32") return DType::F32;
  if (s == "float16") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float64") return DType::F64;
  LLOCO_FAIL("LlamaConfig", source, ": field 'torch_dtype' is '", s, "', expected float32, float16 or bfloat16");
}

const char* dtype_to_torch(DType d) {
  switch (d) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F64: return "float64";
    default: return "float32";
  }
}

}  // namespace

LlamaConfig LlamaConfig::from_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    LLOCO_FAIL("LlamaConfig", source, ": invalid JSON: ", e.what());
  }
  LLOCO_CHECK(j.is_object(), "LlamaConfig", source, ": top level must be an object");
  if (j.contains("model_type") && j["model_type"].is_string())
    LLOCO_CHECK(j["model_type"] == "llama", "LlamaConfig", source, ": field 'model_type' is ",
                j["model_type"].dump(), ", expected \"llama\"");
  LlamaConfig c;
  c.vocab_size = field<int64_t>(j, "vocab_size", source, nullptr);
  c.hidden_size = field<int64_t>(j, "hidden_size", source, nullptr);
  c.intermediate_size = field<int64_t>(j, "intermediate_size", source, nullptr);
  c.num_layers = field<int64_t>(j, "num_hidden_layers", source, nullptr);
  c.num_heads = field<int64_t>(j, "num_attention_heads", source, nullptr);
  c.num_kv_heads = field<int64_t>(j, "num_key_value_heads", source, &c.num_heads);
  const int64_t max_pos = 2048;
  c.max_position_embeddings = field<int64_t>(j, "max_position_embeddings", source, &max_pos);
  const double eps = 1e-6, theta = 10000.0;
  c.rms_norm_eps = field<double>(j, "rms_norm_eps", source, &eps);
  c.rope_theta = field<double>(j, "rope_theta", source, &theta);
  const bool tie = false;
  c.tie_word_embeddings = field<bool>(j, "tie_word_embeddings", source, &tie);
  const int32_t bos = 1, eos = 2;
  c.bos_token_id = field<int32_t>(j, "bos_token_id", source, &bos);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    LLOCO_CHECK(!j["eos_token_id"].empty(), "LlamaConfig", source, ": field 'eos_token_id' is an empty list");
    c.eos_token_id = j["eos_token_id"][0].get<int32_t>();
  } else {
    c.eos_token_id = field<int32_t>(j, "eos_token_id", source, &eos);
  }
  const std::string f32 = "float32";
  c.dtype = dtype_from_torch(field<std::string>(j, "torch_dtype", source, &f32), source);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& rs = j["rope_scaling"];
    LLOCO_CHECK(rs.is_object(), "LlamaConfig", source, ": field 'rope_scaling' must be an object, got ", rs.dump());
    std::string type = rs.value("rope_type", rs.value("type", std::string()));
    if (type != "default") {
      LLOCO_CHECK(type == "linear", "LlamaConfig", source, ": field 'rope_scaling.type' is '", type,
                  "', only 'linear' is supported");
      LLOCO_CHECK(rs.contains("factor") && rs["factor"].is_number(), "LlamaConfig", source,
                  ": field 'rope_scaling.factor' is missing or not a number");
      c.rope_scaling = rs["factor"].get<double>();
    }
  }
  for (const char* name : {"attention_bias", "mlp_bias"})
    if (j.contains(name) && j[name].is_boolean())
      LLOCO_CHECK(!j[name].get<bool>(), "LlamaConfig", source, ": field '", name, "' = true is not supported");
  if (j.contains("hidden_act") && j["hidden_act"].is_string())
    LLOCO_CHECK(j["hidden_act"] == "silu", "LlamaConfig", source, ": field 'hidden_act' is ",
                j["hidden_act"].dump(), ", only \"silu\" is supported");
  c.validate(source);
  if (j.contains("head_dim") && j["head_dim"].is_number_integer())
    LLOCO_CHECK(j["head_dim"].get<int64_t>() == c.head_dim(), "LlamaConfig", source, ": field 'head_dim' is ",
                j["head_dim"].get<int64_t>(), " but hidden_size / num_attention_heads is ", c.head_dim());
  return c;
}

LlamaConfig LlamaConfig::from_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LLOCO_CHECK(f.good(), "LlamaConfig", path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json_text(ss.str(), path);
}

std::string LlamaConfig::to_json_text() const {
  LLOCO_CHECK(rope_style == RopeStyle::HalfRotate, "LlamaConfig.to_json",
              "HF config.json describes half-rotate RoPE; convert interleaved q/k weights first");
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim();
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = rope_scaling == 1.0 ? json(nullptr) : json{{"type", "linear"}, {"rope_type", "linear"}, {"factor", rope_scaling}};
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = dtype_to_torch(dtype);
  return j.dump(2) + "\n";
}

LlamaConfig LlamaConfig::llama2_7b() { return LlamaConfig{}; }

LlamaConfig LlamaConfig::autocompressor_llama2_7b_6k() {
  LlamaConfig c;  // same shape as LLaMA-2-7B (lloco-method.md §1); weights fine-tuned, stored bf16
  c.dtype = DType::BF16;
  return c;
}

LlamaConfig LlamaConfig::tiny() {
  LlamaConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.max_position_embeddings = 128;
  return c;
}

// ---------------------------------------------------------------- model

LlamaModel LlamaModel::random(const LlamaConfig& config, uint64_t seed, DType dtype, Device device) {
  config.validate();
  LlamaModel m;
  m.config = config;
  m.config.dtype = dtype;
  const int64_t D = config.hidden_size, F = config.intermediate_size, Dh = config.head_dim();
  uint64_t stream = 0;
  auto normal = [&](const Shape& s) { return (randn(s, seed, DType::F32, device, (stream++) << 40) * 0.02).to(dtype); };
  m.embed_tokens = normal({config.vocab_size, D});
  for (int64_t l = 0; l < config.num_layers; ++l) {
    LlamaLayer L;
    L.input_norm = ones({D}, dtype, device);
    L.q_proj = normal({config.num_heads * Dh, D});
    L.k_proj = normal({config.num_kv_heads * Dh, D});
    L.v_proj = normal({config.num_kv_heads * Dh, D});
    L.o_proj = normal({D, config.num_heads * Dh});
    L.post_norm = ones({D}, dtype, device);
    L.gate_proj = normal({F, D});
    L.up_proj = normal({F, D});
    L.down_proj = normal({D, F});
    m.layers.push_back(L);
  }
  m.norm = ones({D}, dtype, device);
  m.lm_head = config.tie_word_embeddings ? m.embed_tokens : normal({config.vocab_size, D});
  return m;
}

std::vector<std::pair<std::string, Tensor*>> LlamaModel::named_parameter_slots() {
  std::vector<std::pair<std::string, Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens);
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LlamaLayer& L = layers[l];
    out.emplace_back(p + "self_attn.q_proj.weight", &L.q_proj);
    out.emplace_back(p + "self_attn.k_proj.weight", &L.k_proj);
    out.emplace_back(p + "self_attn.v_proj.weight", &L.v_proj);
    out.emplace_back(p + "self_attn.o_proj.weight", &L.o_proj);
    out.emplace_back(p + "mlp.gate_proj.weight", &L.gate_proj);
    out.emplace_back(p + "mlp.up_proj.weight", &L.up_proj);
    out.emplace_back(p + "mlp.down_proj.weight", &L.down_proj);
    out.emplace_back(p + "input_layernorm.weight", &L.input_norm);
    out.emplace_back(p + "post_attention_layernorm.weight", &L.post_norm);
  }
  out.emplace_back("model.norm.weight", &norm);
  if (!config.tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head);
  return out;
}

std::vector<std::pair<std::string, Tensor>> LlamaModel::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, slot] : const_cast<LlamaModel*>(this)->named_parameter_slots()) out.emplace_back(name, *slot);
  return out;
}

int64_t LlamaModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

LlamaModel LlamaModel::to(DType dtype) const {
  LlamaModel m = *this;
  for (auto& [name, slot] : m.named_parameter_slots()) *slot = slot->dtype() == dtype ? *slot : slot->to(dtype);
  if (m.config.tie_word_embeddings) m.lm_head = m.embed_tokens;
  m.config.dtype = dtype;
  return m;
}

LlamaModel LlamaModel::to(Device device) const {
  LlamaModel m = *this;
  for (auto& [name, slot] : m.named_parameter_slots()) *slot = slot->device() == device ? *slot : slot->to(device);
  if (m.config.tie_word_embeddings) m.lm_head = m.embed_tokens;
  return m;
}

Tensor LlamaModel::embed(const Tensor& ids) const {
  LLOCO_CHECK(ids.dim() == 2 && dtype_is_int(ids.dtype()), "LlamaModel.embed", "ids must be [B, T] i32/i64, got ",
              ids.str());
  return embedding(embed_tokens, ids);
}

Tensor build_attention_mask(const Tensor& key_mask, int64_t new_len, DType dtype) {
  LLOCO_CHECK(key_mask.dim() == 2 && key_mask.size(1) >= new_len, "build_attention_mask",
              "key mask must be [B, C + S] with C + S >= S = ", new_len, ", got ", key_mask.str());
  const int64_t B = key_mask.size(0), K = key_mask.size(1), past = K - new_len;
  const std::vector<double> keep = key_mask.to_vector<double>();
  std::vector<float> m(static_cast<size_t>(B * new_len * K));
  const float neg = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = 0; q < new_len; ++q)
      for (int64_t k = 0; k < K; ++k) {
        const bool visible = k == past + q || (k <= past + q && keep[b * K + k] != 0.0);
        m[(b * new_len + q) * K + k] = visible ? 0.0f : neg;
      }
  return from_vector<float>(m, {B, 1, new_len, K}, dtype, key_mask.device());
}

namespace {

Tensor project(const LlamaModel& m, int64_t layer, Proj which, const Tensor& x, const Tensor& w) {
  return m.projection_hook ? m.projection_hook(layer, which, x, w) : linear(x, w);
}

// One decoder layer. x [B, S, D]; tables for the S new positions; mask undefined = plain causal.
Tensor layer_forward(const LlamaModel& m, int64_t l, const LlamaLayer& L, const Tensor& x, const RopeTables& tables,
                     const Tensor& mask, KVCache* cache) {
  const LlamaConfig& c = m.config;
  const int64_t B = x.size(0), S = x.size(1), H = c.num_heads, Hkv = c.num_kv_heads, Dh = c.head_dim();
  const Tensor h = rms_norm(x, L.input_norm, c.rms_norm_eps);
  Tensor q = project(m, l, Proj::Q, h, L.q_proj).view({B, S, H, Dh}).transpose(1, 2);      // [B, H, S, Dh]
  Tensor k = project(m, l, Proj::K, h, L.k_proj).view({B, S, Hkv, Dh}).transpose(1, 2);    // [B, Hkv, S, Dh]
  Tensor v = project(m, l, Proj::V, h, L.v_proj).view({B, S, Hkv, Dh}).transpose(1, 2);    // [B, Hkv, S, Dh]
  q = rope(q, tables, c.rope_style);
  k = rope(k, tables, c.rope_style);
  if (cache) std::tie(k, v) = cache->append(l, k, v);
  AttentionOptions opts;
  opts.causal = !mask.defined();
  opts.mask = mask;
  const Tensor a = attention(q, k, v, opts).transpose(1, 2).reshape({B, S, H * Dh});
  const Tensor x1 = x + project(m, l, Proj::O, a, L.o_proj);
  const Tensor h2 = rms_norm(x1, L.post_norm, c.rms_norm_eps);
  const Tensor mlp = swiglu(project(m, l, Proj::Gate, h2, L.gate_proj), project(m, l, Proj::Up, h2, L.up_proj));
  return x1 + project(m, l, Proj::Down, mlp, L.down_proj);
}

}  // namespace

ForwardOutput LlamaModel::forward(const ForwardInput& in, KVCache* cache) const {
  const LlamaConfig& c = config;
  const char* op = "LlamaModel.forward";
  LLOCO_CHECK(in.input_ids.defined() != in.inputs_embeds.defined() || in.prefix_embeddings.defined(), op,
              "give exactly one of input_ids and inputs_embeds (or prefix_embeddings alone)");
  LLOCO_CHECK(!(in.input_ids.defined() && in.inputs_embeds.defined()), op,
              "input_ids and inputs_embeds are mutually exclusive");
  std::vector<Tensor> parts;
  if (in.prefix_embeddings.defined()) parts.push_back(in.prefix_embeddings);
  if (in.input_ids.defined()) parts.push_back(embed(in.input_ids));
  if (in.inputs_embeds.defined()) parts.push_back(in.inputs_embeds);
  for (auto& p : parts) {
    LLOCO_CHECK(p.dim() == 3 && p.size(2) == c.hidden_size && p.size(0) == parts[0].size(0), op,
                "embeddings must be [B, T, ", c.hidden_size, "] with one B, got ", p.str(), " and ", parts[0].str());
    if (p.dtype() != embed_tokens.dtype()) p = cast(p, embed_tokens.dtype());
  }
  Tensor x = parts.size() == 1 ? parts[0] : concat(parts, 1);  // [B, S, D]
  const int64_t B = x.size(0), S = x.size(1);
  LLOCO_CHECK(S > 0, op, "empty sequence");
  if (cache) LLOCO_CHECK_EQ(cache->num_layers(), c.num_layers, op, "KV cache layers");
  const int64_t past = cache ? cache->length() : 0;

  Tensor positions = in.positions;
  if (!positions.defined()) positions = arange(static_cast<double>(past), static_cast<double>(past + S));
  LLOCO_CHECK(positions.size(-1) == S && (positions.dim() == 1 || (positions.dim() == 2 && positions.size(0) == B)),
              op, "positions must be [S] or [B, S] with S = ", S, ", B = ", B, ", got ", positions.str());
  const RopeTables tables = rope_tables(positions.to(x.device()), c.head_dim(), c.rope_theta, c.rope_scaling);

  Tensor mask;
  if (in.attention_mask.defined()) {
    LLOCO_CHECK(in.attention_mask.dim() == 2 && in.attention_mask.size(0) == B && in.attention_mask.size(1) == past + S,
                op, "attention_mask must be [B, C + S] = [", B, ", ", past + S, "], got ", in.attention_mask.str());
    mask = build_attention_mask(in.attention_mask, S, x.dtype()).to(x.device());
  }

  const bool ckpt = gradient_checkpointing && !cache && grad_enabled();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LlamaLayer& L = layers[l];
    if (!ckpt) {
      x = layer_forward(*this, l, L, x, tables, mask, cache);
      continue;
    }
    // Weights go in as block inputs so their gradients flow even when x itself needs none.
    std::vector<Tensor> inputs = {x,           L.input_norm, L.q_proj,    L.k_proj,  L.v_proj,
                                  L.o_proj,    L.post_norm,  L.gate_proj, L.up_proj, L.down_proj};
    if (projection_hook && projection_hook_parameters) {  // read by the hook as captured leaves, not from t[]
      const std::vector<Tensor> hooked = projection_hook_parameters(l);
      inputs.insert(inputs.end(), hooked.begin(), hooked.end());
    }
    x = checkpoint(
        [this, l, tables, mask](const std::vector<Tensor>& t) {
          const LlamaLayer W{t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]};
          return layer_forward(*this, l, W, t[0], tables, mask, nullptr);
        },
        inputs);
  }
  ForwardOutput out;
  Tensor h = rms_norm(x, norm, c.rms_norm_eps);
  if (in.output_hidden) out.hidden = h;
  if (in.compute_logits) {
    if (in.last_logits_only) h = h.narrow(1, S - 1, 1);
    out.logits = linear(h, lm_head);
  }
  return out;
}

}  // namespace lloco::models
