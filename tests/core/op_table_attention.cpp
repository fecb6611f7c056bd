// Op-table cases for packed variable-length attention, each checked against its composed fallback
// (per-sequence dense attention). The offsets are fixed per case and captured by the run lambdas.
#include "tests/core/op_table.h"

namespace lloco::testing {

namespace {

struct VarlenCase {
  const char* name;
  std::vector<int64_t> cu_q, cu_k;
  int64_t Nq, Nk, Hq, Hkv, D;
  bool causal;
};

}  // namespace

void append_attention_varlen_cases(std::vector<OpCase>& table) {
  const std::vector<VarlenCase> cases = {
      // prefill-style packing: every sequence has as many queries as keys
      {"attention_varlen/causal_gqa", {0, 3, 8, 9}, {0, 3, 8, 9}, 9, 9, 4, 2, 8, true},
      {"attention_varlen/noncausal_odd", {0, 5, 7}, {0, 2, 9}, 7, 9, 3, 3, 5, false},
      // decode/chunked-prefill: fewer queries than keys, bottom-right causal per sequence
      {"attention_varlen/causal_decode_mqa", {0, 1, 3, 4}, {0, 4, 9, 11}, 4, 11, 4, 1, 6, true},
      // a sequence with no queries, one with no keys, and rows after the last sequence
      {"attention_varlen/empty_and_trailing", {0, 2, 2, 5, 5}, {0, 3, 5, 5, 7}, 7, 9, 2, 1, 4, true},
      {"attention_varlen/noncausal_trailing", {0, 3, 4}, {0, 2, 6}, 6, 8, 2, 2, 7, false},
  };
  for (const VarlenCase& vc : cases) {
    OpCase c;
    c.name = vc.name;
    c.inputs = {{{vc.Nq, vc.Hq, vc.D}, InputKind::Normal, 0},
                {{vc.Nk, vc.Hkv, vc.D}, InputKind::Normal, 0},
                {{vc.Nk, vc.Hkv, vc.D}, InputKind::Normal, 0}};
    const std::vector<int64_t> cu_q = vc.cu_q, cu_k = vc.cu_k;
    const bool causal = vc.causal;
    c.run = [=](const std::vector<Tensor>& x) { return attention_varlen(x[0], x[1], x[2], cu_q, cu_k, causal); };
    c.reference = [=](const std::vector<Tensor>& x) {
      return composed::attention_varlen(x[0], x[1], x[2], cu_q, cu_k, causal);
    };
    c.tolerance_scale = 2.0;  // as dense attention: a softmax-weighted sum per row
    table.push_back(std::move(c));
  }
}

}  // namespace lloco::testing
