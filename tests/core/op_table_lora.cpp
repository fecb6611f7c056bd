// Op-table cases for the LoRA ops, each checked against composed::lora_delta (plain matmuls per
// run of rows): segments with an empty segment and an adapter-less segment, per-row (BGMV)
// assignment, one adapter for all rows, and lora_linear on a 3-D input and on a decode-size batch
// (3 rows of whole 16-byte packs: CUDA's fused one-launch kernel, where the operands allow it).
#include "tests/core/op_table.h"

namespace lloco::testing {

namespace {

using In = std::vector<Tensor>;
InputSpec N(Shape s) { return {std::move(s), InputKind::Normal, 0}; }

// Row assignments for N = 7 rows and L = 3 adapters.
LoraSegments segments(const std::string& kind, Device device) {
  if (kind == "segments") return LoraSegments::by_segment({0, 2, 2, 5, 6, 7}, {1, 0, 2, -1, 0}, device);
  if (kind == "per_row") return LoraSegments::by_row({2, 0, -1, 2, 1, 1, 0}, device);
  return LoraSegments::single(7, 1, device);
}

}  // namespace

void append_lora_cases(std::vector<OpCase>& table) {
  const double scale = 0.75;
  for (std::string kind : {"segments", "per_row", "single"}) {
    OpCase c;
    c.name = "lora_delta/" + kind;
    c.inputs = {N({7, 5}), N({3, 4, 5}), N({3, 6, 4})};  // x [N, I], a [L, r, I], b [L, O, r]
    c.run = [kind, scale](const In& x) { return lora_delta(x[0], x[1], x[2], scale, segments(kind, x[0].device())); };
    c.reference = [kind, scale](const In& x) {
      return composed::lora_delta(x[0], x[1], x[2], scale, segments(kind, x[0].device()));
    };
    table.push_back(c);
  }
  OpCase lin;
  lin.name = "lora_linear/segments";
  lin.inputs = {N({1, 7, 5}), N({6, 5}), N({3, 4, 5}), N({3, 6, 4})};  // x [B, T, I], W [O, I], a, b
  lin.run = [scale](const In& x) {
    return lora_linear(x[0], x[1], x[2], x[3], scale, segments("segments", x[0].device()));
  };
  lin.reference = [scale](const In& x) {
    Tensor delta = composed::lora_delta(x[0].reshape({7, 5}), x[2], x[3], scale, segments("segments", x[0].device()));
    return add(linear(x[0], x[1]), delta.reshape({1, 7, 6}));
  };
  table.push_back(lin);

  OpCase dec;
  dec.name = "lora_linear/decode_rows";
  dec.inputs = {N({1, 3, 16}), N({6, 16}), N({3, 4, 16}), N({3, 6, 4})};
  dec.run = [scale](const In& x) {
    return lora_linear(x[0], x[1], x[2], x[3], scale, LoraSegments::by_row({2, -1, 0}, x[0].device()));
  };
  dec.reference = [scale](const In& x) {
    const LoraSegments seg = LoraSegments::by_row({2, -1, 0}, x[0].device());
    Tensor delta = composed::lora_delta(x[0].reshape({3, 16}), x[2], x[3], scale, seg);
    return add(linear(x[0], x[1]), delta.reshape({1, 3, 6}));
  };
  table.push_back(dec);
}

}  // namespace lloco::testing
