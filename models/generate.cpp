#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "models/kv_cache.h"

namespace lloco::models {

int32_t sample_token(std::vector<float> logits, const std::vector<int32_t>& history, const GenerateOptions& opts,
                     double uniform) {
  const int64_t V = static_cast<int64_t>(logits.size());
  LLOCO_CHECK(V > 0, "sample_token", "empty logits");
  if (opts.repetition_penalty != 1.0) {
    std::vector<char> seen(V, 0);
    for (int32_t id : history)
      if (id >= 0 && id < V) seen[id] = 1;
    const float p = static_cast<float>(opts.repetition_penalty);
    for (int64_t i = 0; i < V; ++i)
      if (seen[i]) logits[i] = logits[i] < 0 ? logits[i] * p : logits[i] / p;
  }
  if (opts.temperature <= 0.0)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float inv_t = static_cast<float>(1.0 / opts.temperature);
  for (float& x : logits) x *= inv_t;
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  int64_t keep = V;
  if (opts.top_k > 0 && opts.top_k < V) {
    // HF keeps every logit >= the k-th largest, so ties at the boundary survive.
    const float kth = logits[order[opts.top_k - 1]];
    keep = opts.top_k;
    while (keep < V && logits[order[keep]] >= kth) ++keep;
  }
  std::vector<double> probs(keep);
  const double mx = logits[order[0]];
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[i] = std::exp(logits[order[i]] - mx);
  for (double& p : probs) p /= total;
  if (opts.top_p < 1.0) {
    // Smallest prefix (by descending probability) whose mass reaches top_p; at least one token.
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs[n++];
      if (cum >= opts.top_p) break;
    }
    keep = n;
    total = 0;
    for (int64_t i = 0; i < keep; ++i) total += probs[i];
    for (int64_t i = 0; i < keep; ++i) probs[i] /= total;
  }
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (uniform < acc) return order[i];
  }
  return order[keep - 1];
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Host f32 logits of row b from logits [B, 1, V].
std::vector<float> row_logits(const Tensor& logits_f32, int64_t b) {
  return logits_f32.select(0, b).select(0, 0).to_vector<float>();
}

}  // namespace

GenerateResult generate(const LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opts, const Tokenizer* tokenizer, const TokenCallback& on_token) {
  const char* op = "generate";
  NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(prompts.size());
  LLOCO_CHECK(B > 0, op, "no prompts");
  LLOCO_CHECK(opts.max_new_tokens >= 0, op, "max_new_tokens must be >= 0, got ", opts.max_new_tokens);
  LLOCO_CHECK(opts.stop.empty() || tokenizer, op, "stop strings need a tokenizer");
  LLOCO_CHECK(opts.top_p > 0 && opts.top_p <= 1.0, op, "top_p must be in (0, 1], got ", opts.top_p);
  LLOCO_CHECK(opts.repetition_penalty > 0, op, "repetition_penalty must be > 0, got ", opts.repetition_penalty);
  const std::vector<int32_t> eos = opts.eos_ids.empty() ? std::vector<int32_t>{model.config.eos_token_id} : opts.eos_ids;
  const Device dev = model.embed_tokens.device();

  int64_t P = 0;
  Tensor prefix;
  if (opts.prefix_embeddings.defined()) {
    prefix = opts.prefix_embeddings;
    LLOCO_CHECK(prefix.dim() == 3 && (prefix.size(0) == B || prefix.size(0) == 1), op,
                "prefix_embeddings must be [B or 1, P, D] with B = ", B, ", got ", prefix.str());
    if (prefix.size(0) != B) prefix = prefix.expand({B, prefix.size(1), prefix.size(2)}).contiguous();
    P = prefix.size(1);
  }
  LLOCO_CHECK(opts.prefix_lengths.empty() || static_cast<int64_t>(opts.prefix_lengths.size()) == B, op,
              "prefix_lengths has ", opts.prefix_lengths.size(), " entries for ", B, " prompts");
  for (const int64_t len : opts.prefix_lengths)
    LLOCO_CHECK(len >= 0 && len <= P, op, "prefix length ", len, " outside [0, ", P, "]");
  LLOCO_CHECK(opts.row_max_new_tokens.empty() || static_cast<int64_t>(opts.row_max_new_tokens.size()) == B, op,
              "row_max_new_tokens has ", opts.row_max_new_tokens.size(), " entries for ", B, " prompts");
  for (const int64_t n : opts.row_max_new_tokens)
    LLOCO_CHECK(n >= 0 && n <= opts.max_new_tokens, op, "row_max_new_tokens ", n, " outside [0, ", opts.max_new_tokens, "]");
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  LLOCO_CHECK(T + P > 0, op, "empty prompts and no prefix");

  // Layout per row: [prefix ; prefix padding ; left padding ; prompt]. Positions count real keys only
  // (HF: cumsum(mask) - 1), so padding anywhere leaves the real tokens' positions contiguous.
  std::vector<int64_t> ids(B * T, opts.pad_id), mask(B * (P + T), 1), pos(B * (P + T), 0), next_pos(B, 0);
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size()), pad = T - n;
    padded |= pad > 0;
    for (int64_t t = 0; t < n; ++t) ids[b * T + pad + t] = prompts[b][t];
    for (int64_t t = 0; t < pad; ++t) mask[b * (P + T) + P + t] = 0;
    const int64_t real_prefix = opts.prefix_lengths.empty() ? P : opts.prefix_lengths[b];
    for (int64_t t = real_prefix; t < P; ++t) mask[b * (P + T) + t] = 0;
    padded |= real_prefix < P;
    int64_t count = 0;
    for (int64_t t = 0; t < P + T; ++t) {
      pos[b * (P + T) + t] = mask[b * (P + T) + t] ? count : 0;
      count += mask[b * (P + T) + t];
    }
    next_pos[b] = count;
  }
  KVCache cache(model.config.num_layers);
  cache.reserve(P + T + opts.max_new_tokens);
  ForwardInput in;
  if (T > 0) in.input_ids = from_vector<int64_t>(ids, {B, T}, DType::I64, dev);
  in.prefix_embeddings = prefix;
  in.positions = from_vector<int64_t>(pos, {B, P + T}, DType::I64, dev);
  std::vector<int64_t> key_mask = mask;
  if (padded) in.attention_mask = from_vector<int64_t>(key_mask, {B, P + T}, DType::I64, dev);
  in.last_logits_only = true;

  GenerateResult res;
  res.tokens.assign(B, {});
  res.texts.assign(B, "");
  res.finish.assign(B, FinishReason::Length);
  std::vector<char> done(B, opts.max_new_tokens == 0);
  auto row_limit = [&](int64_t b) { return opts.row_max_new_tokens.empty() ? opts.max_new_tokens : opts.row_max_new_tokens[b]; };
  for (int64_t b = 0; b < B; ++b) done[b] |= row_limit(b) == 0;
  std::vector<std::vector<int32_t>> history(prompts);
  // One generator per row: a row's samples depend on (seed, row index, its own logits) only, not on
  // how long the other rows run.
  std::vector<std::mt19937_64> rng;
  for (int64_t b = 0; b < B; ++b) rng.emplace_back(opts.seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(b));

  auto t0 = std::chrono::steady_clock::now();
  Tensor logits = opts.max_new_tokens > 0 ? model.forward(in, &cache).logits.to(DType::F32).to(cpu()) : Tensor();
  res.prefill_seconds = seconds_since(t0);
  res.prefill_tokens = B * (P + T);
  t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    std::vector<int64_t> feed(B, opts.pad_id);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const double u = static_cast<double>(rng[b]() >> 11) * 0x1.0p-53;
      const int32_t tok = sample_token(row_logits(logits, b), history[b], opts, u);
      feed[b] = tok;
      history[b].push_back(tok);
      res.tokens[b].push_back(tok);
      if (on_token) on_token(b, tok);
      if (std::find(eos.begin(), eos.end(), tok) != eos.end()) {
        done[b] = 1;
        res.finish[b] = FinishReason::Eos;
      } else if (!opts.stop.empty()) {
        const std::string text = tokenizer->decode(res.tokens[b]);
        for (const auto& s : opts.stop)
          if (!s.empty() && text.find(s) != std::string::npos) {
            done[b] = 1;
            res.finish[b] = FinishReason::Stop;
          }
      }
      ++res.decode_tokens;
    }
    const bool all_cancelled = opts.cancelled && opts.cancelled();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      if (all_cancelled || (opts.row_cancelled && opts.row_cancelled(b))) {
        done[b] = 1;
        res.finish[b] = FinishReason::Cancelled;
      } else if (static_cast<int64_t>(res.tokens[b].size()) >= row_limit(b)) {
        done[b] = 1;  // FinishReason::Length
      }
    }
    if (std::all_of(done.begin(), done.end(), [](char d) { return d != 0; }) || step + 1 == opts.max_new_tokens) break;
    ForwardInput dec;
    dec.input_ids = from_vector<int64_t>(feed, {B, 1}, DType::I64, dev);
    dec.positions = from_vector<int64_t>(next_pos, {B, 1}, DType::I64, dev);
    for (auto& p : next_pos) ++p;
    if (padded) {
      std::vector<int64_t> km;
      const int64_t K = static_cast<int64_t>(key_mask.size()) / B;
      for (int64_t b = 0; b < B; ++b) {
        km.insert(km.end(), key_mask.begin() + b * K, key_mask.begin() + (b + 1) * K);
        km.push_back(1);
      }
      key_mask = std::move(km);
      dec.attention_mask = from_vector<int64_t>(key_mask, {B, K + 1}, DType::I64, dev);
    }
    dec.last_logits_only = true;
    logits = model.forward(dec, &cache).logits.to(DType::F32).to(cpu());
  }
  res.decode_seconds = seconds_since(t0);
  if (tokenizer) {
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int32_t> body = res.tokens[b];
      if (res.finish[b] == FinishReason::Eos) body.pop_back();
      std::string text = tokenizer->decode(body);
      size_t cut = std::string::npos;
      for (const auto& s : opts.stop)
        if (!s.empty()) cut = std::min(cut, text.find(s));
      if (cut != std::string::npos) text.resize(cut);
      res.texts[b] = text;
    }
  }
  return res;
}

}  // namespace lloco::models
