// lloco's LoRA layer against PEFT (tests/fixtures/gen_lora_fixtures.py): the tiny LLaMA of
// tests/fixtures/llama with PEFT's r = 8, alpha = 16 q/k/v/o adapter, fed LLoCO-style (summary-like
// prefix embeddings, then tokens; loss on the answer tokens only). Logits, loss, every LoRA gradient
// and the merged model must match PEFT; adapters stack and mix per sequence; PEFT directories
// round-trip and bad ones fail naming the file and the field.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "lora/adapter_training.h"
#include "lora/adapters.h"
#include "lora/peft_io.h"
#include "models/checkpoint.h"
#include "tests/lora/peft_fixture.h"

namespace lloco::lora {
namespace {

namespace fs = std::filesystem;
using models::Proj;

const std::string& kModelDir = testing::kTinyModelDir;
const std::string& kAdapterDir = testing::kTinyAdapterDir;
const std::string& kExpected = testing::kTinyExpected;
using testing::fixture_input;

// max |got - want| <= atol + rtol * max |want| (core's compare_tensors), reported with the name.
void expect_close(const Tensor& got, const Tensor& want, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const DiffStats d = compare_tensors(got, want);
  EXPECT_LE(d.max_abs, atol + rtol * d.max_ref) << what << ": max |diff| " << d.max_abs << " on values of scale "
                                                << d.max_ref;
}

TEST(LoraAdapters, PeftAdapterMatchesPeftLogitsLossAndGradients) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  auto adapters = std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir}));
  for (Tensor* p : adapters->parameters()) p->requires_grad_(true);
  const SafetensorsFile ex = load_safetensors(kExpected);
  attach(model, adapters, {0, 0});

  const models::ForwardOutput out = model.forward(fixture_input(ex));
  expect_close(out.logits, ex.get("logits"), 1e-5, 1e-4, "logits");
  const Tensor loss = answer_loss(out.logits, ex.get("labels"));
  expect_close(loss, ex.get("loss"), 1e-6, 1e-5, "loss");

  loss.backward();
  int checked = 0;
  for (const auto& [name, w] : adapters->named_weights(0)) {
    ASSERT_TRUE(ex.contains("grad." + name)) << name;
    // The stacked tensor's gradient, adapter 0's slice (the same layout as the view).
    const Tensor* stacked = nullptr;
    for (Tensor* p : adapters->parameters())
      if (p->data_ptr() == w.data_ptr()) stacked = p;
    ASSERT_NE(stacked, nullptr) << name;
    ASSERT_TRUE(stacked->grad().defined()) << name << " got no gradient";
    expect_close(stacked->grad().select(0, 0), ex.get("grad." + name), 1e-6, 1e-4, "grad of " + name);
    ++checked;
  }
  EXPECT_EQ(checked, 16);  // 2 layers x q/k/v/o x A/B
  for (const auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name << " is frozen";
}

TEST(LoraAdapters, MergedModelMatchesPeftMergeAndUnload) {
  const models::LlamaModel model = models::load_hf_model(kModelDir);
  const LoraAdapters adapters = load_peft_adapters(model.config, {kAdapterDir});
  const SafetensorsFile ex = load_safetensors(kExpected);
  const models::LlamaModel merged = merge(model, adapters, 0);
  EXPECT_FALSE(merged.projection_hook);
  expect_close(merged.forward(fixture_input(ex)).logits, ex.get("logits_merged"), 1e-5, 1e-4, "merged logits");
  // The base model itself is untouched (merge returns a copy).
  const Tensor base = model.forward(fixture_input(ex)).logits;
  const std::vector<float> b = base.to_vector<float>(), m = ex.get("logits_merged").to_vector<float>();
  double diff = 0;
  for (size_t i = 0; i < b.size(); ++i) diff = std::max(diff, std::abs(double(b[i]) - m[i]));
  EXPECT_GT(diff, 1e-2) << "the adapter must change the logits for this test to mean anything";
}

TEST(LoraAdapters, SequencesOfOneBatchUseTheirOwnAdapters) {
  // Adapter 0: PEFT's; adapter 1: a different random one; -1: the base model. A batch [1, -1, 0]
  // equals three single-sequence runs.
  models::LlamaModel model = models::load_hf_model(kModelDir);
  auto adapters = std::make_shared<LoraAdapters>(testing::fixture_and_random_adapter(model.config, 900));
  std::vector<int64_t> id_values;
  for (int64_t i = 0; i < 15; ++i) id_values.push_back(3 + (i * 7) % 60);
  models::ForwardInput batch;
  batch.input_ids = from_vector<int64_t>(id_values, {3, 5}, DType::I64);
  const std::vector<int64_t> assignment{1, -1, 0};
  auto binding = attach(model, adapters, assignment);
  const Tensor together = model.forward(batch).logits;
  for (int64_t r = 0; r < 3; ++r) {
    binding->sequence_adapters = {assignment[r]};
    models::ForwardInput one;
    one.input_ids = batch.input_ids.narrow(0, r, 1);
    expect_close(together.narrow(0, r, 1), model.forward(one).logits, 1e-6, 1e-5, "row " + std::to_string(r));
  }
  // -1 is exactly the base model.
  detach(model);
  models::ForwardInput row1;
  row1.input_ids = batch.input_ids.narrow(0, 1, 1);
  expect_close(together.narrow(0, 1, 1), model.forward(row1).logits, 1e-6, 1e-5, "row 1 vs base");
}

TEST(LoraAdapters, FreshPeftInitLeavesTheModelUnchanged) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  auto adapters = std::make_shared<LoraAdapters>(LoraAdapters::zeros(model.config, LoraConfig{}, 1));
  adapters->init_peft(0, 5);
  for (const auto& [name, w] : adapters->named_weights(0)) {
    const std::vector<float> v = w.to_vector<float>();
    if (name.find("lora_B") != std::string::npos) {
      for (float x : v) ASSERT_EQ(x, 0.0f) << name;
      continue;
    }
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.size(1)));
    double lo = 1, hi = -1;
    for (float x : v) {
      lo = std::min(lo, double(x));
      hi = std::max(hi, double(x));
    }
    EXPECT_GE(lo, -bound) << name;
    EXPECT_LE(hi, bound) << name;
    EXPECT_GT(hi - lo, bound) << name << ": 256 uniform draws should spread over the interval";
  }
  const SafetensorsFile ex = load_safetensors(kExpected);
  const Tensor base = model.forward(fixture_input(ex)).logits;
  attach(model, adapters, {0, 0});
  expect_close(model.forward(fixture_input(ex)).logits, base, 0, 0, "zero-B adapter");
}

TEST(LoraAdapters, SavedDirectoryRoundTripsAndMatchesPeftLayout) {
  const models::LlamaConfig cfg = models::LlamaConfig::from_json_file(kModelDir + "/config.json");
  const LoraAdapters a = load_peft_adapters(cfg, {kAdapterDir, kAdapterDir});
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_lora_roundtrip";
  fs::remove_all(dir);
  save_peft_adapter(a, 1, dir.string(), "tests/fixtures/llama/tiny");
  // Same tensor names as PEFT's file, same values back.
  const SafetensorsFile ours = load_safetensors((dir / "adapter_model.safetensors").string());
  const SafetensorsFile peft = load_safetensors(kAdapterDir + "/adapter_model.safetensors");
  EXPECT_EQ(std::set<std::string>(ours.names().begin(), ours.names().end()),
            std::set<std::string>(peft.names().begin(), peft.names().end()));
  for (const std::string& n : peft.names()) expect_close(ours.get(n), peft.get(n), 0, 0, n);
  const PeftAdapter back = read_peft_adapter(dir.string());
  EXPECT_EQ(back.config.rank, 8);
  EXPECT_EQ(back.config.alpha, 16.0);
  EXPECT_EQ(back.config.targets, (std::vector<Proj>{Proj::Q, Proj::K, Proj::V, Proj::O}));
  EXPECT_EQ(back.base_model, "tests/fixtures/llama/tiny");
  fs::remove_all(dir);
}

// Copies the fixture adapter into a temp dir, lets `edit` change it, and expects loading to throw
// with every string of `needles` in the message.
void expect_load_error(const std::string& tag, const std::function<void(const fs::path&)>& edit,
                       const std::vector<std::string>& needles) {
  SCOPED_TRACE(tag);
  const fs::path dir = fs::path(::testing::TempDir()) / ("lloco_lora_bad_" + tag);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    fs::copy_file(fs::path(kAdapterDir) / f, dir / f);
  edit(dir);
  const models::LlamaConfig cfg = models::LlamaConfig::from_json_file(kModelDir + "/config.json");
  try {
    load_peft_adapters(cfg, {dir.string()});
    ADD_FAILURE() << "loading succeeded";
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "message lacks '" << n << "': " << e.what();
  }
  fs::remove_all(dir);
}

void replace_in_config(const fs::path& dir, const std::string& from, const std::string& to) {
  const fs::path p = dir / "adapter_config.json";
  std::ifstream f(p);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  write_file_atomic(p.string(), s);
}

// Rewrites the weights file through `change` (name -> tensor map).
void rewrite_weights(const fs::path& dir,
                     const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& change) {
  const std::string p = (dir / "adapter_model.safetensors").string();
  std::vector<std::pair<std::string, Tensor>> items;
  for (const auto& [n, t] : load_safetensors(p).items()) items.emplace_back(n, t.clone());
  change(items);
  save_safetensors(p, items);
}

TEST(LoraAdapters, BadAdapterDirectoriesFailNamingFileAndField) {
  const std::string q0a = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  expect_load_error("dora", [](const fs::path& d) { replace_in_config(d, "\"use_dora\": false", "\"use_dora\": true"); },
                    {"adapter_config.json", "use_dora"});
  expect_load_error("regex", [](const fs::path& d) {
    replace_in_config(d, "\"target_modules\": [", "\"target_modules\": \".*proj\", \"unused\": [");
  }, {"adapter_config.json", "target_modules", "regex"});
  expect_load_error("module", [](const fs::path& d) { replace_in_config(d, "\"o_proj\"", "\"lm_head\""); },
                    {"adapter_config.json", "lm_head"});
  expect_load_error("json", [](const fs::path& d) { replace_in_config(d, "\"r\": 8,", "\"r\": 8"); },
                    {"adapter_config.json", "invalid JSON"});
  expect_load_error("rank", [](const fs::path& d) { replace_in_config(d, "\"r\": 8,", "\"r\": 4,"); },
                    {"adapter_model.safetensors", "lora_A.weight", "[8, 32]", "expected [4, 32]"});
  expect_load_error("missing", [&](const fs::path& d) {
    rewrite_weights(d, [&](auto& items) { std::erase_if(items, [&](const auto& it) { return it.first == q0a; }); });
  }, {"adapter_model.safetensors", "missing tensor", q0a});
  expect_load_error("extra", [](const fs::path& d) {
    rewrite_weights(d, [](auto& items) {
      items.emplace_back("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", zeros({8, 32}));
    });
  }, {"adapter_model.safetensors", "unexpected tensor", "layers.2"});
  expect_load_error("truncated", [](const fs::path& d) {
    fs::resize_file(d / "adapter_model.safetensors", 100);
  }, {"adapter_model.safetensors"});
}

TEST(LoraAdapters, AttachChecksTheBatchAgainstTheAssignment) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  auto adapters = std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir}));
  attach(model, adapters, {0});
  models::ForwardInput in;
  in.input_ids = from_vector<int64_t>({5, 6, 7, 8}, {2, 2}, DType::I64);
  try {
    model.forward(in);
    ADD_FAILURE() << "a 2-sequence batch with 1 adapter assignment ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the batch has 2 sequences but sequence_adapters has 1"), std::string::npos)
        << e.what();
  }
  auto binding = attach(model, adapters, {0, 3});
  EXPECT_THROW(model.forward(in), Error);  // adapter 3 of 1
  models::LlamaConfig wider = model.config;
  wider.hidden_size = 64;
  wider.num_heads = 8;
  auto mismatched = std::make_shared<LoraAdapters>(LoraAdapters::zeros(wider, LoraConfig{}, 1));
  EXPECT_THROW(attach(model, mismatched), Error);
}

}  // namespace
}  // namespace lloco::lora
