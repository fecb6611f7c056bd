#include "lora/peft_io.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace lloco::lora {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";

// A field that PEFT writes but lloco cannot honour must hold its neutral value.
void require_neutral(const json& j, const char* field, const std::string& source) {
  if (!j.contains(field)) return;
  const json& v = j[field];
  const bool neutral = v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_object() && v.empty()) ||
                       (v.is_array() && v.empty()) || (v.is_string() && v.get<std::string>() == "none");
  LLOCO_CHECK(neutral, source, "field '", field, "' = ", v.dump(), " is not supported");
}

std::string read_text(const fs::path& path, const char* op) {
  std::ifstream f(path, std::ios::binary);
  LLOCO_CHECK(f.good(), op, path.string(), ": cannot open");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

LoraConfig parse_peft_config(const std::string& json_text, const std::string& source, std::string* base_model) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    LLOCO_FAIL(source, "invalid JSON: ", e.what());
  }
  LLOCO_CHECK(j.is_object(), source, "the top level must be an object");
  LLOCO_CHECK(j.contains("peft_type") && j["peft_type"] == "LORA", source, "field 'peft_type' must be \"LORA\", got ",
              j.contains("peft_type") ? j["peft_type"].dump() : "nothing");
  LoraConfig c;
  c.dropout = 0.0;  // PEFT's default when lora_dropout is absent (lloco's default is LLoCO's 0.05)
  LLOCO_CHECK(j.contains("r") && j["r"].is_number_integer(), source, "field 'r' must be an integer");
  c.rank = j["r"].get<int64_t>();
  LLOCO_CHECK(j.contains("lora_alpha") && j["lora_alpha"].is_number(), source, "field 'lora_alpha' must be a number");
  c.alpha = j["lora_alpha"].get<double>();
  if (j.contains("lora_dropout") && !j["lora_dropout"].is_null()) {
    LLOCO_CHECK(j["lora_dropout"].is_number(), source, "field 'lora_dropout' must be a number");
    c.dropout = j["lora_dropout"].get<double>();
  }
  if (j.contains("use_rslora") && !j["use_rslora"].is_null()) {
    LLOCO_CHECK(j["use_rslora"].is_boolean(), source, "field 'use_rslora' must be a boolean");
    c.use_rslora = j["use_rslora"].get<bool>();
  }
  LLOCO_CHECK(j.contains("target_modules"), source, "missing field 'target_modules'");
  const json& t = j["target_modules"];
  LLOCO_CHECK(t.is_array(), source, "field 'target_modules' must be a list of module names (a regex string, ",
              t.dump(), ", is not supported)");
  c.targets.clear();
  for (const json& name : t) {
    LLOCO_CHECK(name.is_string(), source, "target_modules entry ", name.dump(), " is not a string");
    c.targets.push_back(proj_from_module_name(name.get<std::string>(), source));
  }
  // PEFT lists targets in set order; keep lloco's projection order so saved files are stable.
  std::sort(c.targets.begin(), c.targets.end());
  for (const char* field : {"use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern", "modules_to_save",
                            "layers_to_transform", "layers_pattern", "layer_replication", "bias"})
    require_neutral(j, field, source);
  if (base_model) {
    const bool has = j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string();
    *base_model = has ? j["base_model_name_or_path"].get<std::string>() : "";
  }
  c.validate(source);
  return c;
}

std::string peft_config_json(const LoraConfig& c, const std::string& base_model) {
  json targets = json::array();
  for (models::Proj p : c.targets) targets.push_back(proj_module_name(p));
  json j = {{"peft_type", "LORA"},
            {"task_type", "CAUSAL_LM"},
            {"base_model_name_or_path", base_model.empty() ? json(nullptr) : json(base_model)},
            {"r", c.rank},
            {"lora_alpha", c.alpha},
            {"lora_dropout", c.dropout},
            {"target_modules", targets},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"use_rslora", c.use_rslora},
            {"use_dora", false},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"modules_to_save", nullptr},
            {"layers_to_transform", nullptr},
            {"layers_pattern", nullptr},
            {"rank_pattern", json::object()},
            {"alpha_pattern", json::object()}};
  return j.dump(2) + "\n";
}

PeftAdapter read_peft_adapter(const std::string& dir) {
  const char* op = "read_peft_adapter";
  const fs::path config_path = fs::path(dir) / kConfigFile, weights_path = fs::path(dir) / kWeightsFile;
  LLOCO_CHECK(fs::exists(config_path), op, dir, ": no ", kConfigFile);
  LLOCO_CHECK(fs::exists(weights_path), op, dir, ": no ", kWeightsFile,
              " (PEFT's legacy adapter_model.bin pickles are not read)");
  PeftAdapter a;
  a.config = parse_peft_config(read_text(config_path, op), config_path.string(), &a.base_model);
  a.weights = load_safetensors(weights_path.string()).items();
  return a;
}

LoraAdapters load_peft_adapters(const models::LlamaConfig& model, const std::vector<std::string>& dirs, DType dtype,
                                Device device) {
  const char* op = "load_peft_adapters";
  LLOCO_CHECK(!dirs.empty(), op, "no adapter directories");
  std::vector<PeftAdapter> read;
  for (const std::string& d : dirs) read.push_back(read_peft_adapter(d));
  const LoraConfig& c0 = read[0].config;
  for (size_t i = 1; i < read.size(); ++i) {
    const LoraConfig& c = read[i].config;
    const std::string src = dirs[i] + " vs " + dirs[0];
    LLOCO_CHECK(c.rank == c0.rank, op, src, ": r ", c.rank, " vs ", c0.rank, " (stacked adapters share one rank)");
    LLOCO_CHECK(c.scale() == c0.scale(), op, src, ": scale ", c.scale(), " vs ", c0.scale());
    LLOCO_CHECK(c.targets == c0.targets, op, src, ": different target_modules");
    LLOCO_CHECK(c.dropout == c0.dropout, op, src, ": lora_dropout ", c.dropout, " vs ", c0.dropout);
  }
  LoraAdapters out = LoraAdapters::zeros(model, c0, static_cast<int64_t>(dirs.size()), dtype, device);
  for (size_t i = 0; i < read.size(); ++i) {
    const std::string file = (fs::path(dirs[i]) / kWeightsFile).string();
    std::map<std::string, Tensor> by_name(read[i].weights.begin(), read[i].weights.end());
    for (int64_t l = 0; l < model.num_layers; ++l)
      for (models::Proj p : c0.targets) {
        const std::string an = peft_weight_name(l, p, false), bn = peft_weight_name(l, p, true);
        for (const std::string& n : {an, bn})
          LLOCO_CHECK(by_name.count(n), op, file, ": missing tensor '", n, "'");
        out.set(static_cast<int64_t>(i), l, p, by_name[an], by_name[bn], op + std::string(": ") + file);
        by_name.erase(an);
        by_name.erase(bn);
      }
    LLOCO_CHECK(by_name.empty(), op, file, ": unexpected tensor '", by_name.empty() ? "" : by_name.begin()->first,
                "' (not a lora_A/lora_B weight of a targeted projection of this ", model.num_layers, "-layer model)");
  }
  return out;
}

void save_peft_adapter(const LoraAdapters& adapters, int64_t adapter, const std::string& dir,
                       const std::string& base_model) {
  fs::create_directories(dir);
  save_safetensors((fs::path(dir) / kWeightsFile).string(), adapters.named_weights(adapter), {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / kConfigFile).string(), peft_config_json(adapters.config(), base_model));
}

}  // namespace lloco::lora
