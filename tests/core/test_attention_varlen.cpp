// Packed variable-length attention against per-sequence dense attention (f64, forward and
// gradients), its offset validation, empty sequences and uncovered rows; and dense attention on
// capacity-padded KV-cache views, which must reach the kernel without a copy.
#include <gtest/gtest.h>

#include <string>

#include "core/autograd.h"
#include "core/ops.h"

namespace lloco {
namespace {

struct Packed {
  Tensor q, k, v;  // leaves [N, H, D] f64
};

Packed make_packed(int64_t Nq, int64_t Nk, int64_t Hq, int64_t Hkv, int64_t D, uint64_t seed) {
  Packed p{randn({Nq, Hq, D}, seed, DType::F64), randn({Nk, Hkv, D}, seed + 1, DType::F64),
           randn({Nk, Hkv, D}, seed + 2, DType::F64)};
  for (Tensor* t : {&p.q, &p.k, &p.v}) t->requires_grad_(true);
  return p;
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return compare_tensors(a, b).max_abs; }
double max_abs(const Tensor& a) { return compare_tensors(a, zeros_like(a)).max_abs; }

// Rows start .. start + len of [N, H, D] as a [1, H, len, D] batch (and back).
Tensor as_batch(const Tensor& t, int64_t start, int64_t len) {
  return t.narrow(0, start, len).permute({1, 0, 2}).unsqueeze(0);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_mentions(const std::string& msg, const std::vector<std::string>& parts) {
  ASSERT_FALSE(msg.empty()) << "no error raised";
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

// Runs varlen attention and, sequence by sequence, dense attention on fresh copies of the same
// rows; outputs and gradients (of sum(out * upstream)) must agree to rounding.
void check_against_dense(const std::vector<int64_t>& cu_q, const std::vector<int64_t>& cu_k, int64_t Nq,
                         int64_t Nk, int64_t Hq, int64_t Hkv, int64_t D, bool causal) {
  SCOPED_TRACE(causal ? "causal" : "non-causal");
  Packed p = make_packed(Nq, Nk, Hq, Hkv, D, 7);
  const Tensor upstream = randn({Nq, Hq, D}, 99, DType::F64);
  const Tensor out = attention_varlen(p.q, p.k, p.v, cu_q, cu_k, causal);
  sum(mul(out, upstream)).backward();
  AttentionOptions o;
  o.causal = causal;
  for (size_t b = 0; b + 1 < cu_q.size(); ++b) {
    SCOPED_TRACE("sequence " + std::to_string(b));
    const int64_t q0 = cu_q[b], Tq = cu_q[b + 1] - q0, k0 = cu_k[b], Tk = cu_k[b + 1] - k0;
    if (Tq == 0 || Tk == 0) continue;  // covered by the empty-sequence test
    Tensor q = as_batch(p.q.detach(), q0, Tq).contiguous().requires_grad_(true);
    Tensor k = as_batch(p.k.detach(), k0, Tk).contiguous().requires_grad_(true);
    Tensor v = as_batch(p.v.detach(), k0, Tk).contiguous().requires_grad_(true);
    const Tensor dense = attention(q, k, v, o);
    sum(mul(dense, as_batch(upstream, q0, Tq))).backward();
    EXPECT_LE(max_abs_diff(as_batch(out.detach(), q0, Tq), dense.detach()), 1e-12);
    EXPECT_LE(max_abs_diff(as_batch(p.q.grad(), q0, Tq), q.grad()), 1e-12);
    EXPECT_LE(max_abs_diff(as_batch(p.k.grad(), k0, Tk), k.grad()), 1e-12);
    EXPECT_LE(max_abs_diff(as_batch(p.v.grad(), k0, Tk), v.grad()), 1e-12);
  }
}

TEST(AttentionVarlen, MatchesPerSequenceDenseAttention) {
  // Prefill-style, decode-style (1 query on a long cache) and chunked sequences; grouped heads.
  const std::vector<int64_t> cu_q{0, 6, 7, 10, 15}, cu_k{0, 6, 13, 19, 24};
  for (bool causal : {true, false}) check_against_dense(cu_q, cu_k, 15, 24, 4, 2, 8, causal);
}

TEST(AttentionVarlen, MatchesDenseWithSingleKvHeadAndOddHeadDim) {
  for (bool causal : {true, false}) check_against_dense({0, 3, 11}, {0, 5, 11}, 11, 11, 3, 1, 5, causal);
}

TEST(AttentionVarlen, EmptySequencesAndUncoveredRows) {
  // Sequence 0: 2 queries, 3 keys; 1: no queries, 2 keys; 2: 3 queries, no keys; 3: no queries,
  // 2 keys. q rows 5..7 and k rows 7..8 lie outside every sequence.
  const std::vector<int64_t> cu_q{0, 2, 2, 5, 5}, cu_k{0, 3, 5, 5, 7};
  Packed p = make_packed(7, 9, 4, 2, 6, 21);
  const Tensor out = attention_varlen(p.q, p.k, p.v, cu_q, cu_k, /*causal=*/true);
  ASSERT_EQ(out.shape(), (Shape{7, 4, 6}));
  sum(mul(out, randn({7, 4, 6}, 5, DType::F64))).backward();
  EXPECT_GT(max_abs(out.narrow(0, 0, 2)), 0.0);
  EXPECT_EQ(max_abs(out.narrow(0, 2, 5)), 0.0) << "rows without keys and rows outside sequences must be 0";
  EXPECT_GT(max_abs(p.q.grad().narrow(0, 0, 2)), 0.0);
  EXPECT_EQ(max_abs(p.q.grad().narrow(0, 2, 5)), 0.0);
  EXPECT_GT(max_abs(p.k.grad().narrow(0, 0, 3)), 0.0);
  EXPECT_GT(max_abs(p.v.grad().narrow(0, 0, 3)), 0.0);
  EXPECT_EQ(max_abs(p.k.grad().narrow(0, 3, 6)), 0.0) << "keys no query sees get no gradient";
  EXPECT_EQ(max_abs(p.v.grad().narrow(0, 3, 6)), 0.0);
  // The one non-empty sequence equals dense attention on its rows.
  AttentionOptions o;
  o.causal = true;
  const Tensor dense = attention(as_batch(p.q.detach(), 0, 2), as_batch(p.k.detach(), 0, 3),
                                 as_batch(p.v.detach(), 0, 3), o);
  EXPECT_LE(max_abs_diff(as_batch(out.detach(), 0, 2), dense), 1e-12);
}

TEST(AttentionVarlen, AllSequencesEmpty) {
  Packed p = make_packed(3, 2, 2, 2, 4, 3);
  const Tensor out = attention_varlen(p.q, p.k, p.v, {0, 0, 0}, {0, 1, 2}, false);
  sum(out).backward();
  EXPECT_EQ(max_abs(out), 0.0);
  EXPECT_EQ(max_abs(p.q.grad()), 0.0);
  EXPECT_EQ(max_abs(p.k.grad()), 0.0);
}

TEST(AttentionVarlen, MatchesComposedOnStridedViews) {
  // Head-dim-strided inputs take the copy path; row/head-strided ones go to the kernel as views.
  // (Every causal query sees a key: the composed oracle gives NaN for fully masked rows.)
  const std::vector<int64_t> cu_q{0, 4, 8}, cu_k{0, 5, 9};
  const Tensor q_head_strided = randn({9, 8, 3}, 1, DType::F64).transpose(1, 2);  // [9, 3, 8], stride(-1) 3
  const Tensor q_row_strided = randn({9, 3, 16}, 2, DType::F64).narrow(2, 8, 8);  // [9, 3, 8], stride(-1) 1
  const Tensor big_kv = randn({9, 8, 8}, 3, DType::F64);
  const Tensor k = big_kv.narrow(1, 0, 3), v = big_kv.narrow(1, 4, 3);  // [9, 3, 8] views
  ASSERT_NE(q_head_strided.stride(-1), 1);
  for (const Tensor& q : {q_head_strided, q_row_strided}) {
    const Tensor got = attention_varlen(q, k, v, cu_q, cu_k, true);
    const Tensor ref = composed::attention_varlen(q.contiguous(), k.contiguous(), v.contiguous(), cu_q, cu_k, true);
    EXPECT_LE(max_abs_diff(got, ref), 1e-12);
  }
}

TEST(AttentionVarlen, ErrorsNameOpFieldAndValues) {
  const Tensor q = randn({5, 4, 8}, 1, DType::F32), k = randn({6, 2, 8}, 2, DType::F32), v = k.clone();
  auto run = [&](std::vector<int64_t> cu_q, std::vector<int64_t> cu_k) {
    return error_of([&] { attention_varlen(q, k, v, cu_q, cu_k, true); });
  };
  expect_mentions(run({0, 3, 6}, {0, 3, 6}), {"attention_varlen", "cu_q", "6", "5"});     // past Nq
  expect_mentions(run({0, 3, 5}, {0, 4, 7}), {"attention_varlen", "cu_k", "7", "6"});     // past Nk
  expect_mentions(run({1, 3, 5}, {0, 3, 6}), {"attention_varlen", "cu_q[0]", "1"});       // not from 0
  expect_mentions(run({0, 4, 2}, {0, 3, 6}), {"attention_varlen", "non-decreasing", "4", "2"});
  expect_mentions(run({0, 3, 5}, {0, 6}), {"attention_varlen", "cu_q", "3", "cu_k", "2"});  // lengths differ
  expect_mentions(run({0}, {0}), {"attention_varlen", "cu_q", "1"});                          // no sequence
  expect_mentions(error_of([&] { attention_varlen(q, randn({6, 3, 8}, 2, DType::F32), randn({6, 3, 8}, 3, DType::F32),
                                                  {0, 5}, {0, 6}, true); }),
                  {"attention_varlen", "4", "3"});  // heads not divisible
  expect_mentions(error_of([&] { attention_varlen(q, randn({6, 2, 4}, 2, DType::F32), randn({6, 2, 4}, 3, DType::F32),
                                                  {0, 5}, {0, 6}, true); }),
                  {"attention_varlen", "head dim"});
  expect_mentions(error_of([&] { attention_varlen(q, k.to(DType::F64), v.to(DType::F64), {0, 5}, {0, 6}, true); }),
                  {"attention_varlen"});
  expect_mentions(error_of([&] { attention_varlen(q.unsqueeze(0), k, v, {0, 5}, {0, 6}, true); }),
                  {"attention_varlen", "[N, H, D]"});
}

// ---- dense attention on KV-cache views ------------------------------------------------------------

// A KV cache keeps [B, Hkv, capacity, D] buffers and hands out their first C steps.
struct CacheViews {
  Tensor k_buf, v_buf;  // [B, Hkv, capacity, D]
  Tensor k, v;          // [B, Hkv, C, D] views
};

CacheViews cache_views(int64_t B, int64_t Hkv, int64_t capacity, int64_t C, int64_t D, uint64_t seed) {
  CacheViews c;
  c.k_buf = randn({B, Hkv, capacity, D}, seed, DType::F64);
  c.v_buf = randn({B, Hkv, capacity, D}, seed + 1, DType::F64);
  c.k = c.k_buf.narrow(2, 0, C);
  c.v = c.v_buf.narrow(2, 0, C);
  return c;
}

TEST(AttentionKvView, CapacityPaddedViewMatchesContiguousCopy) {
  CacheViews c = cache_views(2, 2, 16, 9, 8, 40);
  ASSERT_FALSE(c.k.is_contiguous());
  c.k_buf.requires_grad_(true);
  c.v_buf.requires_grad_(true);
  const Tensor k_view = c.k_buf.narrow(2, 0, 9), v_view = c.v_buf.narrow(2, 0, 9);
  Tensor k_copy = k_view.detach().contiguous().requires_grad_(true);
  Tensor v_copy = v_view.detach().contiguous().requires_grad_(true);
  Tensor q_a = randn({2, 4, 3, 8}, 42, DType::F64).requires_grad_(true);
  Tensor q_b = q_a.detach().clone().requires_grad_(true);
  const Tensor upstream = randn({2, 4, 3, 8}, 43, DType::F64);
  AttentionOptions o;
  o.causal = true;
  const Tensor from_view = attention(q_a, k_view, v_view, o);
  const Tensor from_copy = attention(q_b, k_copy, v_copy, o);
  sum(mul(from_view, upstream)).backward();
  sum(mul(from_copy, upstream)).backward();
  EXPECT_EQ(max_abs_diff(from_view, from_copy), 0.0);
  EXPECT_EQ(max_abs_diff(q_a.grad(), q_b.grad()), 0.0);
  EXPECT_EQ(max_abs_diff(c.k_buf.grad().narrow(2, 0, 9), k_copy.grad()), 0.0);
  EXPECT_EQ(max_abs_diff(c.v_buf.grad().narrow(2, 0, 9), v_copy.grad()), 0.0);
  EXPECT_EQ(max_abs(c.k_buf.grad().narrow(2, 9, 7)), 0.0) << "capacity beyond the view gets no gradient";
  EXPECT_GT(max_abs(k_copy.grad()), 0.0);
}

TEST(AttentionKvView, DecodeStepDoesNotCopyTheCache) {
  // A cache large enough that copying k or v would raise the host allocator's peak above the
  // bytes live before the call plus what attention itself allocates (out + lse).
  CacheViews c = cache_views(1, 2, 8192, 8000, 64, 50);
  const Tensor q = randn({1, 4, 1, 64}, 52, DType::F64);
  Allocator& host = allocator_for(DeviceType::CPU);
  const size_t live = host.current_bytes(), view_bytes = c.k.nbytes();
  ASSERT_LT(host.peak_bytes(), live + view_bytes) << "an earlier peak would hide a copy";
  AttentionOptions o;
  o.causal = true;
  Tensor out;
  {
    NoGradGuard no_grad;
    out = attention(q, c.k, c.v, o);
  }
  EXPECT_LT(host.peak_bytes(), live + view_bytes) << "attention copied the KV cache view";
  // Same values as the contiguous copy.
  EXPECT_EQ(max_abs_diff(out, attention(q, c.k.contiguous(), c.v.contiguous(), o)), 0.0);
}

TEST(AttentionKvView, HeadDimStridedInputsAreStillCorrect) {
  const Tensor base = randn({2, 2, 8, 5}, 60, DType::F64);
  const Tensor k = base.transpose(2, 3).narrow(3, 0, 5), v = mul(k, 0.5);  // k: stride(-1) = 5
  ASSERT_NE(k.stride(-1), 1);
  const Tensor q = randn({2, 4, 3, 5}, 61, DType::F64);
  AttentionOptions o;
  EXPECT_LE(max_abs_diff(attention(q, k, v, o), composed::attention(q, k, v, o)), 1e-12);
}

}  // namespace
}  // namespace lloco
