#include "models/bert.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/ops.h"
#include "models/checkpoint.h"

namespace lloco::models {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- config

void BertConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* field) {
    LLOCO_CHECK(v > 0, "BertConfig", source, ": ", field, " must be > 0, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  LLOCO_CHECK(hidden_size % num_heads == 0, "BertConfig", source, ": hidden_size ", hidden_size,
              " is not divisible by num_attention_heads ", num_heads);
  LLOCO_CHECK(layer_norm_eps > 0, "BertConfig", source, ": layer_norm_eps must be > 0, got ", layer_norm_eps);
  LLOCO_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size, "BertConfig", source, ": pad_token_id ", pad_token_id,
              " is outside the vocabulary [0, ", vocab_size, ")");
}

namespace {

// `name` of `j` as T; absent or null gives `fallback`, or an error when there is none.
template <typename T>
T field(const json& j, const char* name, const std::string& source, const T* fallback) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    LLOCO_CHECK(fallback != nullptr, "BertConfig", source, ": missing field '", name, "'");
    return *fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception& e) {
    LLOCO_FAIL("BertConfig", source, ": field '", name, "' has the wrong type (", it->dump(), "): ", e.what());
  }
}

// A string field that must equal `supported` when present.
void require_value(const json& j, const char* name, const std::string& supported, const std::string& source,
                   const char* why) {
  const std::string value = field<std::string>(j, name, source, &supported);
  LLOCO_CHECK(value == supported, "BertConfig", source, ": field '", name, "' is \"", value, "\", only \"",
              supported, "\" is supported (", why, ")");
}

}  // namespace

BertConfig BertConfig::from_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    LLOCO_FAIL("BertConfig", source, ": invalid JSON: ", e.what());
  }
  LLOCO_CHECK(j.is_object(), "BertConfig", source, ": top level must be an object");
  require_value(j, "model_type", "bert", source, "a BERT encoder");
  require_value(j, "hidden_act", "gelu", source, "the exact erf GELU");
  require_value(j, "position_embedding_type", "absolute", source, "learned absolute positions");
  const bool no = false;
  LLOCO_CHECK(!field<bool>(j, "is_decoder", source, &no), "BertConfig", source,
              ": field 'is_decoder' is true, only the bidirectional encoder is supported");
  BertConfig c;  // HF BertConfig's defaults for the optional fields
  c.vocab_size = field<int64_t>(j, "vocab_size", source, nullptr);
  c.hidden_size = field<int64_t>(j, "hidden_size", source, nullptr);
  c.num_layers = field<int64_t>(j, "num_hidden_layers", source, nullptr);
  c.num_heads = field<int64_t>(j, "num_attention_heads", source, nullptr);
  c.intermediate_size = field<int64_t>(j, "intermediate_size", source, nullptr);
  const BertConfig d;
  c.max_position_embeddings = field<int64_t>(j, "max_position_embeddings", source, &d.max_position_embeddings);
  c.type_vocab_size = field<int64_t>(j, "type_vocab_size", source, &d.type_vocab_size);
  c.layer_norm_eps = field<double>(j, "layer_norm_eps", source, &d.layer_norm_eps);
  c.pad_token_id = field<int64_t>(j, "pad_token_id", source, &d.pad_token_id);
  c.validate(source);
  return c;
}

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LLOCO_CHECK(f.good(), "BertConfig", path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json_text(ss.str(), path);
}

BertConfig BertConfig::bert_base() { return BertConfig{}; }

// ---------------------------------------------------------------- parameters

std::vector<BertParamSlot> BertModel::parameter_slots() {
  const BertConfig& c = config;
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  std::vector<BertParamSlot> out = {
      {"embeddings.word_embeddings.weight", &word_embeddings, {c.vocab_size, D}},
      {"embeddings.position_embeddings.weight", &position_embeddings, {c.max_position_embeddings, D}},
      {"embeddings.token_type_embeddings.weight", &token_type_embeddings, {c.type_vocab_size, D}},
      {"embeddings.LayerNorm.weight", &embed_norm_w, {D}},
      {"embeddings.LayerNorm.bias", &embed_norm_b, {D}},
  };
  layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    BertLayer& L = layers[l];
    const std::vector<BertParamSlot> layer = {
        {p + "attention.self.query.weight", &L.query_w, {D, D}},
        {p + "attention.self.query.bias", &L.query_b, {D}},
        {p + "attention.self.key.weight", &L.key_w, {D, D}},
        {p + "attention.self.key.bias", &L.key_b, {D}},
        {p + "attention.self.value.weight", &L.value_w, {D, D}},
        {p + "attention.self.value.bias", &L.value_b, {D}},
        {p + "attention.output.dense.weight", &L.attn_out_w, {D, D}},
        {p + "attention.output.dense.bias", &L.attn_out_b, {D}},
        {p + "attention.output.LayerNorm.weight", &L.attn_norm_w, {D}},
        {p + "attention.output.LayerNorm.bias", &L.attn_norm_b, {D}},
        {p + "intermediate.dense.weight", &L.ffn_in_w, {F, D}},
        {p + "intermediate.dense.bias", &L.ffn_in_b, {F}},
        {p + "output.dense.weight", &L.ffn_out_w, {D, F}},
        {p + "output.dense.bias", &L.ffn_out_b, {D}},
        {p + "output.LayerNorm.weight", &L.ffn_norm_w, {D}},
        {p + "output.LayerNorm.bias", &L.ffn_norm_b, {D}},
    };
    out.insert(out.end(), layer.begin(), layer.end());
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> BertModel::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const BertParamSlot& s : const_cast<BertModel*>(this)->parameter_slots()) out.emplace_back(s.name, *s.tensor);
  return out;
}

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The HF BertModel name of a checkpoint tensor, or "" for tensors the encoder does not use.
std::string canonical_name(const std::string& stored) {
  std::string name = starts_with(stored, "bert.") ? stored.substr(5) : stored;
  if (starts_with(name, "pooler.") || starts_with(name, "cls.") || name == "embeddings.position_ids") return "";
  if (ends_with(name, "LayerNorm.gamma")) name.replace(name.size() - 5, 5, "weight");
  if (ends_with(name, "LayerNorm.beta")) name.replace(name.size() - 4, 4, "bias");
  return name;
}

}  // namespace

BertModel bert_from_tensors(const BertConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                            const std::string& source, Device device, DType dtype) {
  const char* op = "load_bert";
  config.validate(source);
  LLOCO_CHECK(dtype_is_float(dtype), op, source, ": parameter dtype must be a float type, got ", dtype_name(dtype));
  std::map<std::string, std::pair<std::string, Tensor>> by_name;  // canonical -> (stored name, tensor)
  for (const auto& [stored, t] : tensors) {
    const std::string name = canonical_name(stored);
    if (name.empty()) continue;
    auto [it, fresh] = by_name.emplace(name, std::make_pair(stored, t));
    LLOCO_CHECK(fresh, op, source, ": tensors '", it->second.first, "' and '", stored, "' are both '", name, "'");
  }
  BertModel m;
  m.config = config;
  for (const BertParamSlot& slot : m.parameter_slots()) {
    auto it = by_name.find(slot.name);
    LLOCO_CHECK(it != by_name.end(), op, source, ": missing tensor '", slot.name, "'");
    const auto& [stored, t] = it->second;
    LLOCO_CHECK(t.shape() == slot.shape, op, source, ": tensor '", stored, "' has shape ", shape_str(t.shape()),
                " but the config implies ", shape_str(slot.shape));
    LLOCO_CHECK(dtype_is_float(t.dtype()), op, source, ": tensor '", stored, "' has dtype ", dtype_name(t.dtype()),
                ", expected a float type");
    *slot.tensor = t.to(dtype).to(device);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    std::string names;
    for (const auto& [name, entry] : by_name) names += (names.empty() ? "'" : ", '") + entry.first + "'";
    LLOCO_FAIL(op, source, ": unexpected tensors ", names, " (config: ", config.num_layers, " layers)");
  }
  return m;
}

BertModel BertModel::load(const std::string& dir, Device device, DType dtype) {
  LLOCO_CHECK(fs::is_directory(dir), "load_bert", dir, ": not a directory");
  const BertConfig config = BertConfig::from_json_file((fs::path(dir) / "config.json").string());
  const HfTensors t = load_hf_tensors(dir);
  return bert_from_tensors(config, t.tensors, t.source, device, dtype);
}

// ---------------------------------------------------------------- forward

namespace {

// The valid tokens of a padded batch, packed back to back (row-major over [B, T]).
struct Packing {
  std::vector<int64_t> cu;         // [B + 1] offsets of each sequence's packed rows
  std::vector<int64_t> ids;        // [N] token ids
  std::vector<int64_t> positions;  // [N] column of each token (HF's default position ids)
  std::vector<int64_t> unpack;     // [B * T] packed row of each (b, t), or N for padding (a zero row)
};

Packing pack_tokens(const Tensor& ids, const Tensor& mask, const BertConfig& c) {
  const char* op = "BertModel.forward";
  const int64_t B = ids.size(0), T = ids.size(1);
  const std::vector<int64_t> id = ids.to(cpu()).to_vector<int64_t>();
  const std::vector<double> keep = mask.defined() ? mask.to(cpu()).to_vector<double>() : std::vector<double>(B * T, 1);
  Packing p;
  p.cu.push_back(0);
  std::vector<int64_t> row_of(B * T, -1);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      if (keep[i] == 0) continue;
      LLOCO_CHECK(id[i] >= 0 && id[i] < c.vocab_size, op, "ids[", b, ", ", t, "] = ", id[i],
                  " is outside the vocabulary [0, ", c.vocab_size, ")");
      row_of[i] = static_cast<int64_t>(p.ids.size());
      p.ids.push_back(id[i]);
      p.positions.push_back(t);
    }
    LLOCO_CHECK(static_cast<int64_t>(p.ids.size()) > p.cu.back(), op, "row ", b, " of attention_mask has no token");
    p.cu.push_back(static_cast<int64_t>(p.ids.size()));
  }
  const int64_t N = p.cu.back();
  p.unpack.resize(B * T);
  for (int64_t i = 0; i < B * T; ++i) p.unpack[i] = row_of[i] < 0 ? N : row_of[i];
  return p;
}

Tensor index_tensor(const std::vector<int64_t>& v, Device device) {
  return from_vector<int64_t>(v, {static_cast<int64_t>(v.size())}, DType::I64, device);
}

// One post-LN encoder layer on packed rows x [N, D]; sequence b owns rows cu[b] .. cu[b+1].
Tensor layer_forward(const BertConfig& c, const BertLayer& L, const Tensor& x, const std::vector<int64_t>& cu) {
  const int64_t N = x.size(0), H = c.num_heads, Dh = c.head_dim();
  const Tensor q = linear(x, L.query_w, L.query_b).view({N, H, Dh});
  const Tensor k = linear(x, L.key_w, L.key_b).view({N, H, Dh});
  const Tensor v = linear(x, L.value_w, L.value_b).view({N, H, Dh});
  const Tensor a = attention_varlen(q, k, v, cu, cu, /*causal=*/false).reshape({N, c.hidden_size});
  const Tensor x1 = layer_norm(add(x, linear(a, L.attn_out_w, L.attn_out_b)), L.attn_norm_w, L.attn_norm_b,
                               c.layer_norm_eps);
  const Tensor ffn = linear(gelu(linear(x1, L.ffn_in_w, L.ffn_in_b)), L.ffn_out_w, L.ffn_out_b);
  return layer_norm(add(x1, ffn), L.ffn_norm_w, L.ffn_norm_b, c.layer_norm_eps);
}

}  // namespace

// Packing instead of an additive padding mask: padded rows cost nothing in the GEMMs, and the
// attention has no mask operand, which the CUDA flash kernels require (masks take the reference
// kernel). Within a sequence the math is HF's, so unmasked positions match it for any padding.
Tensor BertModel::forward(const Tensor& ids, const Tensor& attention_mask) const {
  const char* op = "BertModel.forward";
  const BertConfig& c = config;
  LLOCO_CHECK(ids.dim() == 2 && dtype_is_int(ids.dtype()), op, "ids must be [B, T] i32/i64, got ", ids.str());
  const int64_t B = ids.size(0), T = ids.size(1);
  LLOCO_CHECK(B > 0 && T > 0, op, "empty batch ", ids.str());
  LLOCO_CHECK(T <= c.max_position_embeddings, op, "sequence length ", T, " exceeds max_position_embeddings ",
              c.max_position_embeddings);
  if (attention_mask.defined())
    LLOCO_CHECK(attention_mask.shape() == ids.shape(), op, "attention_mask ", attention_mask.str(), " vs ids ",
                ids.str());
  const Packing p = pack_tokens(ids, attention_mask, c);
  const Device dev = device();
  Tensor x = add(add(embedding(word_embeddings, index_tensor(p.ids, dev)),
                     embedding(position_embeddings, index_tensor(p.positions, dev))),
                 token_type_embeddings.narrow(0, 0, 1));  // [N, D]
  x = layer_norm(x, embed_norm_w, embed_norm_b, c.layer_norm_eps);
  for (const BertLayer& L : layers) x = layer_forward(c, L, x, p.cu);
  const Tensor padded = concat({x, zeros({1, c.hidden_size}, x.dtype(), dev)}, 0);  // row N: padding
  return index_select(padded, 0, index_tensor(p.unpack, dev)).view({B, T, c.hidden_size});
}

Tensor BertModel::embed(const Tensor& ids, const Tensor& attention_mask) const {
  const Tensor mask = attention_mask.defined() ? attention_mask : ones(ids.shape(), DType::I64, ids.device());
  return mean_pool(forward(ids, mask), mask);
}

// ---------------------------------------------------------------- pooling

Tensor mean_pool(const Tensor& hidden, const Tensor& mask) {
  const char* op = "mean_pool";
  LLOCO_CHECK(hidden.dim() == 3, op, "hidden must be [B, T, D], got ", hidden.str());
  LLOCO_CHECK(mask.defined() && mask.dim() == 2 && mask.size(0) == hidden.size(0) && mask.size(1) == hidden.size(1),
              op, "mask must be [B, T] matching hidden ", hidden.str(), ", got ", mask.str());
  const DType acc = hidden.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const Tensor keep = compare(BinaryOp::Ne, mask.to(hidden.device()).to(acc), zeros({}, acc, hidden.device()));
  const Tensor count = sum(keep, {1}, true);  // [B, 1]
  const std::vector<double> counts = count.to(cpu()).to_vector<double>();
  for (size_t b = 0; b < counts.size(); ++b) LLOCO_CHECK(counts[b] > 0, op, "row ", b, " of mask has no token");
  const Tensor total = sum(mul(hidden.to(acc), keep.unsqueeze(-1)), {1});  // [B, D]
  return div(total, count).to(hidden.dtype());
}

Tensor cls_pool(const Tensor& hidden) {
  LLOCO_CHECK(hidden.dim() == 3 && hidden.size(1) > 0, "cls_pool", "hidden must be [B, T >= 1, D], got ",
              hidden.str());
  return hidden.select(1, 0);
}

}  // namespace lloco::models
