#include "apps/pipeline.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <span>

#include "apps/sharded.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/prompts.h"
#include "train/data_order.h"
#ifdef LLOCO_WITH_CUDA
#include "cuda/cuda.h"
#endif

namespace lloco::apps {

namespace fs = std::filesystem;

namespace {

// Linux (>= 4.0) resets VmHWM to the current resident set when "5" is written to clear_refs, which
// turns the process-wide high-water mark into one per predict_dataset call.
bool reset_host_peak() {
  const int fd = ::open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

// VmHWM in bytes; getrusage's ru_maxrss (kB on Linux, never reset) where /proc is unavailable.
double host_peak_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return 1024.0 * std::stod(line.substr(6));
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return 1024.0 * static_cast<double>(u.ru_maxrss);
}

}  // namespace

compress::StoreManifest compress_dataset(const compress::AutoCompressor& encoder, const eval::DatasetFile& data,
                                         const models::Tokenizer& tok, const std::string& dir,
                                         const compress::CorpusOptions& options, const std::string& group,
                                         Communicator* comm) {
  const std::set<std::string> stored = compress::stored_ids(dir);
  std::vector<compress::TokenizedDoc> docs;
  for (const eval::Document& d : data.documents)
    if (d.text && !stored.count(d.id)) docs.push_back({d.id, {}, group, *d.text});
  const auto tokenize = [&tok](const std::string& text) {
    return models::encode_long_document(tok, text, 10000, compress::kMaxDocumentTokens);
  };
  SingleProcessCommunicator one;
  return compress_sharded(comm ? *comm : one, encoder, std::move(docs), dir, options, tokenize);
}

std::vector<lora::QaExample> qa_examples(const eval::DatasetFile& data, const models::Tokenizer& tok,
                                         const ContextOptions& context, Device device) {
  ContextBuilder builder(tok, context, device, /*keep_all=*/true);  // a document's vectors loaded once, shared
  std::vector<lora::QaExample> out;
  for (const eval::Example& ex : data.examples) {
    ContextInput in = builder.build(ex);
    out.push_back({std::move(in.prefix), std::move(in.prompt), tok.encode(eval::answer_target(ex), false, true)});
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> read_prediction_lines(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> lines;
  std::set<std::string> seen;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("id") && j["id"].is_string() && j.contains("prediction") &&
        seen.insert(j["id"].get<std::string>()).second)
      lines.emplace_back(j["id"].get<std::string>(), line);
  }
  return lines;
}

PredictCost read_predict_cost(const std::string& path, size_t max_examples) {
  PredictCost c;
  if (!fs::exists(path)) return c;
  std::ifstream f(path);
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (!j.is_object() || j.value("examples", size_t{0}) > max_examples) return c;
  c.examples = j.value("examples", size_t{0});
  c.context_positions = j.value("context_positions", 0.0);
  c.prefill_seconds = j.value("prefill_seconds", 0.0);
  c.decode_seconds = j.value("decode_seconds", 0.0);
  c.decode_tokens = j.value("decode_tokens", 0.0);
  c.peak_host_bytes = j.value("peak_host_bytes", 0.0);
  c.peak_host_process_wide = j.value("peak_host_process_wide", false);
  c.peak_device_bytes = j.value("peak_device_bytes", 0.0);
  return c;
}

void write_predict_cost(const std::string& path, const PredictCost& c) {
  write_file_atomic(path, nlohmann::json{{"examples", c.examples}, {"context_positions", c.context_positions},
                                         {"prefill_seconds", c.prefill_seconds}, {"decode_seconds", c.decode_seconds},
                                         {"decode_tokens", c.decode_tokens}, {"peak_host_bytes", c.peak_host_bytes},
                                         {"peak_host_process_wide", c.peak_host_process_wide},
                                         {"peak_device_bytes", c.peak_device_bytes}}
                                  .dump() + "\n");
}

PredictCount predict_dataset(const models::LlamaModel& model, const models::Tokenizer& tok, const eval::DatasetFile& data,
                             const std::string& out, const PredictOptions& o) {
  // Predictions kept from an earlier run.
  std::vector<std::string> lines;
  std::set<std::string> done;
  for (auto& [id, line] : read_prediction_lines(out)) {
    done.insert(id);
    lines.push_back(std::move(line));
  }
  PredictCount count;
  const std::string cost_path = out + ".cost.json";
  count.cost = read_predict_cost(cost_path, done.size());  // what earlier runs spent on the predictions kept above
  const bool host_peak_reset = reset_host_peak();
  bool device_peak = false;  // the CUDA allocator's peak, reset for this call (needs the cuda library)
#ifdef LLOCO_WITH_CUDA
  if (model.embed_tokens.device().type == DeviceType::CUDA) {
    cuda_allocator_reset_peak();
    device_peak = true;
  }
#endif
  ContextBuilder context(tok, o, model.embed_tokens.device());
  models::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.eos_ids = {tok.eos_id()};
  const double earlier_host_peak = count.cost.peak_host_bytes, earlier_device_peak = count.cost.peak_device_bytes;
  const bool earlier_process_wide = count.cost.peak_host_process_wide;
  const auto save = [&] {
    if (count.added > 0) {  // this call's peaks so far, merged with those of earlier runs
      count.cost.peak_host_bytes = std::max(earlier_host_peak, host_peak_bytes());
      count.cost.peak_host_process_wide = earlier_process_wide || !host_peak_reset;
      if (device_peak) count.cost.peak_device_bytes = std::max(earlier_device_peak, static_cast<double>(allocator_for(DeviceType::CUDA).peak_bytes()));
    }
    std::string text;
    for (const std::string& l : lines) text += l + "\n";
    write_file_atomic(out, text);
    write_predict_cost(cost_path, count.cost);
  };
  size_t todo = 0;
  for (const eval::Example& ex : data.examples) todo += done.count(ex.id) ? 0 : 1;
  const auto t0 = std::chrono::steady_clock::now();
  for (const eval::Example& ex : data.examples) {
    if (done.count(ex.id)) continue;
    ContextInput in = context.build(ex);
    g.prefix_embeddings = in.prefix.defined() ? in.prefix.unsqueeze(0) : Tensor();
    const models::GenerateResult r = models::generate(model, {in.prompt}, g);
    count.cost.examples += 1;
    count.cost.context_positions +=
        static_cast<double>(r.prefill_tokens);
    count.cost.prefill_seconds += r.prefill_seconds;
    count.cost.decode_seconds += r.decode_seconds;
    count.cost.decode_tokens += static_cast<double>(r.decode_tokens);
    std::vector<int32_t> ids = r.tokens[0];
    if (!ids.empty() && ids.back() == tok.eos_id()) ids.pop_back();
    lines.push_back(nlohmann::json{{"id", ex.id}, {"prediction", tok.decode(ids)}}.dump());
    done.insert(ex.id);
    ++count.added;
    if (count.added % static_cast<size_t>(std::max<int64_t>(1, o.save_every)) == 0) save();
    if (!o.quiet) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rpredicted %zu/%zu  %.1f examples/s  ETA %.0f s   ", count.added, todo,
                   static_cast<double>(count.added) / secs, static_cast<double>(todo - count.added) * secs / count.added);
    }
  }
  if (count.added > 0 || !fs::exists(out)) save();
  if (!o.quiet && count.added > 0) std::fprintf(stderr, "\n");
  count.total = done.size();
  return count;
}

eval::DatasetFile sample_examples(eval::DatasetFile data, int64_t n, uint64_t seed) {
  const int64_t total = static_cast<int64_t>(data.examples.size());
  if (n <= 0 || n >= total) return data;
  std::vector<int64_t> keep = train::epoch_order(total, seed, 0);
  keep.resize(static_cast<size_t>(n));
  std::sort(keep.begin(), keep.end());
  std::vector<eval::Example> examples;
  std::set<std::string> doc_ids;
  for (const int64_t i : keep) {
    doc_ids.insert(data.examples[static_cast<size_t>(i)].doc_id);
    examples.push_back(std::move(data.examples[static_cast<size_t>(i)]));
  }
  data.examples = std::move(examples);
  std::erase_if(data.documents, [&](const eval::Document& d) { return !doc_ids.count(d.id); });
  return data;
}

}  // namespace lloco::apps
