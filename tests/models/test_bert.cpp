// BERT encoder: config parsing and its errors, HF parity against the transformers fixture
// (tests/fixtures/gen_bert_fixtures.py: last hidden state, Contriever mean pooling, CLS), padding
// invariance, prefixed (BertForMaskedLM) checkpoints, loader errors, bf16 and autograd.
//
// Tolerance: the fixture is transformers' float64 forward of the stored float32 weights; our float32
// forward differs by float32 rounding only, carried through 2 layers of GEMMs over <= 128 terms, two
// LayerNorms per layer (which renormalise the error) and a softmax; observed ~1e-6 on outputs of
// scale ~4 (transformers' own float32 forward is 1e-6 off too). 1e-4 is the bound the task sets; a
// wrong formula (GELU variant, eps placement, post- vs pre-LN, a padded key left visible) errs by >= 1e-2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "models/bert.h"
#include "tests/models/bert_fixture.h"

namespace fs = std::filesystem;
using namespace lloco;
using namespace lloco::models;
using namespace lloco::models::testing;

namespace {

constexpr double kF32Tol = 1e-4;
// bf16 keeps 8 significant bits (relative rounding 2^-9 ~ 2e-3 per step); ~20 roundings in sequence
// through 2 layers add in quadrature to ~1e-2 relative norm error. Observed values are printed.
constexpr double kBf16RelNorm = 3e-2;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("lloco_test_bert_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The fixture config with `field` set to `value`.
std::string config_with(const std::string& field, const nlohmann::json& value) {
  nlohmann::json j = nlohmann::json::parse(read_text(kBertTinyDir + "/config.json"));
  j[field] = value;
  return j.dump();
}

std::vector<std::pair<std::string, Tensor>> fixture_tensors() {
  return load_safetensors(kBertTinyDir + "/model.safetensors").items();
}

}  // namespace

TEST(BertConfig, ParsesHfConfig) {
  const BertConfig c = BertConfig::from_json_file(kBertTinyDir + "/config.json");
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.max_position_embeddings, 64);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  EXPECT_EQ(c.pad_token_id, 0);
}

TEST(BertConfig, RejectsUnsupportedSettingsNamingFieldAndValue) {
  auto err = [](const std::string& field, const nlohmann::json& value) {
    return error_of([&] { BertConfig::from_json_text(config_with(field, value), "cfg.json"); });
  };
  std::string e = err("hidden_act", "gelu_new");
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'hidden_act' is \"gelu_new\", only \"gelu\""), std::string::npos) << e;
  e = err("position_embedding_type", "relative_key");
  EXPECT_NE(e.find("'position_embedding_type' is \"relative_key\", only \"absolute\""), std::string::npos) << e;
  e = err("model_type", "roberta");
  EXPECT_NE(e.find("'model_type' is \"roberta\", only \"bert\""), std::string::npos) << e;
  e = err("is_decoder", true);
  EXPECT_NE(e.find("'is_decoder' is true"), std::string::npos) << e;
  e = err("num_attention_heads", 5);
  EXPECT_NE(e.find("hidden_size 64 is not divisible by num_attention_heads 5"), std::string::npos) << e;
  e = err("hidden_size", "wide");
  EXPECT_NE(e.find("field 'hidden_size' has the wrong type (\"wide\")"), std::string::npos) << e;
  nlohmann::json j = nlohmann::json::parse(read_text(kBertTinyDir + "/config.json"));
  j.erase("vocab_size");
  e = error_of([&] { BertConfig::from_json_text(j.dump(), "cfg.json"); });
  EXPECT_NE(e.find("cfg.json: missing field 'vocab_size'"), std::string::npos) << e;
}

TEST(BertModel, LastHiddenStateAndPoolingMatchTransformers) {
  const BertModel m = BertModel::load(kBertTinyDir);
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const Tensor ids = ex.get("ids"), mask = ex.get("attention_mask");
  const Tensor hidden = m.forward(ids, mask);
  ASSERT_EQ(shape_str(hidden.shape()), shape_str(ex.get("last_hidden_state").shape()));
  const HiddenDiff d = hidden_diff(hidden, ex.get("last_hidden_state"), mask);
  EXPECT_LT(d.valid_max_abs, kF32Tol);
  // Padded positions: HF computes values there (queries attend to the valid keys) that nobody reads;
  // the packed forward never computes them and returns exact zeros.
  EXPECT_EQ(d.padded_max_abs, 0.0);
  const double dm = compare_tensors(mean_pool(hidden, mask), ex.get("mean_pooled")).max_abs;
  const double dc = compare_tensors(cls_pool(hidden), ex.get("cls_pooled")).max_abs;
  EXPECT_LT(dm, kF32Tol);
  EXPECT_LT(dc, kF32Tol);
  const double de = compare_tensors(m.embed(ids, mask), ex.get("mean_pooled")).max_abs;
  EXPECT_LT(de, kF32Tol);
  std::printf("bert f32 parity: hidden %.3g (max|ref| %.3g), mean-pooled %.3g, cls %.3g, embed %.3g\n",
              d.valid_max_abs, d.valid_max_ref, dm, dc, de);
  // i32 ids give the same result.
  EXPECT_EQ(compare_tensors(m.forward(ids.to(DType::I32), mask), hidden).max_abs, 0.0);
}

TEST(BertModel, FurtherPaddingDoesNotChangeEmbeddings) {
  const BertModel m = BertModel::load(kBertTinyDir);
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const Tensor ids = ex.get("ids"), mask = ex.get("attention_mask");
  const int64_t B = ids.size(0), T = ids.size(1), extra = 9;
  // Pad 9 more columns, with arbitrary (non-pad) ids under a zero mask: nothing may read them.
  const Tensor junk = add(mul(rand({B, extra}, 5, DType::F64), 200.0), 1.0).to(DType::I64);
  const Tensor ids2 = concat({ids, junk}, 1), mask2 = concat({mask, zeros({B, extra}, DType::I64)}, 1);
  const Tensor base = m.forward(ids, mask), wide = m.forward(ids2, mask2);
  EXPECT_LT(compare_tensors(wide.narrow(1, 0, T), base).max_abs, 1e-6);
  EXPECT_EQ(compare_tensors(wide.narrow(1, T, extra), zeros({B, extra, m.config.hidden_size})).max_abs, 0.0);
  EXPECT_LT(compare_tensors(m.embed(ids2, mask2), ex.get("mean_pooled")).max_abs, kF32Tol);
  // Each sequence alone, unpadded, embeds as it does inside the padded batch.
  const Tensor batch = m.embed(ids, mask);
  const std::vector<int64_t> lengths = sum(mask, {1}).to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const Tensor alone = m.embed(ids.narrow(0, b, 1).narrow(1, 0, lengths[b]));
    EXPECT_LT(compare_tensors(alone, batch.narrow(0, b, 1)).max_abs, 1e-6) << "row " << b;
  }
}

TEST(BertModel, LoadsPrefixedMaskedLmCheckpoints) {
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const BertConfig cfg = BertConfig::from_json_file(kBertTinyDir + "/config.json");
  // BertForMaskedLM names: "bert." on the encoder, an MLM head under cls.*, TF-era gamma/beta norms.
  std::vector<std::pair<std::string, Tensor>> renamed;
  for (const auto& [name, t] : fixture_tensors()) {
    std::string n = "bert." + name;
    if (n == "bert.embeddings.LayerNorm.weight") n = "bert.embeddings.LayerNorm.gamma";
    if (n == "bert.embeddings.LayerNorm.bias") n = "bert.embeddings.LayerNorm.beta";
    renamed.emplace_back(n, t);
  }
  renamed.emplace_back("cls.predictions.bias", zeros({cfg.vocab_size}));
  renamed.emplace_back("cls.predictions.transform.dense.weight", zeros({64, 64}));
  renamed.emplace_back("bert.embeddings.position_ids", arange(0, 64).unsqueeze(0));
  const BertModel plain = BertModel::load(kBertTinyDir);
  const BertModel prefixed = bert_from_tensors(cfg, renamed, "mlm.safetensors");
  const Tensor ids = ex.get("ids"), mask = ex.get("attention_mask");
  EXPECT_EQ(compare_tensors(prefixed.forward(ids, mask), plain.forward(ids, mask)).max_abs, 0.0);
}

TEST(BertModel, LoaderErrorsNameTheTensor) {
  const BertConfig cfg = BertConfig::from_json_file(kBertTinyDir + "/config.json");
  const std::string q = "encoder.layer.1.attention.self.query.weight";
  auto without = [&](const std::string& drop) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& [name, t] : fixture_tensors())
      if (name != drop) out.emplace_back(name, t);
    return out;
  };
  std::string e = error_of([&] { bert_from_tensors(cfg, without(q), "m.safetensors"); });
  EXPECT_NE(e.find("m.safetensors: missing tensor '" + q + "'"), std::string::npos) << e;

  auto wrong_shape = without(q);
  wrong_shape.emplace_back(q, zeros({64, 32}));
  e = error_of([&] { bert_from_tensors(cfg, wrong_shape, "m.safetensors"); });
  EXPECT_NE(e.find("tensor '" + q + "' has shape [64, 32] but the config implies [64, 64]"), std::string::npos) << e;

  auto extra = fixture_tensors();
  extra.emplace_back("encoder.layer.2.output.dense.bias", zeros({64}));
  e = error_of([&] { bert_from_tensors(cfg, extra, "m.safetensors"); });
  EXPECT_NE(e.find("unexpected tensors 'encoder.layer.2.output.dense.bias' (config: 2 layers)"), std::string::npos)
      << e;

  auto twice = fixture_tensors();
  twice.emplace_back("bert." + q, zeros({64, 64}));
  e = error_of([&] { bert_from_tensors(cfg, twice, "m.safetensors"); });
  EXPECT_NE(e.find("tensors '" + q + "' and 'bert." + q + "' are both"), std::string::npos) << e;
}

TEST(BertModel, LoadRejectsUnsupportedActivationNamingTheFile) {
  const fs::path dir = temp_dir("gelu_new");
  fs::copy_file(kBertTinyDir + "/model.safetensors", dir / "model.safetensors");
  std::ofstream(dir / "config.json") << config_with("hidden_act", "gelu_new");
  const std::string e = error_of([&] { BertModel::load(dir.string()); });
  EXPECT_NE(e.find((dir / "config.json").string() + ": field 'hidden_act' is \"gelu_new\""), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(BertModel, ForwardRejectsBadInputs) {
  const BertModel m = BertModel::load(kBertTinyDir);
  const Tensor ids = zeros({2, 3}, DType::I64);
  std::string e = error_of([&] { m.forward(ids, zeros({2, 4}, DType::I64)); });
  EXPECT_NE(e.find("attention_mask i64[2, 4]"), std::string::npos) << e;
  e = error_of([&] { m.forward(ids, from_vector<int64_t>({1, 1, 1, 0, 0, 0}, {2, 3}, DType::I64)); });
  EXPECT_NE(e.find("row 1 of attention_mask has no token"), std::string::npos) << e;
  e = error_of([&] { m.forward(from_vector<int64_t>({1, 256}, {1, 2}, DType::I64)); });
  EXPECT_NE(e.find("ids[0, 1] = 256 is outside the vocabulary [0, 256)"), std::string::npos) << e;
  e = error_of([&] { m.forward(zeros({1, 65}, DType::I64)); });
  EXPECT_NE(e.find("sequence length 65 exceeds max_position_embeddings 64"), std::string::npos) << e;
}

TEST(BertModel, Bf16TracksF32) {
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const BertModel m = BertModel::load(kBertTinyDir, lloco::cpu(), DType::BF16);
  const Tensor mask = ex.get("attention_mask");
  const Tensor hidden = m.forward(ex.get("ids"), mask);
  EXPECT_EQ(hidden.dtype(), DType::BF16);
  const HiddenDiff d = hidden_diff(hidden, ex.get("last_hidden_state"), mask);
  const DiffStats p = compare_tensors(mean_pool(hidden, mask).to(DType::F32), ex.get("mean_pooled"));
  EXPECT_LT(d.valid_rel_norm, kBf16RelNorm);
  EXPECT_LT(std::sqrt(p.nmse), kBf16RelNorm);
  std::printf("bert cpu bf16 vs reference: hidden rel-norm %.3g, mean-pooled rel-norm %.3g\n", d.valid_rel_norm,
              std::sqrt(p.nmse));
}

TEST(BertModel, GradientsReachTheParameters) {
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  BertModel m = BertModel::load(kBertTinyDir);
  m.layers[0].query_w = m.layers[0].query_w.clone().requires_grad_(true);
  m.word_embeddings = m.word_embeddings.clone().requires_grad_(true);
  sum(square(m.embed(ex.get("ids"), ex.get("attention_mask")))).backward();
  for (const Tensor* p : {&m.layers[0].query_w, &m.word_embeddings}) {
    ASSERT_TRUE(p->grad().defined());
    EXPECT_GT(compare_tensors(p->grad(), zeros_like(p->grad())).max_abs, 0.0);
  }
}
