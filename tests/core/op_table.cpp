#include "tests/core/op_table.h"

#include <cmath>

namespace lloco::testing {

namespace {

using In = std::vector<Tensor>;
InputSpec N(Shape s) { return {std::move(s), InputKind::Normal, 0}; }
InputSpec P(Shape s) { return {std::move(s), InputKind::Positive, 0}; }
InputSpec I(Shape s, int64_t range) { return {std::move(s), InputKind::Index, range}; }
InputSpec M(Shape s) { return {std::move(s), InputKind::Mask, 0}; }

OpCase make(std::string name, std::vector<InputSpec> in, std::function<Tensor(const In&)> run) {
  OpCase c;
  c.name = std::move(name);
  c.inputs = std::move(in);
  c.run = std::move(run);
  return c;
}

std::vector<OpCase> build_table() {
  std::vector<OpCase> t;
  // ---- elementwise binary, with broadcasting and odd sizes
  t.push_back(make("add", {N({3, 5}), N({3, 5})}, [](const In& x) { return add(x[0], x[1]); }));
  t.push_back(make("add/broadcast", {N({3, 1, 5}), N({4, 5})}, [](const In& x) { return add(x[0], x[1]); }));
  t.push_back(make("sub/broadcast", {N({2, 3, 7}), N({7})}, [](const In& x) { return sub(x[0], x[1]); }));
  t.push_back(make("mul/broadcast", {N({5, 1}), N({1, 6})}, [](const In& x) { return mul(x[0], x[1]); }));
  t.push_back(make("div", {N({4, 9}), P({4, 9})}, [](const In& x) { return div(x[0], x[1]); }));
  t.push_back(make("div/broadcast", {N({2, 3, 4}), P({3, 1})}, [](const In& x) { return div(x[0], x[1]); }));
  t.push_back(make("maximum", {N({6, 5}), N({6, 5})}, [](const In& x) { return maximum(x[0], x[1]); }));
  t.push_back(make("add_scalar", {N({3, 7})}, [](const In& x) { return add(x[0], 1.5); }));
  t.push_back(make("mul_scalar", {N({3, 7})}, [](const In& x) { return mul(x[0], -0.75); }));
  // ---- elementwise unary
  t.push_back(make("neg", {N({13})}, [](const In& x) { return neg(x[0]); }));
  t.push_back(make("exp", {N({4, 5})}, [](const In& x) { return exp(x[0]); }));
  t.push_back(make("log", {P({4, 5})}, [](const In& x) { return log(x[0]); }));
  t.push_back(make("sqrt", {P({4, 5})}, [](const In& x) { return sqrt(x[0]); }));
  t.push_back(make("rsqrt", {P({4, 5})}, [](const In& x) { return rsqrt(x[0]); }));
  t.push_back(make("pow", {P({3, 5})}, [](const In& x) { return pow(x[0], 2.5); }));
  t.push_back(make("square", {N({3, 5})}, [](const In& x) { return square(x[0]); }));
  t.push_back(make("silu", {N({5, 7})}, [](const In& x) { return silu(x[0]); }));
  t.push_back(make("erf", {N({5, 7})}, [](const In& x) { return erf(x[0]); }));
  t.push_back(make("gelu", {N({5, 7})}, [](const In& x) { return gelu(x[0]); }));
  t.push_back(make("sigmoid", {N({5, 7})}, [](const In& x) { return sigmoid(x[0]); }));
  t.push_back(make("tanh", {N({5, 7})}, [](const In& x) { return tanh(x[0]); }));
  t.push_back(make("relu", {N({5, 7})}, [](const In& x) { return relu(x[0]); }));
  t.push_back(make("abs", {N({5, 7})}, [](const In& x) { return abs(x[0]); }));
  t.push_back(make("swiglu", {N({3, 8}), N({3, 8})}, [](const In& x) { return mul(silu(x[0]), x[1]); }));
  t.push_back(make("layer_norm", {N({3, 5, 16}), N({16}), N({16})},
                   [](const In& x) { return layer_norm(x[0], x[1], x[2], 1e-12); }));
  t.push_back(make("layer_norm/no_bias_odd", {N({7, 13}), N({13})},
                   [](const In& x) { return layer_norm(x[0], x[1], Tensor(), 1e-5); }));
  // ---- reductions / softmax
  t.push_back(make("sum/all", {N({3, 4, 5})}, [](const In& x) { return sum(x[0]); }));
  t.push_back(make("sum/dim1", {N({3, 4, 5})}, [](const In& x) { return sum(x[0], {1}); }));
  t.push_back(make("sum/keepdim", {N({3, 4, 5})}, [](const In& x) { return sum(x[0], {0, 2}, true); }));
  t.push_back(make("mean/last", {N({3, 11})}, [](const In& x) { return mean(x[0], {-1}); }));
  t.push_back(make("max/dim0", {N({6, 5})}, [](const In& x) { return max(x[0], {0}); }));
  t.push_back(make("softmax/last", {N({4, 9})}, [](const In& x) { return softmax(x[0], -1); }));
  t.push_back(make("softmax/dim0", {N({5, 3})}, [](const In& x) { return softmax(x[0], 0); }));
  t.push_back(make("log_softmax", {N({4, 9})}, [](const In& x) { return log_softmax(x[0], -1); }));
  // ---- linear algebra
  t.push_back(make("matmul/2d", {N({7, 5}), N({5, 3})}, [](const In& x) { return matmul(x[0], x[1]); }));
  t.push_back(make("matmul/batched_broadcast", {N({2, 1, 4, 6}), N({3, 6, 5})},
                   [](const In& x) { return matmul(x[0], x[1]); }));
  t.push_back(make("matmul/fold_batch", {N({2, 3, 6}), N({6, 5})}, [](const In& x) { return matmul(x[0], x[1]); }));
  t.push_back(make("matmul/transposed", {N({5, 7}), N({3, 5})},
                   [](const In& x) { return matmul(x[0].transpose(0, 1), x[1].transpose(0, 1)); }));
  t.push_back(make("matmul/vector", {N({6}), N({6, 4})}, [](const In& x) { return matmul(x[0], x[1]); }));
  t.push_back(make("linear/bias", {N({2, 3, 6}), N({5, 6}), N({5})},
                   [](const In& x) { return linear(x[0], x[1], x[2]); }));
  // ---- indexing / assembly / views
  t.push_back(make("concat/dim1", {N({2, 3}), N({2, 1}), N({2, 4})},
                   [](const In& x) { return concat({x[0], x[1], x[2]}, 1); }));
  t.push_back(make("stack", {N({3, 2}), N({3, 2})}, [](const In& x) { return stack({x[0], x[1]}, 1); }));
  t.push_back(make("index_select/dim0_repeats", {N({6, 3}), I({8}, 6)},
                   [](const In& x) { return index_select(x[0], 0, x[1]); }));
  t.push_back(make("index_select/dim1", {N({3, 7}), I({4}, 7)}, [](const In& x) { return index_select(x[0], 1, x[1]); }));
  t.push_back(make("gather/last", {N({4, 9}), I({4, 3}, 9)}, [](const In& x) { return gather(x[0], 1, x[1]); }));
  t.push_back(make("embedding", {N({11, 4}), I({2, 5}, 11)}, [](const In& x) { return embedding(x[0], x[1]); }));
  t.push_back(make("where", {M({4, 5}), N({4, 5}), N({1, 5})}, [](const In& x) { return where(x[0], x[1], x[2]); }));
  t.push_back(make("masked_fill", {N({4, 5}), M({4, 5})}, [](const In& x) { return masked_fill(x[0], x[1], -3.0); }));
  t.push_back(make("dropout", {N({8, 9})}, [](const In& x) { return dropout(x[0], 0.25, 1234, 7); }));
  t.push_back(make("reshape+permute", {N({2, 3, 4})},
                   [](const In& x) { return mul(x[0].permute({2, 0, 1}).reshape({4, 6}), 2.0); }));
  t.push_back(make("narrow+expand", {N({5, 1, 3})},
                   [](const In& x) { return mul(x[0].narrow(0, 1, 3).expand({3, 4, 3}), 1.0); }));
  t.push_back(make("squeeze+unsqueeze", {N({3, 1, 4})},
                   [](const In& x) { return mul(x[0].squeeze(1).unsqueeze(0), 3.0); }));
  t.push_back(make("copy", {N({3, 4})}, [](const In& x) { return copy(x[0].transpose(0, 1)); }));
  // ---- fused ops, each checked against its composed fallback
  auto fused = [&](std::string name, std::vector<InputSpec> in, std::function<Tensor(const In&)> run,
                   std::function<Tensor(const In&)> ref, double scale = 1.0) {
    OpCase c = make(std::move(name), std::move(in), std::move(run));
    c.reference = std::move(ref);
    c.tolerance_scale = scale;
    t.push_back(c);
  };
  fused("rms_norm", {N({3, 5, 16}), N({16})}, [](const In& x) { return rms_norm(x[0], x[1], 1e-5); },
        [](const In& x) { return composed::rms_norm(x[0], x[1], 1e-5); });
  fused("rms_norm/odd", {N({7, 13}), N({13})}, [](const In& x) { return rms_norm(x[0], x[1], 1e-6); },
        [](const In& x) { return composed::rms_norm(x[0], x[1], 1e-6); });
  // 96 elements fill whole 16-byte packs; 91 and 66 leave tails (last dims 13 and 11, not multiples of 8).
  fused("swiglu/fused", {N({4, 24}), N({4, 24})}, [](const In& x) { return swiglu(x[0], x[1]); },
        [](const In& x) { return composed::swiglu(x[0], x[1]); });
  fused("swiglu/fused_odd", {N({7, 13}), N({7, 13})}, [](const In& x) { return swiglu(x[0], x[1]); },
        [](const In& x) { return composed::swiglu(x[0], x[1]); });
  fused("swiglu/fused_3d", {N({2, 3, 11}), N({2, 3, 11})}, [](const In& x) { return swiglu(x[0], x[1]); },
        [](const In& x) { return composed::swiglu(x[0], x[1]); });
  for (RopeStyle style : {RopeStyle::HalfRotate, RopeStyle::Interleaved}) {
    std::string nm = style == RopeStyle::HalfRotate ? "rope/half_rotate" : "rope/interleaved";
    auto tables = [](const Tensor& x) {
      return rope_tables(arange(3, 3 + x.size(2), 1, DType::I64, x.device()), x.size(3), 10000.0, 2.0);
    };
    fused(nm, {N({2, 3, 5, 8})}, [=](const In& x) { return rope(x[0], tables(x[0]), style); },
          [=](const In& x) { return composed::rope(x[0], tables(x[0]), style); });
  }
  auto attn = [](bool causal, bool use_mask, bool prefix) {
    return [=](const In& x, bool fused_op) {
      AttentionOptions o;
      o.causal = causal;
      size_t next = 3;
      if (use_mask) o.mask = x[next++];
      if (prefix) {
        o.prefix_k = x[next++];
        o.prefix_v = x[next++];
      }
      return fused_op ? attention(x[0], x[1], x[2], o) : composed::attention(x[0], x[1], x[2], o);
    };
  };
  auto add_attn = [&](std::string name, std::vector<InputSpec> in, bool causal, bool use_mask, bool prefix) {
    auto f = attn(causal, use_mask, prefix);
    fused(std::move(name), std::move(in), [f](const In& x) { return f(x, true); },
          [f](const In& x) { return f(x, false); }, 2.0);
  };
  add_attn("attention/causal_gqa", {N({2, 4, 5, 8}), N({2, 2, 5, 8}), N({2, 2, 5, 8})}, true, false, false);
  add_attn("attention/noncausal_odd", {N({1, 3, 7, 5}), N({1, 3, 4, 5}), N({1, 3, 4, 5})}, false, false, false);
  add_attn("attention/mask", {N({2, 2, 3, 4}), N({2, 1, 3, 4}), N({2, 1, 3, 4}), M({1, 1, 3, 3})}, false, true, false);
  add_attn("attention/prefix_causal", {N({1, 4, 3, 8}), N({1, 2, 3, 8}), N({1, 2, 3, 8}), N({1, 2, 4, 8}), N({1, 2, 4, 8})},
           true, false, true);
  add_attn("attention/decode", {N({2, 4, 1, 8}), N({2, 4, 9, 8}), N({2, 4, 9, 8})}, true, false, false);
  // More queries than keys, causal: the first two rows see no key (out 0, zero gradients).
  add_attn("attention/causal_rows_without_keys", {N({1, 2, 5, 4}), N({1, 1, 3, 4}), N({1, 1, 3, 4})}, true, false,
           false);
  {
    OpCase c = make("cross_entropy", {N({6, 11}), I({6}, 11)}, [](const In& x) { return cross_entropy(x[0], x[1]); });
    c.reference = [](const In& x) { return composed::cross_entropy(x[0], x[1]); };
    c.f32_output = true;
    t.push_back(c);
    // Targets with ignored rows: the index generator cannot emit -100, so ignore class 3 instead.
    OpCase ig = make("cross_entropy/ignore", {N({9, 5}), I({9}, 5)}, [](const In& x) { return cross_entropy(x[0], x[1], 3); });
    ig.reference = [](const In& x) { return composed::cross_entropy(x[0], x[1], 3); };
    ig.f32_output = true;
    t.push_back(ig);
  }
  return t;
}

}  // namespace

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = [] {
    std::vector<OpCase> t = build_table();
    append_attention_varlen_cases(t);
    append_lora_cases(t);
    return t;
  }();
  return table;
}

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const InputSpec& s = c.inputs[i];
    const uint64_t sd = seed * 1000003ull + i;
    Tensor t;
    switch (s.kind) {
      case InputKind::Normal: t = randn(s.shape, sd, DType::F64); break;
      case InputKind::Positive: t = add(mul(rand(s.shape, sd, DType::F64), 1.5), 0.5); break;
      case InputKind::Mask: t = compare(BinaryOp::Ge, rand(s.shape, sd, DType::F64), full({}, 0.5, DType::F64)); break;
      case InputKind::Index: {
        Tensor u = rand(s.shape, sd, DType::F64);
        std::vector<double> v = u.to_vector<double>();
        std::vector<int64_t> idx(v.size());
        for (size_t k = 0; k < v.size(); ++k) idx[k] = std::min<int64_t>(s.range - 1, static_cast<int64_t>(v[k] * s.range));
        out.push_back(from_vector<int64_t>(idx, s.shape, DType::I64, device));
        continue;
      }
    }
    out.push_back(t.to(dtype).to(device));
  }
  return out;
}

std::vector<Tensor> strided_copies(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  for (const Tensor& t : inputs) {
    // Every other element of a larger buffer, so no dim has unit stride.
    Shape big = t.shape();
    big.push_back(2);
    Tensor base = full(big, dtype_is_float(t.dtype()) ? std::nan("") : 0.0, t.dtype(), t.device());
    Tensor view = base.select(-1, 1);
    copy_(view, t);
    out.push_back(view);
  }
  return out;
}

double tolerance(DType dtype) {
  switch (dtype) {
    case DType::F64: return 1e-12;
    case DType::F32: return 2e-5;
    case DType::F16: return 4e-3;
    case DType::BF16: return 3e-2;
    default: return 0.0;
  }
}

}  // namespace lloco::testing
