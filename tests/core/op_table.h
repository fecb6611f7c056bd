// The op table: one entry per op (or op variant), shared by every backend's test. Each case says
// how to build its inputs and how to run it; the tests decide devices, dtypes and views.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"

namespace lloco::testing {

enum class InputKind {
  Normal,    // randn
  Positive,  // uniform in [0.5, 2] (log, sqrt, pow, divisors)
  Index,     // integer in [0, range), i64
  Mask,      // 0/1 in the case's float dtype, no gradient
};

struct InputSpec {
  Shape shape;
  InputKind kind = InputKind::Normal;
  int64_t range = 0;  // Index only
  bool differentiable() const { return kind == InputKind::Normal || kind == InputKind::Positive; }
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> run;
  // Optional oracle (fused ops: their composed fallback), compared in f64 forward and backward.
  std::function<Tensor(const std::vector<Tensor>&)> reference;
  bool differentiable = true;
  bool low_precision = true;  // also run in f16 / bf16
  double tolerance_scale = 1.0;
  bool f32_output = false;  // returns f32 for f16/bf16 inputs (losses)  // widens the per-dtype tolerance for long reductions
};

const std::vector<OpCase>& op_table();
// Cases kept in their own files, appended by op_table().
void append_attention_varlen_cases(std::vector<OpCase>& table);  // op_table_attention.cpp
void append_lora_cases(std::vector<OpCase>& table);              // op_table_lora.cpp

// Inputs for a case on `device` in `dtype` (index inputs stay i64), from a fixed seed.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed);
// The same values placed in non-contiguous (strided) views.
std::vector<Tensor> strided_copies(const std::vector<Tensor>& inputs);
// Per-dtype tolerance on max |out - ref| / (1 + max |ref|).
double tolerance(DType dtype);

}  // namespace lloco::testing
