// Writes a random AutoCompressor HF directory with the LLaMA-2 vocabulary (32000 tokens, hidden 16,
// one layer, 4 summary tokens) plus the LLaMA-2 tokenizer.model, so the `lloco` pipeline commands
// can run on real dataset text in seconds. The outputs mean nothing; the plumbing is what is tested.
// With `longchat`, a plain LLaMA of the same shape instead (other weights, no summary table, linear
// RoPE scaling 2 over twice the positions, as LongChat-7b-v1.5-32k): a second decoder for a run.
//   make_tiny_ac OUT_DIR TOKENIZER_MODEL [longchat]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "tests/apps/tiny_llama_vocab.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using namespace lloco;
  const bool longchat = argc == 4 && std::string(argv[3]) == "longchat";
  if (argc != 3 && !longchat) {
    std::fprintf(stderr, "usage: make_tiny_ac OUT_DIR TOKENIZER_MODEL [longchat]\n");
    return 2;
  }
  const fs::path out = argv[1];
  models::LlamaConfig c = apps_test::tiny_llama_vocab_config(8192);
  if (longchat) {
    c.rope_scaling = 2.0;
    c.max_position_embeddings = 16384;
    models::export_hf_model(models::LlamaModel::random(c, 11), out.string());
    fs::copy_file(argv[2], out / "tokenizer.model", fs::copy_options::overwrite_existing);
    std::printf("wrote %s\n", out.c_str());
    return 0;
  }
  models::export_hf_model(models::LlamaModel::random(c, 7), out.string());
  std::ifstream f(out / "config.json");
  nlohmann::json j = nlohmann::json::parse(f);
  j["summary_length"] = 4;
  j["accumulate_summary"] = true;
  write_file_atomic((out / "config.json").string(), j.dump(2) + "\n");
  const std::string weights = (out / "model.safetensors").string();
  std::vector<std::pair<std::string, Tensor>> items;
  for (const auto& [n, t] : load_safetensors(weights).items()) items.emplace_back(n, t.clone());
  items.emplace_back("embed_summary.weight", mul(randn({4, c.hidden_size}, 8), 0.02));
  save_safetensors(weights, items);
  fs::copy_file(argv[2], out / "tokenizer.model", fs::copy_options::overwrite_existing);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
