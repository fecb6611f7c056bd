// The BERT encoder on the CUDA backend: the transformers fixture of tests/models/test_bert.cpp in
// f32 (same 1e-4 bound as the CPU) and bf16, padding invariance, and a head-dim-64 model (the
// bert-base head size, which the flash varlen kernels take in bf16) against the f32 CPU forward.
//
// bf16 tolerance: each bf16 rounding has relative error <= 2^-9 (~1.1e-3 rms); a 2-layer encoder
// rounds every weight once and every activation ~20 times in sequence (embedding sum, LayerNorms,
// projections, attention, GELU, residuals), which add in quadrature to ~1.1e-3 * sqrt(40) ~ 7e-3
// relative norm on the hidden state; the CPU bf16 forward measures 8.1e-3 on the fixture. The bound
// 3e-2 leaves ~3x for another summation order, while one padded key left visible moves the f32
// output by > 1e-1 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "cuda/attention_dispatch.h"
#include "models/bert.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/models/bert_fixture.h"

using namespace lloco;
using namespace lloco::models;
using namespace lloco::models::testing;

namespace {

constexpr double kF32Tol = 1e-4;       // the CPU parity bound of test_bert.cpp
constexpr double kBf16RelNorm = 3e-2;  // see the file comment

using CudaBert = cuda_test::CudaTest;

double rel_norm(const Tensor& got, const Tensor& ref) {
  return std::sqrt(compare_tensors(got.to(lloco::cpu()).to(DType::F32), ref.to(lloco::cpu()).to(DType::F32)).nmse);
}

double max_abs(const Tensor& got, const Tensor& ref) {
  return compare_tensors(got.to(lloco::cpu()).to(DType::F32), ref.to(lloco::cpu()).to(DType::F32)).max_abs;
}

// Right-padded random batch: ids [B, T] i64 (pad 0), mask [B, T] i64.
std::pair<Tensor, Tensor> random_batch(const std::vector<int64_t>& lengths, int64_t vocab, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(lengths.size());
  const int64_t T = *std::max_element(lengths.begin(), lengths.end());
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(B * T, 0), mask(B * T, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < lengths[b]; ++t) {
      ids[b * T + t] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab - 1));
      mask[b * T + t] = 1;
    }
  return {from_vector<int64_t>(ids, {B, T}, DType::I64), from_vector<int64_t>(mask, {B, T}, DType::I64)};
}

// Random BERT weights (N(0, 0.05) matrices, LayerNorm weights near 1, small biases) on the CPU in f32.
BertModel random_bert(const BertConfig& c, uint64_t seed) {
  BertModel m;
  m.config = c;
  uint64_t stream = 0;
  for (BertParamSlot& s : m.parameter_slots()) {
    const Tensor r = randn(s.shape, seed, DType::F32, lloco::cpu(), (stream++) << 40);
    const bool norm_weight = s.name.find("LayerNorm.weight") != std::string::npos;
    *s.tensor = norm_weight ? add(mul(r, 0.1), 1.0) : mul(r, s.shape.size() == 1 ? 0.1 : 0.05);
  }
  return m;
}

}  // namespace

TEST_F(CudaBert, F32HiddenAndPoolingMatchTransformers) {
  const BertModel m = BertModel::load(kBertTinyDir, cuda());
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const Tensor ids = ex.get("ids").to(cuda()), mask = ex.get("attention_mask").to(cuda());
  const Tensor hidden = m.forward(ids, mask);
  ASSERT_TRUE(hidden.device() == cuda()) << hidden.device().str();
  const HiddenDiff d = hidden_diff(hidden, ex.get("last_hidden_state"), ex.get("attention_mask"));
  EXPECT_LT(d.valid_max_abs, kF32Tol);
  EXPECT_EQ(d.padded_max_abs, 0.0);  // padded positions are never computed (see test_bert.cpp)
  const double dm = max_abs(mean_pool(hidden, mask), ex.get("mean_pooled"));
  const double dc = max_abs(cls_pool(hidden), ex.get("cls_pooled"));
  EXPECT_LT(dm, kF32Tol);
  EXPECT_LT(dc, kF32Tol);
  std::printf("cuda bert f32 parity: hidden %.3g (max|ref| %.3g), mean-pooled %.3g, cls %.3g\n", d.valid_max_abs,
              d.valid_max_ref, dm, dc);
}

TEST_F(CudaBert, F32FurtherPaddingDoesNotChangeEmbeddings) {
  const BertModel m = BertModel::load(kBertTinyDir, cuda());
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const Tensor ids = ex.get("ids"), mask = ex.get("attention_mask");
  const int64_t B = ids.size(0), extra = 9;
  const Tensor ids2 = concat({ids, full({B, extra}, 7, DType::I64)}, 1);
  const Tensor mask2 = concat({mask, zeros({B, extra}, DType::I64)}, 1);
  const Tensor a = m.embed(ids.to(cuda()), mask.to(cuda())), b = m.embed(ids2.to(cuda()), mask2.to(cuda()));
  EXPECT_LT(max_abs(b, a), 1e-6);
  EXPECT_LT(max_abs(b, ex.get("mean_pooled")), kF32Tol);
}

TEST_F(CudaBert, Bf16TracksTransformers) {
  const SafetensorsFile ex = load_safetensors(kBertExpected);
  const Tensor ids = ex.get("ids"), mask = ex.get("attention_mask");
  const BertModel gpu = BertModel::load(kBertTinyDir, cuda(), DType::BF16);
  const BertModel cpu_bf = BertModel::load(kBertTinyDir, lloco::cpu(), DType::BF16);
  const Tensor hidden = gpu.forward(ids.to(cuda()), mask.to(cuda()));
  EXPECT_EQ(hidden.dtype(), DType::BF16);
  const HiddenDiff d = hidden_diff(hidden, ex.get("last_hidden_state"), mask);
  const HiddenDiff c = hidden_diff(cpu_bf.forward(ids, mask), ex.get("last_hidden_state"), mask);
  const double pooled = rel_norm(mean_pool(hidden, mask.to(cuda())), ex.get("mean_pooled"));
  EXPECT_LT(d.valid_rel_norm, kBf16RelNorm);
  EXPECT_LT(pooled, kBf16RelNorm);
  EXPECT_EQ(d.padded_max_abs, 0.0);
  std::printf("cuda bert bf16 vs reference: hidden rel-norm %.3g (cpu bf16 %.3g), mean-pooled rel-norm %.3g\n",
              d.valid_rel_norm, c.valid_rel_norm, pooled);
}

// Head dim 64 (bert-base's) with sequences of 70, 33 and 1 tokens: bf16 attention_varlen runs on the
// flash kernels (bf16, no mask, head dim 64), f32 on the reference kernel; both against the f32 CPU.
TEST_F(CudaBert, HeadDim64TracksF32Cpu) {
  BertConfig c;
  c.vocab_size = 97;
  c.hidden_size = 128;
  c.num_layers = 2;
  c.num_heads = 2;
  c.intermediate_size = 256;
  c.max_position_embeddings = 80;
  const BertModel f32_cpu = random_bert(c, 17);
  const auto [ids, mask] = random_batch({70, 33, 1}, c.vocab_size, 3);
  const Tensor probe = empty({104, c.num_heads, c.head_dim()}, DType::BF16, cuda());  // packed q/k of this batch
  EXPECT_STREQ(attention_varlen_path(to_ref(probe), to_ref(probe), false), "flash");
  NoGradGuard no_grad;
  const Tensor ref = f32_cpu.forward(ids, mask);
  const auto params = f32_cpu.named_parameters();
  const BertModel f32_gpu = bert_from_tensors(c, params, "random", cuda(), DType::F32);
  const BertModel bf_gpu = bert_from_tensors(c, params, "random", cuda(), DType::BF16);
  const HiddenDiff f = hidden_diff(f32_gpu.forward(ids.to(cuda()), mask.to(cuda())), ref, mask);
  const HiddenDiff b = hidden_diff(bf_gpu.forward(ids.to(cuda()), mask.to(cuda())), ref, mask);
  EXPECT_LT(f.valid_max_abs, kF32Tol);
  EXPECT_LT(b.valid_rel_norm, kBf16RelNorm);
  EXPECT_EQ(f.padded_max_abs, 0.0);
  EXPECT_EQ(b.padded_max_abs, 0.0);
  std::printf("hd64 bert vs f32 cpu: cuda f32 max|d| %.3g (max|ref| %.3g), cuda bf16 rel-norm %.3g\n", f.valid_max_abs,
              f.valid_max_ref, b.valid_rel_norm);
}
