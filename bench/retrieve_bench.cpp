// Dense retrieval on the CPU, each row next to baselines measured in the same run:
//  - FlatIndex::search (inner product, d = 768 as Contriever's keys, k = 5) over 10k and 100k random
//    vectors with query batches of 1, 16 and 256. Baselines: OpenBLAS cblas_sgemm of the search's
//    [q, d] x [n, d]^T shape, lloco's `linear` alone on that shape (the GEMM part of a search; the rest
//    is the host top-k), and the host read bandwidth (bench/cpu_bandwidth.h) for the index scan.
//    Floors: a lone query is a GEMV, 2 flops per 4-byte index element, so it is bound by streaming the
//    n * d * 4 bytes (read bandwidth; a 10k index, 31 MB, may be served from cache and beat it). A batch
//    of q reuses each element q times (q / 2 flops per byte): by 16 queries the scan is near the
//    machine's balance point and at 256 it is compute-bound, so the floor is sgemm's GFLOP/s.
//  - A BERT-base-shaped encoder forward (random f32 weights, no padding), 8 x 128 and 1 x 512 tokens,
//    against the time its GEMM FLOPs would take at the sgemm rate of a representative
//    [tokens, 768] x [768, 3072] product (W in nn.Linear layout) measured in the same run.
//   retrieve_bench [--json=PATH] [--bert_layers=N] [benchmark flags]
// --bert_layers keeps the BERT-base layer shapes with fewer layers (default 12, the whole encoder).
// Ratio counters: of_sgemm (GFLOP/s over the median of the baseline sgemm registered before it; for the
// encoder that is its linear-layer FLOPs at the sgemm rate / its time, the "of floor" of the summary)
// and of_read_bw (index GB/s over the read bandwidth). The summary tables at the end and --json use
// the medians when --benchmark_repetitions > 1.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cpu_bandwidth.h"
#include "bench/random_tokens.h"
#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "models/bert.h"
#include "retrieve/vector_index.h"

namespace lloco::bench {
namespace {

constexpr int64_t kDim = 768;  // Contriever / BERT-base hidden size
constexpr int64_t kTopK = 5;   // LLoCO's retrieval baseline keeps the top 5 chunks

// ---------------------------------------------------------------- shared state

struct Shape {
  int64_t m, n, k;  // C[m, n] = A[m, k] @ B[n, k]^T
  double flops() const { return 2.0 * m * n * k; }
};

// What the reporter needs to turn a benchmark's counters into ratios and summary rows.
struct Meta {
  std::string baseline;  // registered name of the sgemm run of the same shape ("" for a baseline)
  bool scan = false;     // has an index scan GB/s to compare with the read bandwidth
};

std::map<std::string, Meta>& metas() {
  static std::map<std::string, Meta> m;
  return m;
}

double g_read_gbps = 0;
int64_t g_bert_layers = 12;

// ---------------------------------------------------------------- FlatIndex

// One index per size, built once: n standard-normal rows of width kDim.
const retrieve::FlatIndex& flat_index(int64_t n) {
  static std::map<int64_t, std::unique_ptr<retrieve::FlatIndex>> cache;
  auto& slot = cache[n];
  if (!slot) {
    slot = std::make_unique<retrieve::FlatIndex>(kDim, retrieve::VectorMetric::InnerProduct);
    slot->add(randn({n, kDim}, 11));
  }
  return *slot;
}

void set_scan_counters(benchmark::State& state, int64_t n, int64_t q) {
  const double it = static_cast<double>(state.iterations());
  state.counters["queries/s"] = benchmark::Counter(it * q, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(it * 2.0 * q * n * kDim / 1e9, benchmark::Counter::kIsRate);
  state.counters["index_GB/s"] = benchmark::Counter(it * n * kDim * 4.0 / 1e9, benchmark::Counter::kIsRate);
}

void bm_search(benchmark::State& state, int64_t n, int64_t q) {
  const retrieve::FlatIndex& index = flat_index(n);
  const Tensor queries = randn({q, kDim}, 12);  // [q, d]
  for (auto _ : state) {
    auto hits = index.search(queries, kTopK);
    benchmark::DoNotOptimize(hits.data());
  }
  set_scan_counters(state, n, q);
}

// The GEMM of a search as FlatIndex runs it (q @ base^T through lloco's linear), without the top-k.
void bm_search_gemm(benchmark::State& state, int64_t n, int64_t q) {
  const std::vector<float>& vectors = flat_index(n).vectors();
  const Tensor base = from_vector(vectors, {n, kDim});  // [n, d]
  const Tensor queries = randn({q, kDim}, 12);         // [q, d]
  for (auto _ : state) {
    const Tensor scores = linear(queries, base);  // [q, n]
    benchmark::DoNotOptimize(scores.data_ptr());
  }
  set_scan_counters(state, n, q);
}

void bm_sgemm(benchmark::State& state, Shape s, const float* b_data) {
  const std::vector<float> a = randn({s.m, s.k}, 12).to_vector<float>();
  std::vector<float> b_own;
  if (b_data == nullptr) {
    b_own = randn({s.n, s.k}, 13).to_vector<float>();
    b_data = b_own.data();
  }
  std::vector<float> c(static_cast<size_t>(s.m * s.n));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(s.m), static_cast<int>(s.n),
                static_cast<int>(s.k), 1.0f, a.data(), static_cast<int>(s.k), b_data, static_cast<int>(s.k), 0.0f,
                c.data(), static_cast<int>(s.n));
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * s.flops() / 1e9, benchmark::Counter::kIsRate);
}

void bm_sgemm_index(benchmark::State& state, int64_t n, int64_t q) {
  bm_sgemm(state, {q, n, kDim}, flat_index(n).vectors().data());
}

// ---------------------------------------------------------------- BERT encoder

// BERT-base shapes with g_bert_layers layers, weights N(0, 0.02) as BERT's initializer, LayerNorm
// gains 1, drawn once.
const models::BertModel& bert() {
  static std::unique_ptr<models::BertModel> model;
  if (!model) {
    models::BertConfig config = models::BertConfig::bert_base();
    config.num_layers = g_bert_layers;
    models::BertModel shapes;
    shapes.config = config;
    std::vector<std::pair<std::string, Tensor>> tensors;
    uint64_t seed = 100;
    for (const models::BertParamSlot& slot : shapes.parameter_slots()) {
      const bool gain = slot.name.ends_with("LayerNorm.weight");
      tensors.emplace_back(slot.name, gain ? ones(slot.shape) : mul(randn(slot.shape, seed++), 0.02));
    }
    model = std::make_unique<models::BertModel>(models::bert_from_tensors(config, tensors, "random bert-base"));
  }
  return *model;
}

// Per token per layer: Q, K, V, O projections (4 D^2 MACs) and the MLP (2 D F MACs).
double bert_linear_flops(int64_t tokens) {
  const models::BertConfig c = models::BertConfig::bert_base();
  return 2.0 * static_cast<double>(tokens) * g_bert_layers *
         (4.0 * c.hidden_size * c.hidden_size + 2.0 * c.hidden_size * c.intermediate_size);
}

// Scores and probabilities x values per layer: 2 T^2 D MACs per sequence.
double bert_attention_flops(int64_t batch, int64_t seq) {
  return 4.0 * batch * static_cast<double>(seq) * seq * kDim * g_bert_layers;
}

void bm_bert(benchmark::State& state, int64_t batch, int64_t seq) {
  const models::BertModel& m = bert();
  NoGradGuard no_grad;
  const Tensor ids = from_vector(random_tokens(batch * seq, m.config.vocab_size, 5), {batch, seq}, DType::I32);
  for (auto _ : state) {
    const Tensor h = m.forward(ids);  // [B, T, D]
    benchmark::DoNotOptimize(h.data_ptr());
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(it * batch * seq, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(it * bert_linear_flops(batch * seq) / 1e9, benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------- reporting

struct Summary {
  double gflops = 0, index_gbps = 0, qps = 0, tokens_per_s = 0, real_s = 0;
};

double counter(const benchmark::BenchmarkReporter::Run& r, const char* name) {
  auto it = r.counters.find(name);
  return it == r.counters.end() ? 0.0 : static_cast<double>(it->second);
}

// Adds the ratio counters (the baseline ran earlier: it is registered first) and keeps one summary per
// benchmark: its median aggregate when repetitions give one, else the median of its iteration runs.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, Summary> summary;

  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> out = runs;
    for (Run& r : out) {
      const bool ratio_row = r.run_type == Run::RT_Iteration || r.aggregate_name == "mean" || r.aggregate_name == "median";
      auto meta = metas().find(r.run_name.function_name);
      if (!ratio_row || meta == metas().end()) continue;
      const Summary* base = find(meta->second.baseline);
      if (base != nullptr && base->gflops > 0) r.counters["of_sgemm"] = counter(r, "GFLOP/s") / base->gflops;
      if (meta->second.scan && g_read_gbps > 0) r.counters["of_read_bw"] = counter(r, "index_GB/s") / g_read_gbps;
    }
    record(out);
    ConsoleReporter::ReportRuns(out);
  }

  const Summary* find(const std::string& name) const {
    auto it = summary.find(name);
    return it == summary.end() ? nullptr : &it->second;
  }

 private:
  static Summary of(const Run& r) {
    const double it = static_cast<double>(r.iterations);
    return {counter(r, "GFLOP/s"), counter(r, "index_GB/s"), counter(r, "queries/s"), counter(r, "tokens/s"),
            it > 0 ? r.real_accumulated_time / it : 0.0};
  }

  void record(const std::vector<Run>& runs) {
    std::map<std::string, std::vector<Summary>> iterations;
    std::map<std::string, Summary> medians;
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") medians[r.run_name.function_name] = of(r);
      if (r.run_type == Run::RT_Iteration) iterations[r.run_name.function_name].push_back(of(r));
    }
    for (const auto& [name, m] : medians) summary[name] = m;
    for (auto& [name, rows] : iterations) {
      if (medians.count(name)) continue;
      std::sort(rows.begin(), rows.end(), [](const Summary& a, const Summary& b) { return a.real_s < b.real_s; });
      summary[name] = rows[rows.size() / 2];
    }
  }
};

const std::vector<int64_t> kIndexSizes{10'000, 100'000};
const std::vector<int64_t> kQueryBatches{1, 16, 256};
const std::vector<std::pair<int64_t, int64_t>> kBertShapes{{8, 128}, {1, 512}};

std::string index_name(const char* what, int64_t n, int64_t q) {
  return std::string("flat_ip/") + what + "/n" + std::to_string(n) + "/q" + std::to_string(q);
}
std::string bert_name(int64_t batch, int64_t seq) {
  return "bert_base/forward/b" + std::to_string(batch) + "x" + std::to_string(seq);
}
std::string bert_sgemm_name(int64_t tokens) { return "bert_base/sgemm_ffn_in/m" + std::to_string(tokens); }

void register_all() {
  for (int64_t n : kIndexSizes)
    for (int64_t q : kQueryBatches) {
      const std::string base = index_name("sgemm", n, q);
      benchmark::RegisterBenchmark(base.c_str(), bm_sgemm_index, n, q)->UseRealTime();
      metas()[base] = {};
      for (const char* what : {"gemm", "search"}) {
        const std::string name = index_name(what, n, q);
        if (std::strcmp(what, "gemm") == 0)
          benchmark::RegisterBenchmark(name.c_str(), bm_search_gemm, n, q)->UseRealTime();
        else
          benchmark::RegisterBenchmark(name.c_str(), bm_search, n, q)->UseRealTime();
        metas()[name] = {base, true};
      }
    }
  for (const auto& [batch, seq] : kBertShapes) {
    const std::string base = bert_sgemm_name(batch * seq);
    const Shape ffn_in{batch * seq, 3072, kDim};
    benchmark::RegisterBenchmark(base.c_str(), bm_sgemm, ffn_in, nullptr)->UseRealTime();
    metas()[base] = {};
    const std::string name = bert_name(batch, seq);
    benchmark::RegisterBenchmark(name.c_str(), bm_bert, batch, seq)->UseRealTime()->Unit(benchmark::kMillisecond);
    metas()[name] = {base, false};
  }
}

void print_and_write(const RatioReporter& rep, const std::string& json_path) {
  std::ostringstream js;
  js << "{\n  \"threads\": " << omp_get_max_threads() << ", \"read_GB/s\": " << g_read_gbps
     << ", \"dim\": " << kDim << ", \"k\": " << kTopK << ",\n  \"flat_ip\": [";
  std::printf("\nread bandwidth (same run): %.1f GB/s, %d threads; medians\n", g_read_gbps, omp_get_max_threads());
  std::printf("%8s %5s %12s %10s %9s %9s %10s %9s %9s %9s %9s\n", "n", "q", "queries/s", "index GB/s", "of read",
              "search GF", "gemm GF/s", "sgemm GF", "search/sg", "gemm/sg", "top-k %");
  bool first = true;
  for (int64_t n : kIndexSizes)
    for (int64_t q : kQueryBatches) {
      const Summary* s = rep.find(index_name("search", n, q));
      const Summary* g = rep.find(index_name("gemm", n, q));
      const Summary* b = rep.find(index_name("sgemm", n, q));
      if (s == nullptr || g == nullptr || b == nullptr) continue;
      const double read_frac = g_read_gbps > 0 ? s->index_gbps / g_read_gbps : 0.0;
      const double topk_share = s->real_s > 0 ? std::max(0.0, 1.0 - g->real_s / s->real_s) : 0.0;
      std::printf("%8lld %5lld %12.1f %10.1f %9.2f %9.1f %10.1f %9.1f %9.2f %9.2f %9.0f\n", static_cast<long long>(n),
                  static_cast<long long>(q), s->qps, s->index_gbps, read_frac, s->gflops, g->gflops, b->gflops,
                  s->gflops / b->gflops, g->gflops / b->gflops, 100 * topk_share);
      js << (first ? "\n" : ",\n") << "    {\"n\": " << n << ", \"q\": " << q << ", \"search_s\": " << s->real_s
         << ", \"queries/s\": " << s->qps << ", \"index_GB/s\": " << s->index_gbps << ", \"of_read_bw\": " << read_frac
         << ", \"search_GFLOP/s\": " << s->gflops << ", \"gemm_GFLOP/s\": " << g->gflops
         << ", \"sgemm_GFLOP/s\": " << b->gflops << ", \"search_of_sgemm\": " << s->gflops / b->gflops
         << ", \"gemm_of_sgemm\": " << g->gflops / b->gflops << ", \"topk_share\": " << topk_share << "}";
      first = false;
    }
  js << "\n  ],\n  \"bert_layers\": " << g_bert_layers << ",\n  \"bert\": [";
  std::printf("\nBERT-base shapes, %lld layers, f32, random weights\n", static_cast<long long>(g_bert_layers));
  std::printf("%10s %10s %10s %10s %10s %10s %10s %10s\n", "shape", "ms", "ms/layer", "tokens/s", "GEMM GF/s",
              "sgemm GF", "of floor", "attn %FL");
  first = true;
  for (const auto& [batch, seq] : kBertShapes) {
    const Summary* f = rep.find(bert_name(batch, seq));
    const Summary* b = rep.find(bert_sgemm_name(batch * seq));
    if (f == nullptr || b == nullptr) continue;
    const double linear = bert_linear_flops(batch * seq), attn = bert_attention_flops(batch, seq);
    const double floor_s = linear / (b->gflops * 1e9);
    const std::string shape = std::to_string(batch) + "x" + std::to_string(seq);
    std::printf("%10s %10.1f %10.2f %10.1f %10.1f %10.1f %10.2f %10.1f\n", shape.c_str(), 1e3 * f->real_s,
                1e3 * f->real_s / g_bert_layers, f->tokens_per_s, f->gflops, b->gflops, floor_s / f->real_s,
                100 * attn / (linear + attn));
    js << (first ? "\n" : ",\n") << "    {\"batch\": " << batch << ", \"seq\": " << seq << ", \"forward_s\": " << f->real_s
       << ", \"ms_per_layer\": " << 1e3 * f->real_s / g_bert_layers << ", \"tokens/s\": " << f->tokens_per_s
       << ", \"linear_GFLOP\": " << linear / 1e9 << ", \"attention_GFLOP\": " << attn / 1e9
       << ", \"linear_GFLOP/s\": " << f->gflops << ", \"sgemm_GFLOP/s\": " << b->gflops
       << ", \"of_gemm_floor\": " << floor_s / f->real_s << "}";
    first = false;
  }
  js << "\n  ]\n}\n";
  std::printf("of floor: (encoder linear-layer FLOPs / same-run sgemm GFLOP/s of [tokens, 768] x [768, 3072]) / "
              "forward time; attn %%FL: attention score/value FLOPs, not in the floor\n");
  if (!json_path.empty()) {
    AtomicFile f(json_path);
    f.write(js.str());
    f.commit();
  }
}

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) {
  using namespace lloco::bench;
  std::string json_path;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--json=", 0) == 0) {
      json_path = a.substr(7);
    } else if (a.rfind("--bert_layers=", 0) == 0) {
      g_bert_layers = std::stoll(a.substr(14));
      if (g_bert_layers < 1) {
        std::fprintf(stderr, "retrieve_bench: --bert_layers must be >= 1, got %lld\n",
                     static_cast<long long>(g_bert_layers));
        return 2;
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  int nargs = static_cast<int>(args.size());
  try {
    register_all();
    benchmark::Initialize(&nargs, args.data());
    if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 2;
    g_read_gbps = cpu_read_gbps();
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_and_write(reporter, json_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "retrieve_bench failed: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
