// `lloco run CONFIG.yaml`: the main job. For each dataset of the config: compress its documents into
// a store, fine-tune the group's adapter on its training QA pairs, answer its evaluation questions
// with every requested system, score them with the dataset's metric, and collect one results table
// (results.{md,json}; eval's per-system tables under eval/<system>/) in the run directory. Every
// stage resumes from its outputs.
// The YAML is parsed and validated here (the only place configs are read) into RunConfig.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/pipeline.h"
#include "compress/autocompressor.h"
#include "compress/store.h"
#include "core/atomic_file.h"
#include "eval/readers.h"
#include "eval/runner.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco run CONFIG.yaml [--run-dir DIR] [--root DIR] [--quiet]

Runs an experiment config (see configs/): compress -> fine-tune one adapter per dataset (group) ->
predict with each system -> evaluate, into the run directory (default: runs/<name>). Relative paths
in the config resolve against --root (default: the config's directory). Re-running continues.

Systems: lloco (summary vectors + the dataset's adapter), compressed (summary vectors, no adapter:
AutoCompressor out of the box), no_context (the prompt alone), truncated_text (the document as text
cut to predict.text_budget = 4,000 tokens with the prompt: LLoCO's "with context" baseline),
retrieved_text (LLoCO's "retrieval" baseline: the document cut into predict.retrieval_chunk_tokens =
512-token chunks, the predict.retrieval_top_k = 5 best for the question, in document order, as text
within the same budget; ranked by BM25 where LLoCO used Contriever, whose weights we do not have).

results.md: each system's score per dataset, then its cost: context positions per question, time to
first token, decode speed and peak memory (host resident set and CUDA allocator live bytes, both reset
before each system's predictions; a host peak the kernel could not reset is marked (process)).
)";

struct DatasetEntry {
  std::string name, format = "auto", train, eval;
};
struct RunConfig {
  std::string name, encoder, decoder, tokenizer, device = "cpu", dtype;
  compress::CompressOptions compress;
  int64_t docs_per_shard = 64;
  lora::AdapterTrainOptions finetune;
  double epochs = 3.0;
  int64_t steps = 0;  // 0: from epochs
  lora::LoraConfig lora;
  int64_t max_new_tokens = 50, text_budget = 4000;
  int64_t retrieval_chunk_tokens = 512, retrieval_top_k = 5;  // retrieved_text
  std::vector<std::string> systems{"lloco"};
  std::vector<DatasetEntry> datasets;
};

// Throws "config: <where>: ..." with the YAML line when the node has one.
[[noreturn]] void bad(const YAML::Node& n, const std::string& where, const std::string& what) {
  const std::string line = n.Mark().line >= 0 ? " (line " + std::to_string(n.Mark().line + 1) + ")" : "";
  throw std::runtime_error("config: " + where + line + ": " + what);
}

void only_keys(const YAML::Node& n, const std::string& where, const std::set<std::string>& allowed) {
  if (!n.IsMap()) bad(n, where, "must be a mapping");
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
      bad(kv.first, where + "." + key, "unknown key (allowed: " + list + ")");
    }
  }
}

template <typename T>
void read(const YAML::Node& parent, const char* key, const std::string& where, T& out) {
  const YAML::Node n = parent[key];
  if (!n) return;
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    bad(n, where + "." + key, "cannot read '" + YAML::Dump(n) + "' as the expected type");
  }
}

std::string resolve(const std::string& path, const fs::path& root) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (root / path).string();
}

RunConfig parse_config(const std::string& path, const fs::path& root) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("config: " + path + ": " + e.what());
  }
  only_keys(y, "config", {"name", "encoder", "decoder", "tokenizer", "device", "dtype", "compress", "finetune", "predict",
                          "systems", "datasets"});
  RunConfig c;
  read(y, "name", "config", c.name);
  read(y, "encoder", "config", c.encoder);
  read(y, "decoder", "config", c.decoder);
  read(y, "tokenizer", "config", c.tokenizer);
  read(y, "device", "config", c.device);
  read(y, "dtype", "config", c.dtype);
  if (c.name.empty()) bad(y, "config.name", "is required");
  if (c.encoder.empty()) bad(y, "config.encoder", "is required (an AutoCompressor directory)");
  c.encoder = resolve(c.encoder, root);
  c.decoder = c.decoder.empty() ? c.encoder : resolve(c.decoder, root);
  c.tokenizer = c.tokenizer.empty() ? (fs::path(c.decoder) / "tokenizer.model").string() : resolve(c.tokenizer, root);
  if (const YAML::Node n = y["compress"]) {
    only_keys(n, "config.compress", {"segment_length", "docs_per_shard"});
    read(n, "segment_length", "config.compress", c.compress.segment_length);
    read(n, "docs_per_shard", "config.compress", c.docs_per_shard);
  }
  if (const YAML::Node n = y["finetune"]) {
    const std::string w = "config.finetune";
    only_keys(n, w, {"epochs", "steps", "batch_size", "grad_accum", "lr", "schedule", "warmup_ratio", "weight_decay",
                     "max_grad_norm", "rank", "alpha", "dropout", "seed", "checkpoint_every"});
    read(n, "epochs", w, c.epochs);
    read(n, "steps", w, c.steps);
    read(n, "batch_size", w, c.finetune.batch_size);
    read(n, "grad_accum", w, c.finetune.loop.grad_accumulation);
    read(n, "lr", w, c.finetune.lr);
    read(n, "schedule", w, c.finetune.schedule);
    read(n, "warmup_ratio", w, c.finetune.warmup_ratio);
    read(n, "weight_decay", w, c.finetune.weight_decay);
    read(n, "max_grad_norm", w, c.finetune.loop.max_grad_norm);
    read(n, "rank", w, c.lora.rank);
    read(n, "alpha", w, c.lora.alpha);
    read(n, "dropout", w, c.lora.dropout);
    read(n, "seed", w, c.finetune.seed);
    read(n, "checkpoint_every", w, c.finetune.loop.checkpoint_every);
  } else {
    c.finetune.loop.grad_accumulation = 8;  // LLoCO: 4 GPUs x 1 x 2
  }
  if (const YAML::Node n = y["predict"]) {
    const std::string w = "config.predict";
    only_keys(n, w, {"max_new_tokens", "text_budget", "retrieval_chunk_tokens", "retrieval_top_k"});
    read(n, "max_new_tokens", w, c.max_new_tokens);
    read(n, "text_budget", w, c.text_budget);
    read(n, "retrieval_chunk_tokens", w, c.retrieval_chunk_tokens);
    read(n, "retrieval_top_k", w, c.retrieval_top_k);
    const std::pair<const char*, int64_t> counts[] = {{"max_new_tokens", c.max_new_tokens},
                                                      {"text_budget", c.text_budget},
                                                      {"retrieval_chunk_tokens", c.retrieval_chunk_tokens},
                                                      {"retrieval_top_k", c.retrieval_top_k}};
    for (const auto& [key, value] : counts)
      if (value <= 0) bad(n[key], w + "." + key, "must be positive, got " + std::to_string(value));
  }
  if (const YAML::Node n = y["systems"]) {
    read(y, "systems", "config", c.systems);
    for (const std::string& s : c.systems)
      if (s != "lloco" && s != "compressed" && s != "no_context" && s != "truncated_text" && s != "retrieved_text")
        bad(n, "config.systems",
            "unknown system '" + s + "' (lloco, compressed, no_context, truncated_text, retrieved_text)");
  }
  const YAML::Node ds = y["datasets"];
  if (!ds || !ds.IsSequence() || ds.size() == 0) bad(y, "config.datasets", "must be a non-empty list");
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string w = "config.datasets[" + std::to_string(i) + "]";
    only_keys(ds[i], w, {"name", "format", "train", "eval"});
    DatasetEntry d;
    read(ds[i], "name", w, d.name);
    read(ds[i], "format", w, d.format);
    read(ds[i], "train", w, d.train);
    read(ds[i], "eval", w, d.eval);
    if (d.name.empty()) bad(ds[i], w + ".name", "is required (the dataset, as `lloco eval --dataset` names it)");
    if (d.eval.empty()) bad(ds[i], w + ".eval", "is required (the file to answer and score)");
    d.train = resolve(d.train, root);
    d.eval = resolve(d.eval, root);
    c.datasets.push_back(d);
  }
  return c;
}

struct Row {
  std::string metric;
  size_t n = 0;
  std::map<std::string, double> score;  // system -> score (x100)
  std::map<std::string, apps::PredictCost> cost;
};

// results.json and results.md in the run directory: one row per dataset, one column per system.
void write_results(const fs::path& run_dir, const RunConfig& c, const std::map<std::string, Row>& table) {
  nlohmann::json j = {{"name", c.name}, {"systems", c.systems}, {"datasets", nlohmann::json::object()}};
  std::string md = "# " + c.name + "\n\n| dataset | metric | n |";
  for (const std::string& s : c.systems) md += " " + s + " |";
  md += "\n|---|---|---|";
  for (size_t i = 0; i < c.systems.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& [name, row] : table) {
    j["datasets"][name] = {{"metric", row.metric}, {"n", row.n}, {"scores", row.score}};
    char buf[64];
    md += "| " + name + " | " + row.metric + " | " + std::to_string(row.n) + " |";
    for (const std::string& s : c.systems) {
      const auto it = row.score.find(s);
      std::snprintf(buf, sizeof(buf), " %.2f |", it == row.score.end() ? 0.0 : it->second);
      md += it == row.score.end() ? std::string(" - |") : std::string(buf);
    }
    md += "\n";
  }
  // Cost next to quality: what the decoder read per question, time to first token, decode speed and
  // peak memory (per system: predict_dataset resets both peaks before its predictions).
  md += "\n| dataset | system | context positions / question | TTFT ms | decode tokens/s | peak host MiB | "
        "peak device MiB |\n|---|---|---|---|---|---|---|\n";
  constexpr double kMiB = 1024.0 * 1024.0;
  for (const auto& [name, row] : table)
    for (const auto& [system, cost] : row.cost) {
      const double n = std::max<double>(1.0, static_cast<double>(cost.examples));
      char device_peak[32] = "-";  // CPU runs have no device allocator to report
      if (cost.peak_device_bytes > 0) std::snprintf(device_peak, sizeof(device_peak), "%.0f", cost.peak_device_bytes / kMiB);
      char buf[256];
      std::snprintf(buf, sizeof(buf), "| %s | %s | %.0f | %.1f | %.1f | %.0f%s | %s |\n", name.c_str(), system.c_str(),
                    cost.context_positions / n, 1e3 * cost.prefill_seconds / n,
                    cost.decode_seconds > 0 ? cost.decode_tokens / cost.decode_seconds : 0.0,
                    cost.peak_host_bytes / kMiB, cost.peak_host_process_wide ? " (process)" : "", device_peak);
      md += buf;
      j["datasets"][name]["cost"][system] = {
          {"context_positions_per_question", cost.context_positions / n},
          {"ttft_ms", 1e3 * cost.prefill_seconds / n},
          {"decode_tokens_per_s", cost.decode_seconds > 0 ? cost.decode_tokens / cost.decode_seconds : 0.0},
          {"peak_host_bytes", cost.peak_host_bytes},
          {"peak_host_process_wide", cost.peak_host_process_wide},
          {"peak_device_bytes", cost.peak_device_bytes > 0 ? nlohmann::json(cost.peak_device_bytes) : nlohmann::json()}};
    }
  md += "\nPeak memory per system, reset before its predictions and including what was already resident "
        "(weights, the encoder): host = resident set (VmHWM), device = CUDA allocator live bytes (cached free "
        "blocks excluded).\n";
  write_file_atomic((run_dir / "results.json").string(), j.dump(2) + "\n");
  write_file_atomic((run_dir / "results.md").string(), md);
}

int run_experiment(const std::vector<std::string>& argv) {
  const apps::Args args(argv, {"run-dir", "root"}, {"quiet", "help"});
  if (args.flag("help") || args.positional().size() != 1) {
    std::printf("%s", kUsage);
    return args.flag("help") ? 0 : 2;
  }
  const std::string config_path = args.positional()[0];
  const fs::path root = args.has("root") ? fs::path(args.str("root", "")) : fs::path(config_path).parent_path();
  const RunConfig c = parse_config(config_path, root);
  const fs::path run_dir = args.str("run-dir", (fs::path("runs") / c.name).string());
  const bool quiet = args.flag("quiet");
  fs::create_directories(run_dir);
  std::ifstream raw(config_path);
  write_file_atomic((run_dir / "config.yaml").string(), std::string(std::istreambuf_iterator<char>(raw), {}));

  const Device device = apps::parse_device(c.device);
  models::LoadOptions load;
  if (!c.dtype.empty()) load.dtype = dtype_from_name(c.dtype);
  const compress::AutoCompressor encoder = compress::AutoCompressor::load(c.encoder, load).to(device);
  const models::LlamaModel base = compress::load_decoder(c.decoder, load).to(device);
  const models::SentencePieceTokenizer tok(c.tokenizer);
  const auto t0 = std::chrono::steady_clock::now();
  auto stage = [&](const std::string& what) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "[%7.1f s] %s\n", secs, what.c_str());
  };
  std::map<std::string, Row> table;
  for (const DatasetEntry& d : c.datasets) {
    const fs::path dd = run_dir / d.name;
    const fs::path store = dd / "store";
    eval::ReadOptions ro;
    const eval::DatasetFile eval_data = eval::read_dataset(d.eval, eval::parse_format(d.format), ro);
    compress::CorpusOptions co;
    co.compress = c.compress;
    co.encoder_name = fs::weakly_canonical(c.encoder).string();
    co.docs_per_shard = c.docs_per_shard;
    co.quiet = quiet;
    // The dataset is the document group: `lloco serve --store` on this store applies its adapter.
    co.group_dataset = eval_data.examples.empty() ? "" : eval_data.examples.front().dataset;
    stage(d.name + ": compress " + std::to_string(eval_data.documents.size()) + " evaluation documents");
    apps::compress_dataset(encoder, eval_data, tok, store.string(), co, d.name);

    const fs::path adapter = dd / "adapter";
    const bool want_lloco = std::find(c.systems.begin(), c.systems.end(), "lloco") != c.systems.end();
    if (want_lloco) {
      if (d.train.empty()) throw std::runtime_error("config: datasets '" + d.name + "' has no train file for system lloco");
      const eval::DatasetFile train_data = eval::read_dataset(d.train, eval::parse_format(d.format), ro);
      stage(d.name + ": compress " + std::to_string(train_data.documents.size()) + " training documents");
      apps::compress_dataset(encoder, train_data, tok, store.string(), co, d.name);
      const std::vector<lora::QaExample> examples = apps::qa_examples(train_data, tok, store.string(), device);
      lora::AdapterTrainOptions o = c.finetune;
      o.loop.steps = c.steps > 0 ? c.steps
                                 : lora::steps_for_epochs(static_cast<int64_t>(examples.size()), c.epochs, o.batch_size,
                                                          o.loop.grad_accumulation);
      o.loop.run_dir = (adapter / "run").string();
      o.loop.log_every = std::max<int64_t>(1, o.loop.steps / 20);
      o.loop.quiet = quiet;
      stage(d.name + ": fine-tune the adapter on " + std::to_string(examples.size()) + " QA pairs, " +
            std::to_string(o.loop.steps) + " steps");
      models::LlamaModel model = base;
      auto adapters = std::make_shared<lora::LoraAdapters>(
          lora::LoraAdapters::zeros(model.config, c.lora, 1, model.embed_tokens.dtype(), device));
      adapters->init_peft(0, o.seed);
      lora::train_adapter(model, adapters, examples, o);
      lora::save_peft_adapter(*adapters, 0, adapter.string(), c.decoder);
      compress::register_adapter(store.string(), d.name, adapter.string());
    }
    for (const std::string& system : c.systems) {
      models::LlamaModel model = base;
      if (system == "lloco")
        lora::attach(model,
                     std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(
                         model.config, {adapter.string()}, model.embed_tokens.dtype(), device)),
                     {0});
      apps::PredictOptions po;
      po.context = system == "no_context"       ? apps::ContextKind::kNone
                   : system == "truncated_text" ? apps::ContextKind::kTruncatedText
                   : system == "retrieved_text" ? apps::ContextKind::kRetrievedText
                                                : apps::ContextKind::kCompressed;
      po.store_dir = store.string();
      po.text_budget = c.text_budget;
      po.retrieval_chunk_tokens = c.retrieval_chunk_tokens;
      po.retrieval_top_k = c.retrieval_top_k;
      po.max_new_tokens = c.max_new_tokens;
      po.quiet = quiet;
      const std::string preds = (dd / system / "predictions.jsonl").string();
      fs::create_directories(dd / system);
      stage(d.name + ": predict with " + system);
      const apps::PredictCount pc = apps::predict_dataset(model, tok, eval_data, preds, po);
      table[d.name].cost[system] = pc.cost;
      eval::EvalRequest req;
      req.dataset = d.name;
      req.predictions = preds;
      req.data = d.eval;
      req.format = eval::parse_format(d.format);
      req.out_dir = (run_dir / "eval" / system).string();  // eval's tables: one system per directory
      req.system = system;
      const eval::EvalOutcome r = eval::run_eval(req);
      table[d.name].metric = eval::metric_name(r.score.metric);
      table[d.name].n = r.score.n;
      table[d.name].score[system] = r.score.score;
      stage(d.name + " / " + system + ": " + table[d.name].metric + " = " + std::to_string(r.score.score));
    }
  }
  write_results(run_dir, c, table);
  std::ifstream md(run_dir / "results.md");
  std::printf("%s", std::string(std::istreambuf_iterator<char>(md), {}).c_str());
  return 0;
}

}  // namespace

LLOCO_COMMAND("run", "run an experiment config: compress -> fine-tune -> predict -> evaluate", run_experiment);
