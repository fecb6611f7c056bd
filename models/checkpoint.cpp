#include "models/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"

namespace lloco::models {

namespace fs = std::filesystem;
using json = nlohmann::json;

LlamaModel model_from_tensors(const LlamaConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::string& source, const LoadOptions& options) {
  const char* op = "load_model";
  config.validate(source);
  std::map<std::string, Tensor> by_name;
  for (const auto& [name, t] : tensors) {
    LLOCO_CHECK(by_name.emplace(name, t).second, op, source, ": tensor '", name, "' appears twice");
  }
  // HF checkpoints sometimes carry the (recomputable) rotary buffer; it is not a parameter.
  for (auto it = by_name.begin(); it != by_name.end();)
    it = it->first.find("rotary_emb.inv_freq") != std::string::npos ? by_name.erase(it) : std::next(it);
  LlamaConfig cfg = config;
  const bool has_head = by_name.count("lm_head.weight") != 0;
  if (cfg.tie_word_embeddings && has_head)
    LLOCO_FAIL(op, source, ": config says tie_word_embeddings = true but the checkpoint has lm_head.weight");
  if (!cfg.tie_word_embeddings && !has_head)
    LLOCO_FAIL(op, source, ": missing tensor 'lm_head.weight' (config says tie_word_embeddings = false)");

  LlamaModel m;
  m.config = cfg;
  m.layers.resize(cfg.num_layers);
  const int64_t D = cfg.hidden_size, F = cfg.intermediate_size, Dh = cfg.head_dim();
  const int64_t H = cfg.num_heads, Hkv = cfg.num_kv_heads;
  std::optional<DType> stored;
  for (auto& [name, slot] : m.named_parameter_slots()) {
    auto it = by_name.find(name);
    LLOCO_CHECK(it != by_name.end(), op, source, ": missing tensor '", name, "'");
    Shape expect;
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight") expect = {cfg.vocab_size, D};
    else if (name.find("norm.weight") != std::string::npos) expect = {D};
    else if (name.find("q_proj") != std::string::npos) expect = {H * Dh, D};
    else if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos) expect = {Hkv * Dh, D};
    else if (name.find("o_proj") != std::string::npos) expect = {D, H * Dh};
    else if (name.find("down_proj") != std::string::npos) expect = {D, F};
    else expect = {F, D};
    const Tensor& t = it->second;
    LLOCO_CHECK(t.shape() == expect, op, source, ": tensor '", name, "' has shape ", shape_str(t.shape()),
                " but the config implies ", shape_str(expect));
    LLOCO_CHECK(dtype_is_float(t.dtype()), op, source, ": tensor '", name, "' has dtype ", dtype_name(t.dtype()),
                ", expected a float type");
    if (!stored) stored = t.dtype();
    LLOCO_CHECK(options.dtype || t.dtype() == *stored, op, source, ": tensor '", name, "' has dtype ",
                dtype_name(t.dtype()), " but earlier tensors are ", dtype_name(*stored),
                "; pass LoadOptions.dtype to cast");
    const DType want = options.dtype.value_or(t.dtype());
    *slot = t.dtype() == want ? t : t.to(want);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    std::string names;
    for (const auto& [name, t] : by_name) names += (names.empty() ? "'" : ", '") + name + "'";
    LLOCO_FAIL(op, source, ": unexpected tensors ", names, " (config: ", cfg.num_layers, " layers)");
  }
  if (cfg.tie_word_embeddings) m.lm_head = m.embed_tokens;
  m.config.dtype = options.dtype.value_or(*stored);
  return m;
}

HfTensors load_hf_tensors(const std::string& dir) {
  const char* op = "load_hf_tensors";
  LLOCO_CHECK(fs::is_directory(dir), op, dir, ": not a directory");
  std::vector<std::string> files;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(single)) {
    files.push_back(single.string());
  } else {
    LLOCO_CHECK(fs::exists(index), op, dir, ": neither model.safetensors nor model.safetensors.index.json exists");
    std::ifstream f(index);
    json j;
    try {
      j = json::parse(f);
    } catch (const json::exception& e) {
      LLOCO_FAIL(op, index.string(), ": invalid JSON: ", e.what());
    }
    LLOCO_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), op, index.string(),
                ": missing object field 'weight_map'");
    std::set<std::string> shard_set;
    for (auto& [name, file] : j["weight_map"].items()) {
      LLOCO_CHECK(file.is_string(), op, index.string(), ": weight_map['", name, "'] is not a string");
      weight_map[name] = file.get<std::string>();
      shard_set.insert(file.get<std::string>());
    }
    for (const auto& s : shard_set) files.push_back((fs::path(dir) / s).string());
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<std::string> seen_files;
  for (const auto& path : files) {
    const SafetensorsFile st = load_safetensors(path);
    const std::string base = fs::path(path).filename().string();
    for (const auto& [name, t] : st.items()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(name);
        LLOCO_CHECK(it != weight_map.end(), op, path, ": tensor '", name, "' is not listed in ", index.string());
        LLOCO_CHECK(it->second == base, op, path, ": tensor '", name, "' is listed in ", index.string(),
                    " under shard ", it->second);
        weight_map.erase(it);
      }
      tensors.emplace_back(name, t);  // the tensor keeps the mapping alive
    }
  }
  if (!weight_map.empty())
    LLOCO_FAIL(op, index.string(), ": tensor '", weight_map.begin()->first, "' listed for shard ",
               weight_map.begin()->second, " is missing from it");
  std::string source = files.size() == 1 ? files[0] : dir + " (" + std::to_string(files.size()) + " shards)";
  return HfTensors{std::move(tensors), std::move(source)};
}

LlamaModel load_hf_model(const std::string& dir, const LoadOptions& options) {
  LLOCO_CHECK(fs::is_directory(dir), "load_hf_model", dir, ": not a directory");
  const LlamaConfig config = LlamaConfig::from_json_file((fs::path(dir) / "config.json").string());
  const HfTensors t = load_hf_tensors(dir);
  return model_from_tensors(config, t.tensors, t.source, options);
}

LlamaModel load_llama2c_model(const std::string& path, const LoadOptions& options) {
  const char* op = "load_llama2c_model";
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  LLOCO_CHECK(f.good(), op, path, ": cannot open");
  const int64_t file_bytes = f.tellg();
  f.seekg(0);
  auto read_i32 = [&](int64_t at) {
    int32_t v = 0;
    LLOCO_CHECK(at + 4 <= file_bytes, op, path, ": file too short for the header (", file_bytes, " bytes)");
    f.seekg(at);
    f.read(reinterpret_cast<char*>(&v), 4);
    return v;
  };
  int32_t hdr[7];
  int64_t data_start = 0;
  bool shared = true;
  int version = 0;
  if (static_cast<uint32_t>(read_i32(0)) == 0x616b3432u) {  // "ak42"
    version = read_i32(4);
    LLOCO_CHECK(version == 1, op, path, ": llama2.c version ", version,
                version == 2 ? " (int8 Q8_0) is not supported; export fp32 (version 1)" : " is unknown");
    for (int i = 0; i < 7; ++i) hdr[i] = read_i32(8 + 4 * i);
    char flag = 0;
    f.seekg(36);
    f.read(&flag, 1);
    shared = flag != 0;
    data_start = 256;
  } else {
    for (int i = 0; i < 7; ++i) hdr[i] = read_i32(4 * i);
    shared = hdr[5] > 0;  // legacy: a negative vocab_size marks an untied classifier
    hdr[5] = std::abs(hdr[5]);
    data_start = 28;
  }
  LlamaConfig c;
  c.hidden_size = hdr[0];
  c.intermediate_size = hdr[1];
  c.num_layers = hdr[2];
  c.num_heads = hdr[3];
  c.num_kv_heads = hdr[4];
  c.vocab_size = hdr[5];
  c.max_position_embeddings = hdr[6];
  c.tie_word_embeddings = shared;
  c.rope_style = RopeStyle::Interleaved;
  c.validate(path);
  const int64_t D = c.hidden_size, F = c.intermediate_size, L = c.num_layers, V = c.vocab_size;
  const int64_t kv = c.num_kv_heads * c.head_dim(), hs = c.head_dim(), T = c.max_position_embeddings;
  int64_t floats = V * D + L * (2 * D + D * D + 2 * kv * D + D * D + 3 * F * D) + D;
  if (version == 0) floats += T * hs;  // freq_cis_real + freq_cis_imag, [T, hs/2] each
  if (!shared) floats += V * D;
  LLOCO_CHECK(data_start + floats * 4 == file_bytes, op, path, ": header (dim ", D, ", hidden ", F, ", layers ", L,
              ", heads ", c.num_heads, "/", c.num_kv_heads, ", vocab ", V, ", seq ", T, ") implies ",
              data_start + floats * 4, " bytes, the file has ", file_bytes);
  Tensor all = empty({floats}, DType::F32);
  f.seekg(data_start);
  f.read(static_cast<char*>(all.data_ptr()), floats * 4);
  LLOCO_CHECK(f.good(), op, path, ": read failed");
  int64_t at = 0;
  auto take = [&](const Shape& s) {
    Tensor t = all.narrow(0, at, shape_numel(s)).view(s);
    at += shape_numel(s);
    return t;
  };
  std::vector<std::pair<std::string, Tensor>> named;
  auto per_layer = [&](const std::string& suffix, const Shape& s) {
    for (int64_t l = 0; l < L; ++l) named.emplace_back("model.layers." + std::to_string(l) + "." + suffix, take(s));
  };
  if (version == 0) {
    named.emplace_back("model.embed_tokens.weight", take({V, D}));
    per_layer("input_layernorm.weight", {D});
    per_layer("self_attn.q_proj.weight", {D, D});
    per_layer("self_attn.k_proj.weight", {kv, D});
    per_layer("self_attn.v_proj.weight", {kv, D});
    per_layer("self_attn.o_proj.weight", {D, D});
    per_layer("post_attention_layernorm.weight", {D});
    per_layer("mlp.gate_proj.weight", {F, D});
    per_layer("mlp.down_proj.weight", {D, F});
    per_layer("mlp.up_proj.weight", {F, D});
    named.emplace_back("model.norm.weight", take({D}));
    at += T * hs;  // the precomputed RoPE tables are recomputed from theta instead
  } else {
    per_layer("input_layernorm.weight", {D});
    per_layer("post_attention_layernorm.weight", {D});
    named.emplace_back("model.norm.weight", take({D}));
    named.emplace_back("model.embed_tokens.weight", take({V, D}));
    per_layer("self_attn.q_proj.weight", {D, D});
    per_layer("self_attn.k_proj.weight", {kv, D});
    per_layer("self_attn.v_proj.weight", {kv, D});
    per_layer("self_attn.o_proj.weight", {D, D});
    per_layer("mlp.gate_proj.weight", {F, D});
    per_layer("mlp.down_proj.weight", {D, F});
    per_layer("mlp.up_proj.weight", {F, D});
  }
  if (!shared) named.emplace_back("lm_head.weight", take({V, D}));
  LLOCO_CHECK(at == floats, op, path, ": internal layout mismatch (", at, " vs ", floats, " floats)");
  return model_from_tensors(c, named, path, options);
}

LlamaModel load_model(const std::string& path, const LoadOptions& options) {
  LLOCO_CHECK(fs::exists(path), "load_model", path, ": does not exist");
  return fs::is_directory(path) ? load_hf_model(path, options) : load_llama2c_model(path, options);
}

namespace {
// Row r = (head h, pair i, j in {0,1}) of an interleaved weight [heads*Dh, D] moves to row
// (h, j * Dh/2 + i), which puts pair members Dh/2 apart as half-rotate RoPE expects.
Tensor interleaved_to_half(const Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), dh = rows / heads;
  return w.view({heads, dh / 2, 2, cols}).transpose(1, 2).contiguous().view({rows, cols});
}
}  // namespace

LlamaModel to_half_rotate(const LlamaModel& model) {
  if (model.config.rope_style == RopeStyle::HalfRotate) return model;
  LlamaModel m = model;
  for (auto& L : m.layers) {
    L.q_proj = interleaved_to_half(L.q_proj, m.config.num_heads);
    L.k_proj = interleaved_to_half(L.k_proj, m.config.num_kv_heads);
  }
  m.config.rope_style = RopeStyle::HalfRotate;
  return m;
}

void export_hf_model(const LlamaModel& model, const std::string& dir) {
  const LlamaModel m = to_half_rotate(model);
  std::error_code ec;
  fs::create_directories(dir, ec);
  LLOCO_CHECK(!ec, "export_hf_model", dir, ": cannot create directory: ", ec.message());
  save_safetensors((fs::path(dir) / "model.safetensors").string(), m.named_parameters(), {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / "config.json").string(), m.config.to_json_text());
}

}  // namespace lloco::models
