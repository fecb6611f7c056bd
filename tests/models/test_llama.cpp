// LLaMA model: config parsing, HF parity against transformers fixtures (ids, inputs_embeds with a
// prefix), sharded/cast loading, loader errors, HF export round trip, llama2.c formats, checkpointing.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "models/llama.h"
#include "tests/models/hf_fixture.h"

namespace fs = std::filesystem;
using namespace lloco;
using namespace lloco::models;
using namespace lloco::models::testing;

namespace {

const std::string kStories = std::string(LLOCO_SHARED_DATA_DIR) + "/models/stories260K/stories260K.bin";

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("lloco_test_llama_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  return compare_tensors(a, b).max_abs;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

void expect_same_params(const LlamaModel& a, const LlamaModel& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    EXPECT_TRUE(bitwise_equal(pa[i].second, pb[i].second)) << pa[i].first;
  }
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

}  // namespace

TEST(LlamaConfig, ParsesHfConfig) {
  const LlamaConfig c = LlamaConfig::from_json_file(kTinyModelDir + "/config.json");
  EXPECT_EQ(c.vocab_size, 64);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim(), 8);
  EXPECT_DOUBLE_EQ(c.rope_scaling, 2.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, DType::F32);
  const LlamaConfig back = LlamaConfig::from_json_text(c.to_json_text(), "round trip");
  EXPECT_EQ(back.to_json_text(), c.to_json_text());
}

TEST(LlamaConfig, PresetsMatchLlama2_7b) {
  const LlamaConfig c = LlamaConfig::autocompressor_llama2_7b_6k();
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  // 6.74B parameters, computed from the shape alone.
  const int64_t D = c.hidden_size, F = c.intermediate_size;
  EXPECT_EQ(2 * c.vocab_size * D + c.num_layers * (4 * D * D + 3 * D * F + 2 * D) + D, 6738415616);
}

TEST(LlamaConfig, ErrorsNameFileAndField) {
  const std::string missing = error_of([] { LlamaConfig::from_json_text(R"({"hidden_size": 8})", "cfg.json"); });
  EXPECT_NE(missing.find("cfg.json"), std::string::npos) << missing;
  EXPECT_NE(missing.find("vocab_size"), std::string::npos) << missing;
  const std::string base =
      R"("vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2)";
  const std::string rope = error_of(
      [&] { LlamaConfig::from_json_text("{" + base + R"(, "rope_scaling": {"type": "yarn", "factor": 2}})", "c2.json"); });
  EXPECT_NE(rope.find("rope_scaling.type"), std::string::npos) << rope;
  EXPECT_NE(rope.find("yarn"), std::string::npos) << rope;
  const std::string gqa =
      error_of([&] { LlamaConfig::from_json_text("{" + base + R"(, "num_key_value_heads": 3})", "c3.json"); });
  EXPECT_NE(gqa.find("num_key_value_heads 3"), std::string::npos) << gqa;
  const std::string type =
      error_of([&] { LlamaConfig::from_json_text("{" + base + R"(, "rope_theta": "big"})", "c4.json"); });
  EXPECT_NE(type.find("rope_theta"), std::string::npos) << type;
}

TEST(LlamaHfParity, LogitsAndHiddenFromIds) {
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  ForwardInput in;
  in.input_ids = ex.get("ids");
  in.output_hidden = true;
  const ForwardOutput out = m.forward(in);
  const double dl = max_abs_diff(out.logits, ex.get("logits_ids"));
  const double dh = max_abs_diff(out.hidden, ex.get("hidden_ids"));
  EXPECT_LT(dl, 1e-4);
  EXPECT_LT(dh, 1e-4);
  std::printf("parity ids: max|dlogits| %.3g  max|dhidden| %.3g\n", dl, dh);
}

TEST(LlamaHfParity, PrefixEmbeddingsAndInputsEmbeds) {
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  ForwardInput in;
  in.prefix_embeddings = ex.get("prefix");  // [2, 3, 32]
  in.input_ids = ex.get("ids");             // [2, 7]
  in.output_hidden = true;
  const ForwardOutput out = m.forward(in);
  const double dl = max_abs_diff(out.logits, ex.get("logits_embeds"));
  const double dh = max_abs_diff(out.hidden, ex.get("hidden_embeds"));
  EXPECT_LT(dl, 1e-4);
  EXPECT_LT(dh, 1e-4);
  std::printf("parity prefix+ids: max|dlogits| %.3g  max|dhidden| %.3g\n", dl, dh);
  ForwardInput emb;  // the same sequence given entirely as inputs_embeds
  emb.inputs_embeds = concat({ex.get("prefix"), m.embed(ex.get("ids"))}, 1);
  EXPECT_LT(max_abs_diff(m.forward(emb).logits, ex.get("logits_embeds")), 1e-4);
}

TEST(LlamaCheckpoint, ShardedLoadEqualsSingleFile) {
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const fs::path dir = temp_dir("sharded");
  fs::copy_file(kTinyModelDir + "/config.json", dir / "config.json");
  const auto params = m.named_parameters();
  nlohmann::json index;
  std::vector<std::pair<std::string, Tensor>> shard[2];
  for (size_t i = 0; i < params.size(); ++i) shard[i < params.size() / 2 ? 0 : 1].push_back(params[i]);
  for (int s = 0; s < 2; ++s) {
    const std::string name = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    save_safetensors((dir / name).string(), shard[s]);
    for (const auto& [n, t] : shard[s]) index["weight_map"][n] = name;
  }
  write_text(dir / "model.safetensors.index.json", index.dump());
  expect_same_params(load_hf_model(dir.string()), m);

  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";  // wrong shard
  write_text(dir / "model.safetensors.index.json", index.dump());
  const std::string err = error_of([&] { load_hf_model(dir.string()); });
  EXPECT_NE(err.find("model.norm.weight"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(LlamaCheckpoint, CastsOnLoadAndKeepsMmapWhenNot) {
  const LlamaModel f32 = load_hf_model(kTinyModelDir);
  // Zero copy: the parameters sit at the file's relative offsets, i.e. inside one mapping of it.
  const SafetensorsFile st = load_safetensors(kTinyModelDir + "/model.safetensors");
  auto at = [](const Tensor& t) { return static_cast<const char*>(t.data_ptr()); };
  const auto params = f32.named_parameters();
  for (const auto& [name, t] : params)
    EXPECT_EQ(at(t) - at(params[0].second), at(st.get(name)) - at(st.get(params[0].first))) << name;
  const LlamaModel bf = load_hf_model(kTinyModelDir, {DType::BF16});
  EXPECT_EQ(bf.config.dtype, DType::BF16);
  EXPECT_TRUE(bitwise_equal(bf.layers[1].up_proj, f32.layers[1].up_proj.to(DType::BF16)));
}

TEST(LlamaCheckpoint, ErrorsNameTensorAndShapes) {
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const auto good = m.named_parameters();
  auto without = good;
  without.erase(without.begin() + 3);
  std::string e = error_of([&] { model_from_tensors(m.config, without, "x.safetensors"); });
  EXPECT_NE(e.find("x.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("missing tensor 'model.layers.0.self_attn.v_proj.weight'"), std::string::npos) << e;

  auto extra = good;
  extra.emplace_back("model.layers.2.mlp.up_proj.weight", zeros({64, 32}));
  e = error_of([&] { model_from_tensors(m.config, extra, "x.safetensors"); });
  EXPECT_NE(e.find("unexpected tensors 'model.layers.2.mlp.up_proj.weight'"), std::string::npos) << e;

  auto bad_shape = good;
  bad_shape[1].second = zeros({16, 32});
  e = error_of([&] { model_from_tensors(m.config, bad_shape, "x.safetensors"); });
  EXPECT_NE(e.find("'model.layers.0.self_attn.q_proj.weight' has shape [16, 32]"), std::string::npos) << e;
  EXPECT_NE(e.find("[32, 32]"), std::string::npos) << e;

  LlamaConfig tied = m.config;
  tied.tie_word_embeddings = true;
  e = error_of([&] { model_from_tensors(tied, good, "x.safetensors"); });
  EXPECT_NE(e.find("tie_word_embeddings"), std::string::npos) << e;

  auto mixed = good;
  mixed[2].second = mixed[2].second.to(DType::F16);
  e = error_of([&] { model_from_tensors(m.config, mixed, "x.safetensors"); });
  EXPECT_NE(e.find("k_proj.weight' has dtype f16"), std::string::npos) << e;
}

TEST(LlamaCheckpoint, ExportRoundTripsBitwise) {
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const fs::path dir = temp_dir("export");
  export_hf_model(m, (dir / "out").string());
  const LlamaModel back = load_hf_model((dir / "out").string());
  expect_same_params(back, m);
  EXPECT_EQ(back.config.to_json_text(), m.config.to_json_text());
  fs::remove_all(dir);
}

TEST(LlamaCheckpoint, InterleavedModelExportsToEquivalentHfModel) {
  LlamaConfig c = LlamaConfig::tiny();
  c.rope_style = RopeStyle::Interleaved;
  c.tie_word_embeddings = true;
  const LlamaModel m = LlamaModel::random(c, 7);
  const fs::path dir = temp_dir("export_il");
  export_hf_model(m, dir.string());
  const LlamaModel hf = load_hf_model(dir.string());
  EXPECT_EQ(hf.config.rope_style, RopeStyle::HalfRotate);
  ForwardInput in;
  in.input_ids = from_vector<int64_t>({1, 5, 9, 33, 2, 60}, {1, 6}, DType::I64);
  const Tensor a = m.forward(in).logits, b = hf.forward(in).logits;
  EXPECT_LT(max_abs_diff(b, a), 1e-5);
  fs::remove_all(dir);
}

namespace {
// Writes `m` (interleaved RoPE) as a llama2.c checkpoint: version 0 (legacy) or 1 ("ak42").
void write_llama2c(const LlamaModel& m, const fs::path& path, int version) {
  const LlamaConfig& c = m.config;
  std::ofstream f(path, std::ios::binary);
  auto i32 = [&](int32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  auto put = [&](const Tensor& t) {
    const auto v = t.to_vector<float>();
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  };
  const int32_t vocab = static_cast<int32_t>(c.vocab_size);
  std::vector<int32_t> hdr = {int32_t(c.hidden_size), int32_t(c.intermediate_size), int32_t(c.num_layers),
                              int32_t(c.num_heads),   int32_t(c.num_kv_heads),      vocab,
                              int32_t(c.max_position_embeddings)};
  auto each = [&](Tensor LlamaLayer::*w) {
    for (const auto& L : m.layers) put(L.*w);
  };
  if (version == 0) {
    if (!c.tie_word_embeddings) hdr[5] = -vocab;
    for (int32_t h : hdr) i32(h);
    put(m.embed_tokens);
    each(&LlamaLayer::input_norm);
    each(&LlamaLayer::q_proj);
    each(&LlamaLayer::k_proj);
    each(&LlamaLayer::v_proj);
    each(&LlamaLayer::o_proj);
    each(&LlamaLayer::post_norm);
    each(&LlamaLayer::gate_proj);
    each(&LlamaLayer::down_proj);
    each(&LlamaLayer::up_proj);
    put(m.norm);
    put(zeros({c.max_position_embeddings * c.head_dim()}));  // freq_cis tables (ignored by the loader)
  } else {
    i32(0x616b3432);
    i32(1);
    for (int32_t h : hdr) i32(h);
    const char shared = c.tie_word_embeddings ? 1 : 0;
    f.write(&shared, 1);
    const std::string pad(256 - 37, '\0');
    f.write(pad.data(), static_cast<std::streamsize>(pad.size()));
    each(&LlamaLayer::input_norm);
    each(&LlamaLayer::post_norm);
    put(m.norm);
    put(m.embed_tokens);
    each(&LlamaLayer::q_proj);
    each(&LlamaLayer::k_proj);
    each(&LlamaLayer::v_proj);
    each(&LlamaLayer::o_proj);
    each(&LlamaLayer::gate_proj);
    each(&LlamaLayer::down_proj);
    each(&LlamaLayer::up_proj);
  }
  if (!c.tie_word_embeddings) put(m.lm_head);
}
}  // namespace

TEST(LlamaLlama2c, LoadsStories260KHeader) {
  const LlamaModel m = load_llama2c_model(kStories);
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.intermediate_size, 172);
  EXPECT_EQ(m.config.num_layers, 5);
  EXPECT_EQ(m.config.num_heads, 8);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.rope_style, RopeStyle::Interleaved);
  EXPECT_EQ(m.num_parameters(), 264128 - 512 * 8);  // all floats minus the RoPE tables
}

TEST(LlamaLlama2c, LegacyUntiedAndVersion1RoundTrip) {
  for (const bool tied : {false, true}) {
    LlamaConfig c = LlamaConfig::tiny();
    c.rope_style = RopeStyle::Interleaved;
    c.tie_word_embeddings = tied;
    const LlamaModel m = LlamaModel::random(c, tied ? 3 : 4);
    const fs::path dir = temp_dir("l2c");
    for (int version : {0, 1}) {
      const fs::path p = dir / ("m" + std::to_string(version) + ".bin");
      write_llama2c(m, p, version);
      const LlamaModel back = load_llama2c_model(p.string());
      EXPECT_EQ(back.config.tie_word_embeddings, tied) << "version " << version;
      expect_same_params(back, m);
    }
    std::ofstream(dir / "v2.bin", std::ios::binary).write("\x32\x34\x6b\x61\x02\x00\x00\x00", 8);
    const std::string e = error_of([&] { load_llama2c_model((dir / "v2.bin").string()); });
    EXPECT_NE(e.find("version 2"), std::string::npos) << e;
    const fs::path cut = dir / "cut.bin";
    write_llama2c(m, cut, 0);
    fs::resize_file(cut, fs::file_size(cut) - 4);
    const std::string e2 = error_of([&] { load_llama2c_model(cut.string()); });
    EXPECT_NE(e2.find("cut.bin"), std::string::npos) << e2;
    EXPECT_NE(e2.find("bytes"), std::string::npos) << e2;
    fs::remove_all(dir);
  }
}

TEST(LlamaModel, GradientCheckpointingGivesSameGradients) {
  LlamaModel m = LlamaModel::random(LlamaConfig::tiny(), 11);
  for (auto& [name, slot] : m.named_parameter_slots()) slot->requires_grad_(true);
  const Tensor ids = from_vector<int64_t>({1, 4, 9, 16, 25, 36, 49, 3}, {2, 4}, DType::I64);
  const Tensor targets = from_vector<int64_t>({4, 9, 16, 25, 36, 49, 3, 1}, {8}, DType::I64);
  std::vector<std::vector<float>> grads[2];
  for (int ck = 0; ck < 2; ++ck) {
    m.gradient_checkpointing = ck == 1;
    for (auto& [name, t] : m.named_parameters()) t.zero_grad();
    ForwardInput in;
    in.input_ids = ids;
    cross_entropy(m.forward(in).logits.reshape({8, 64}), targets).backward();
    for (auto& [name, t] : m.named_parameters()) {
      ASSERT_TRUE(t.grad().defined()) << name << " checkpointing " << ck;
      grads[ck].push_back(t.grad().to_vector<float>());
    }
  }
  for (size_t i = 0; i < grads[0].size(); ++i)
    for (size_t j = 0; j < grads[0][i].size(); ++j) ASSERT_NEAR(grads[0][i][j], grads[1][i][j], 1e-6) << i;
}

TEST(LlamaModel, Bf16ForwardTracksF32) {
  const LlamaModel f32 = load_hf_model(kTinyModelDir);
  const LlamaModel bf = load_hf_model(kTinyModelDir, {DType::BF16});
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  ForwardInput in;
  in.input_ids = ex.get("ids");
  in.prefix_embeddings = ex.get("prefix");  // f32 prefix, cast to the model dtype
  const Tensor lb = bf.forward(in).logits;
  EXPECT_EQ(lb.dtype(), DType::BF16);
  const DiffStats d = compare_tensors(lb, ex.get("logits_embeds"));
  EXPECT_LT(d.max_abs, 0.05 * d.max_ref) << "max_ref " << d.max_ref;
}
