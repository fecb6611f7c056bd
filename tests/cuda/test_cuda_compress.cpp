// The AutoCompressor encoder on the CUDA backend against the reference summary vectors of
// tests/fixtures/compress (the same checks as tests/compress on the CPU), in f32 and bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "compress/autocompressor.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "tests/cuda/cuda_test_util.h"

using namespace lloco;

namespace {

const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";
const std::string kExpected = std::string(LLOCO_FIXTURES_DIR) + "/compress/expected.safetensors";

using CudaCompress = cuda_test::CudaTest;

std::vector<int32_t> ids_of(const Tensor& t) {
  const std::vector<int64_t> v = t.to_vector<int64_t>();
  return std::vector<int32_t>(v.begin(), v.end());
}

}  // namespace

TEST_F(CudaCompress, SummaryVectorsMatchTheReference) {
  const compress::AutoCompressor ac = compress::AutoCompressor::load(kAcDir).to(cuda());
  const SafetensorsFile ex = load_safetensors(kExpected);
  compress::CompressOptions o;
  o.segment_length = std::stoll(ex.metadata().at("segment_length"));
  for (const char* doc : {"13", "10"}) {
    const Tensor got = ac.compress(ids_of(ex.get(std::string("doc") + doc)), o);
    EXPECT_EQ(got.device(), cuda());
    const DiffStats d = compare_tensors(got.to(lloco::cpu()), ex.get(std::string("summary") + doc));
    EXPECT_LE(d.max_abs, 1e-4 * d.max_ref) << "doc" << doc;
  }
}

TEST_F(CudaCompress, Bf16TracksTheF32Reference) {
  // bf16 bound as in test_cuda_llama.cpp (2e-2 relative norm): one rounding per weight and ~15
  // per activation through a 2-layer model, per segment.
  const compress::AutoCompressor ac = compress::AutoCompressor::load(kAcDir, {DType::BF16}).to(cuda());
  const SafetensorsFile ex = load_safetensors(kExpected);
  compress::CompressOptions o;
  o.segment_length = std::stoll(ex.metadata().at("segment_length"));
  const Tensor got = ac.compress(ids_of(ex.get("doc13")), o);
  EXPECT_EQ(got.dtype(), DType::BF16);
  const DiffStats d = compare_tensors(got.to(lloco::cpu()).to(DType::F32), ex.get("summary13"));
  EXPECT_LE(std::sqrt(d.nmse), 2e-2);
}
