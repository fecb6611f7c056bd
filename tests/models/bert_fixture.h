// The transformers fixtures of tests/fixtures/bert (gen_bert_fixtures.py): their paths and the
// comparison of a last hidden state against the reference that every device's test uses.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lloco::models::testing {

inline const std::string kBertTinyDir = std::string(LLOCO_FIXTURES_DIR) + "/bert/tiny";
inline const std::string kBertExpected = std::string(LLOCO_FIXTURES_DIR) + "/bert/expected.safetensors";

struct HiddenDiff {
  double valid_max_abs = 0, valid_max_ref = 0;  // over unmasked positions
  double valid_rel_norm = 0;                    // ||got - ref|| / ||ref|| over unmasked positions
  double padded_max_abs = 0;                    // max |got| over masked positions
};

// got / ref [B, T, D] (any device and float dtype), mask [B, T] (nonzero = token).
inline HiddenDiff hidden_diff(const Tensor& got, const Tensor& ref, const Tensor& mask) {
  const std::vector<double> g = got.to(cpu()).to_vector<double>(), r = ref.to(cpu()).to_vector<double>();
  const std::vector<double> keep = mask.to(cpu()).to_vector<double>();
  const size_t D = g.size() / keep.size();
  HiddenDiff d;
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double e = std::fabs(g[i] - r[i]);
    if (std::isnan(e)) e = INFINITY;
    if (keep[i / D] == 0) {
      d.padded_max_abs = std::max(d.padded_max_abs, std::isnan(g[i]) ? INFINITY : std::fabs(g[i]));
      continue;
    }
    d.valid_max_abs = std::max(d.valid_max_abs, e);
    d.valid_max_ref = std::max(d.valid_max_ref, std::fabs(r[i]));
    err2 += e * e;
    ref2 += r[i] * r[i];
  }
  d.valid_rel_norm = std::sqrt(err2 / ref2);
  return d;
}

}  // namespace lloco::models::testing
