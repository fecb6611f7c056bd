// LLoCO's latency figure (paper §4.5): time to first token and per-token decode latency against the
// document's length, for one decoder reading the document as tokens (the uncompressed baseline) and
// reading its AutoCompressor summary vectors instead (50 per 1536-token segment: LLoCO). Both then get
// the same --question prompt tokens and decode --new tokens greedily, batch 1, random weights. The
// offline compression is not timed (LLoCO does it once per document). A length the baseline cannot
// run (an allocation fails) is reported with its error and the sweep goes on.
//   lloco_latency_bench [--device cpu|cuda] [--layers N] [--hidden D --heads H --intermediate F]
//                       [--lengths 4096,8192,...] [--question 32] [--new 16] [--dtype bf16|f16|f32]
//                       [--json PATH] [--svg PATH]
// The defaults are LLaMA-2-7B's shape and the paper's 4k..128k sweep (for a GPU); a CPU shrinks the
// model with --layers/--hidden/--heads/--intermediate. Prints a table; JSON and SVG are written atomically.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/random_tokens.h"
#include "core/atomic_file.h"
#include "core/ops.h"
#include "eval/svg.h"
#include "models/generate.h"
#include "models/llama.h"

namespace lloco::bench {
namespace {

constexpr int64_t kSegment = 1536, kSummary = 50;  // lloco-method.md §1

struct Options {
  std::string device = "cpu";
  int64_t layers = 32, hidden = 4096, heads = 32, intermediate = 11008;
  std::vector<int64_t> lengths{4096, 8192, 16384, 32768, 65536, 131072};
  int64_t question = 32, new_tokens = 16;
  DType dtype = DType::BF16;
  std::string json, svg;
};

// One system at one document length.
struct Run {
  int64_t positions = 0;  // what the decoder reads before decoding: document (or vectors) + question
  double ttft_ms = 0, decode_ms = 0;
  std::string error;      // non-empty: the run failed (typically out of memory)
};

struct Row {
  int64_t length = 0;
  Run baseline, lloco;
};

Run timed(const models::LlamaModel& m, const std::vector<int32_t>& prompt, const Tensor& prefix, int64_t new_tokens) {
  Run r;
  models::GenerateOptions g;
  g.eos_ids = {-1};  // never stop early: every run decodes the same number of tokens
  g.max_new_tokens = new_tokens;
  if (prefix.defined()) g.prefix_embeddings = prefix;
  try {
    const models::GenerateResult out = models::generate(m, {prompt}, g);
    r.positions = out.prefill_tokens;
    r.ttft_ms = 1e3 * out.prefill_seconds;
    r.decode_ms = 1e3 * out.decode_seconds / static_cast<double>(new_tokens - 1);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

std::string cell(const Run& r, double value) {
  return r.error.empty() ? eval::fmt("%.1f", value) : std::string("failed");
}

nlohmann::json run_json(const Run& r) {
  nlohmann::json j = {{"positions", r.positions}};
  if (r.error.empty()) {
    j["ttft_ms"] = r.ttft_ms;
    j["decode_ms_per_token"] = r.decode_ms;
  } else {
    j["error"] = r.error;
  }
  return j;
}

// ms/token against document length (log2 x), one line per system; failed runs are left out.
std::string latency_svg(const std::string& title, const std::vector<Row>& rows) {
  const int W = 680, H = 380, left = 70, right = 190, top = 48, bottom = 56;
  const double w = W - left - right, h = H - top - bottom;
  double y_max = 0;
  for (const Row& r : rows) {
    if (r.baseline.error.empty()) y_max = std::max(y_max, r.baseline.decode_ms);
    if (r.lloco.error.empty()) y_max = std::max(y_max, r.lloco.decode_ms);
  }
  // Axis top: the smallest 1, 2 or 5 x 10^k above the slowest point, so the ticks are round.
  const double step = std::pow(10.0, std::floor(std::log10(y_max > 0 ? y_max : 1.0)));
  double top_value = 10 * step;
  for (const double m : {1.0, 2.0, 5.0})
    if (m * step >= y_max && m * step < top_value) top_value = m * step;
  y_max = top_value;
  const double x0 = std::log2(static_cast<double>(rows.front().length)), x1 = std::log2(static_cast<double>(rows.back().length));
  const auto px = [&](int64_t len) { return left + (x1 > x0 ? w * (std::log2(static_cast<double>(len)) - x0) / (x1 - x0) : w / 2); };
  const auto py = [&](double ms) { return top + h * (1.0 - ms / y_max); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" "
    << "font-size=\"11\">\n<rect width=\"" << W << "\" height=\"" << H << "\" fill=\"white\"/>\n"
    << "<text x=\"" << (left + w / 2) << "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">"
    << eval::xml_escape(title) << "</text>\n<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << w << "\" height=\"" << h
    << "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int k = 0; k <= 4; ++k)
    s << "<text x=\"" << left - 6 << "\" y=\"" << py(y_max * k / 4) + 4 << "\" text-anchor=\"end\">"
      << eval::fmt("%.3g", y_max * k / 4) << "</text>\n";
  for (const Row& r : rows)
    s << "<text x=\"" << px(r.length) << "\" y=\"" << top + h + 16 << "\" text-anchor=\"middle\">"
      << (r.length >= 1024 ? std::to_string(r.length / 1024) + "k" : std::to_string(r.length)) << "</text>\n";
  s << "<text x=\"" << left + w / 2 << "\" y=\"" << H - 16 << "\" text-anchor=\"middle\">document length (tokens)</text>\n"
    << "<text transform=\"translate(20 " << top + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">decode ms per token</text>\n";
  const struct { const char* name; const char* color; bool lloco; } lines[] = {{"baseline (tokens)", "#e15759", false},
                                                                               {"LLoCO (summary vectors)", "#4e79a7", true}};
  for (int i = 0; i < 2; ++i) {
    std::string points;
    for (const Row& r : rows) {
      const Run& run = lines[i].lloco ? r.lloco : r.baseline;
      if (!run.error.empty()) continue;
      points += eval::fmt("%.1f", px(r.length)) + "," + eval::fmt("%.1f", py(run.decode_ms)) + " ";
      s << "<circle cx=\"" << px(r.length) << "\" cy=\"" << py(run.decode_ms) << "\" r=\"4\" fill=\"" << lines[i].color
        << "\"><title>" << lines[i].name << ", " << r.length << " tokens: " << eval::fmt("%.2f", run.decode_ms)
        << " ms/token</title></circle>\n";
    }
    s << "<polyline points=\"" << points << "\" fill=\"none\" stroke=\"" << lines[i].color << "\" stroke-width=\"2\"/>\n"
      << "<text x=\"" << left + w + 10 << "\" y=\"" << top + 16 + 18 * i << "\" fill=\"" << lines[i].color << "\">"
      << lines[i].name << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

int run(const Options& o) {
  const Device device = o.device == "cuda" ? cuda(0) : cpu();
  models::LlamaConfig c = models::LlamaConfig::llama2_7b();
  c.num_layers = o.layers;
  c.hidden_size = o.hidden;
  c.num_heads = c.num_kv_heads = o.heads;
  c.intermediate_size = o.intermediate;
  int64_t longest = 0;
  for (const int64_t n : o.lengths) longest = std::max(longest, n);
  c.max_position_embeddings = longest + o.question + o.new_tokens;  // the baseline reads the whole document
  std::printf("lloco_latency_bench: %s, %lld layers, hidden %lld, %lld heads, MLP %lld, %s random weights, batch 1; "
              "question %lld tokens, %lld new tokens\n",
              o.device.c_str(), static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.num_heads), static_cast<long long>(c.intermediate_size), dtype_name(o.dtype),
              static_cast<long long>(o.question), static_cast<long long>(o.new_tokens));
  const auto t0 = std::chrono::steady_clock::now();
  const models::LlamaModel m = models::LlamaModel::random(c, 7, o.dtype, device);
  std::printf("weights drawn in %.1f s (%.3f B parameters)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              static_cast<double>(m.num_parameters()) / 1e9);
  const std::vector<int32_t> question = random_tokens(o.question, c.vocab_size, 5);
  timed(m, question, Tensor(), 2);  // warm-up: allocator, threads, kernels
  std::vector<Row> rows;
  std::printf("\n%9s | %-30s | %-30s |\n", "", "baseline: document as tokens", "LLoCO: its summary vectors");
  std::printf("%9s | %9s %10s %9s | %9s %10s %9s | %8s %8s\n", "doc tok", "positions", "TTFT ms", "ms/tok",
              "positions", "TTFT ms", "ms/tok", "TTFT x", "decode x");
  for (const int64_t n : o.lengths) {
    Row r;
    r.length = n;
    std::vector<int32_t> doc = random_tokens(n, c.vocab_size, 3);
    doc.insert(doc.end(), question.begin(), question.end());
    r.baseline = timed(m, doc, Tensor(), o.new_tokens);
    const int64_t vectors = kSummary * ((n + kSegment - 1) / kSegment);
    // Post-norm hidden states feed the decoder in LLoCO; their scale does not change the cost.
    const Tensor prefix = randn({1, vectors, c.hidden_size}, 11, o.dtype, device);
    r.lloco = timed(m, question, prefix, o.new_tokens);
    const bool both = r.baseline.error.empty() && r.lloco.error.empty();
    std::printf("%9lld | %9lld %10s %9s | %9lld %10s %9s | %8s %8s\n", static_cast<long long>(n),
                static_cast<long long>(r.baseline.error.empty() ? r.baseline.positions : n + o.question),
                cell(r.baseline, r.baseline.ttft_ms).c_str(), cell(r.baseline, r.baseline.decode_ms).c_str(),
                static_cast<long long>(r.lloco.positions), cell(r.lloco, r.lloco.ttft_ms).c_str(),
                cell(r.lloco, r.lloco.decode_ms).c_str(),
                both ? eval::fmt("%.2f", r.baseline.ttft_ms / r.lloco.ttft_ms).c_str() : "-",
                both ? eval::fmt("%.2f", r.baseline.decode_ms / r.lloco.decode_ms).c_str() : "-");
    if (!r.baseline.error.empty()) std::printf("          baseline failed: %s\n", r.baseline.error.c_str());
    if (!r.lloco.error.empty()) std::printf("          LLoCO failed: %s\n", r.lloco.error.c_str());
    std::fflush(stdout);
    rows.push_back(std::move(r));
  }
  std::printf("x: baseline time / LLoCO time at the same document length\n");
  if (!o.json.empty()) {
    nlohmann::json j = {{"device", o.device}, {"dtype", dtype_name(o.dtype)}, {"layers", c.num_layers},
                        {"hidden", c.hidden_size}, {"heads", c.num_heads}, {"intermediate", c.intermediate_size},
                        {"question_tokens", o.question}, {"new_tokens", o.new_tokens}, {"rows", nlohmann::json::array()}};
    for (const Row& r : rows)
      j["rows"].push_back({{"document_tokens", r.length}, {"baseline", run_json(r.baseline)}, {"lloco", run_json(r.lloco)}});
    write_file_atomic(o.json, j.dump(2) + "\n");
  }
  if (!o.svg.empty())
    write_file_atomic(o.svg, latency_svg("decode latency vs document length (" + o.device + ", " + std::to_string(c.num_layers) +
                                             " layers, hidden " + std::to_string(c.hidden_size) + ")",
                                         rows));
  return 0;
}

std::vector<int64_t> parse_list(const std::string& v) {
  std::vector<int64_t> out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) {
  lloco::bench::Options o;
  const auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--device cpu|cuda] [--layers N] [--hidden D] [--heads H] [--intermediate F] [--lengths A,B,...]\n"
                 "          [--question N] [--new N (>= 2)] [--dtype bf16|f16|f32] [--json PATH] [--svg PATH]\n",
                 argv[0]);
    return 2;
  };
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) return usage();
      const std::string v = argv[++i];
      if (a == "--device") o.device = v;
      else if (a == "--layers") o.layers = std::stoll(v);
      else if (a == "--hidden") o.hidden = std::stoll(v);
      else if (a == "--heads") o.heads = std::stoll(v);
      else if (a == "--intermediate") o.intermediate = std::stoll(v);
      else if (a == "--lengths") o.lengths = lloco::bench::parse_list(v);
      else if (a == "--question") o.question = std::stoll(v);
      else if (a == "--new") o.new_tokens = std::stoll(v);
      else if (a == "--dtype") o.dtype = lloco::dtype_from_name(v);
      else if (a == "--json") o.json = v;
      else if (a == "--svg") o.svg = v;
      else return usage();
    }
    bool ok = (o.device == "cpu" || o.device == "cuda") && o.layers >= 1 && o.hidden >= 1 && o.heads >= 1 &&
              o.hidden % o.heads == 0 && o.intermediate >= 1 && o.question >= 1 && o.new_tokens >= 2 && !o.lengths.empty();
    for (size_t i = 0; i < o.lengths.size(); ++i) ok = ok && o.lengths[i] >= 1 && (i == 0 || o.lengths[i] > o.lengths[i - 1]);
    if (!ok) {
      std::fprintf(stderr, "lloco_latency_bench: need --device cpu|cuda, positive sizes with --heads dividing --hidden "
                           "(%lld / %lld), --new >= 2, and increasing --lengths\n",
                   static_cast<long long>(o.hidden), static_cast<long long>(o.heads));
      return 2;
    }
    return lloco::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lloco_latency_bench: %s\n", e.what());
    return 1;
  }
}
