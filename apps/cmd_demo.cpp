// `lloco demo`: trains a small character-level MLP language model on CPU with the core stack
// (embedding, linear, RMSNorm, SiLU, fused cross-entropy, AdamW + warmup/cosine + clipping) and
// shows the loss falling. A smoke test of the whole core and the README's first command.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/args.h"
#include "apps/command.h"
#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/optim.h"

namespace lloco::apps {
namespace {

constexpr const char* kHelp = R"(usage: lloco demo [options]
Trains a character-level MLP language model on a text file (CPU) and reports the loss.
  --data PATH        text to learn (default ../shared/data/qmsum/val.jsonl)
  --bytes N          use the first N bytes (default 300000)
  --steps N          optimizer steps (default 800)
  --batch N          sequences per step (default 64)
  --context N        characters of context (default 16)
  --lr X             peak learning rate (default 3e-3)
  --seed N           seed for init and batches (default 1)
  --out DIR          run directory for metrics.jsonl and results.json (default runs/demo)
)";

struct Model {
  Tensor emb, w1, b1, norm, w2, b2;
  NamedTensors named() const {
    return {{"emb", emb}, {"w1", w1}, {"b1", b1}, {"norm", norm}, {"w2", w2}, {"b2", b2}};
  }
  Tensor logits(const Tensor& ids) const {  // ids [B, C] -> [B, V]
    Tensor x = embedding(emb, ids).reshape({ids.size(0), -1});
    return linear(silu(rms_norm(linear(x, w1, b1), norm, 1e-5)), w2, b2);
  }
};

Tensor param(const Tensor& t) {
  Tensor p = t.contiguous();
  p.requires_grad_(true);
  return p;
}

Model init_model(int64_t vocab, int64_t context, int64_t dim, int64_t hidden, uint64_t seed) {
  Model m;
  m.emb = param(mul(randn({vocab, dim}, seed + 1), 0.5));
  m.w1 = param(mul(randn({hidden, context * dim}, seed + 2), 1.0 / std::sqrt(double(context * dim))));
  m.b1 = param(zeros({hidden}));
  m.norm = param(ones({hidden}));
  m.w2 = param(mul(randn({vocab, hidden}, seed + 3), 1.0 / std::sqrt(double(hidden))));
  m.b2 = param(zeros({vocab}));
  return m;
}

// Random windows of `context` symbols and the symbol after each.
std::pair<Tensor, Tensor> batch(const std::vector<int64_t>& data, int64_t B, int64_t C, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> pick(0, static_cast<int64_t>(data.size()) - C - 1);
  std::vector<int64_t> ids(static_cast<size_t>(B * C)), next(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    int64_t s = pick(rng);
    for (int64_t c = 0; c < C; ++c) ids[b * C + c] = data[s + c];
    next[b] = data[s + C];
  }
  return {from_vector<int64_t>(ids, {B, C}, DType::I64), from_vector<int64_t>(next, {B}, DType::I64)};
}

double eval_loss(const Model& m, const std::vector<int64_t>& data, int64_t C, uint64_t seed) {
  NoGradGuard ng;
  std::mt19937_64 rng(seed);
  double total = 0;
  const int reps = 8;
  for (int i = 0; i < reps; ++i) {
    auto [x, y] = batch(data, 256, C, rng);
    total += cross_entropy(m.logits(x), y).item();
  }
  return total / reps;
}

int run_demo(const std::vector<std::string>& argv) {
  Args args(argv, {"data", "bytes", "steps", "batch", "context", "lr", "seed", "out"}, {"help"});
  if (args.flag("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const std::string path = args.str("data", "../shared/data/qmsum/val.jsonl");
  const int64_t max_bytes = args.integer("bytes", 300000), steps = args.integer("steps", 800);
  const int64_t B = args.integer("batch", 64), C = args.integer("context", 16);
  const double lr = args.real("lr", 3e-3);
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 1));
  const std::string out_dir = args.str("out", "runs/demo");

  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("demo: cannot open --data '" + path + "'");
  std::string text(static_cast<size_t>(max_bytes), '\0');
  in.read(text.data(), max_bytes);
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(text.size()) < 10 * (C + 1))
    throw std::runtime_error("demo: --data '" + path + "' has only " + std::to_string(text.size()) + " bytes");
  std::vector<int64_t> byte_to_id(256, -1);
  int64_t vocab = 0;
  for (unsigned char ch : text)
    if (byte_to_id[ch] < 0) byte_to_id[ch] = vocab++;
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = byte_to_id[static_cast<unsigned char>(text[i])];
  const size_t split = ids.size() * 9 / 10;
  std::vector<int64_t> train(ids.begin(), ids.begin() + split), val(ids.begin() + split, ids.end());
  std::printf("demo: %zu bytes from %s, vocab %lld, context %lld, %lld steps of %lld sequences\n", text.size(),
              path.c_str(), (long long)vocab, (long long)C, (long long)steps, (long long)B);

  Model model = init_model(vocab, C, 24, 256, seed);
  AdamWOptions opt;
  opt.lr = lr;
  opt.beta2 = 0.99;
  opt.weight_decay = 0.01;
  AdamW adamw(model.named(), opt);
  LinearWarmupCosine schedule(lr, steps / 20, steps, 0.1);
  const double initial_val = eval_loss(model, val, C, seed + 100);
  std::printf("step %5d  val loss %.4f (uniform would be %.4f)\n", 0, initial_val, std::log(double(vocab)));

  std::filesystem::create_directories(out_dir);
  std::ostringstream metrics;
  std::mt19937_64 rng(seed);
  auto t0 = std::chrono::steady_clock::now();
  double last_loss = 0;
  for (int64_t step = 0; step < steps; ++step) {
    auto [x, y] = batch(train, B, C, rng);
    adamw.set_lr(schedule.lr(step));
    Tensor loss = cross_entropy(model.logits(x), y);
    adamw.zero_grad();
    loss.backward();
    const double norm = clip_grad_norm(model.named(), 1.0);
    adamw.step();
    last_loss = loss.item();
    if ((step + 1) % 50 == 0 || step + 1 == steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      double tok_s = double((step + 1) * B) / secs;
      double eta = secs / double(step + 1) * double(steps - step - 1);
      std::printf("step %5lld/%lld  loss %.4f  grad-norm %.3f  lr %.2e  %.0f tokens/s  ETA %.1fs\n",
                  (long long)(step + 1), (long long)steps, last_loss, norm, schedule.lr(step), tok_s, eta);
      metrics << nlohmann::json{{"step", step + 1}, {"loss", last_loss}, {"grad_norm", norm}, {"lr", schedule.lr(step)},
                                {"tokens_per_s", tok_s}}
                     .dump()
              << "\n";
      write_file_atomic(out_dir + "/metrics.jsonl", metrics.str());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double final_val = eval_loss(model, val, C, seed + 100);

  // Greedy continuation of the first validation window, to see what was learned.
  std::vector<unsigned char> id_to_byte(static_cast<size_t>(vocab));
  for (int b = 0; b < 256; ++b)
    if (byte_to_id[b] >= 0) id_to_byte[byte_to_id[b]] = static_cast<unsigned char>(b);
  std::vector<int64_t> window(val.begin(), val.begin() + C);
  std::string sample;
  {
    NoGradGuard ng;
    for (int i = 0; i < 80; ++i) {
      Tensor logits = model.logits(from_vector<int64_t>(window, {1, C}, DType::I64));
      std::vector<float> l = logits.to_vector<float>();
      int64_t best = std::max_element(l.begin(), l.end()) - l.begin();
      sample.push_back(static_cast<char>(id_to_byte[best]));
      window.erase(window.begin());
      window.push_back(best);
    }
  }
  nlohmann::json results{{"data", path},           {"bytes", text.size()},       {"vocab", vocab},
                         {"steps", steps},         {"initial_val_loss", initial_val}, {"final_val_loss", final_val},
                         {"final_train_loss", last_loss}, {"seconds", secs}, {"tokens_per_s", double(steps * B) / secs},
                         {"sample", sample}};
  write_file_atomic(out_dir + "/results.json", results.dump(2) + "\n");
  std::printf("val loss %.4f -> %.4f in %.1fs; sample: %s\nresults: %s/results.json\n", initial_val, final_val, secs,
              nlohmann::json(sample).dump().c_str(), out_dir.c_str());
  if (!(final_val < initial_val - 0.5)) {
    std::fprintf(stderr, "demo: validation loss did not fall enough (%.4f -> %.4f)\n", initial_val, final_val);
    return 3;
  }
  return 0;
}

}  // namespace

LLOCO_COMMAND("demo", "train a char-level MLP LM on CPU (core smoke test)", run_demo);

}  // namespace lloco::apps
