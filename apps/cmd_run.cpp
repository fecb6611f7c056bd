// `lloco run CONFIG.yaml`: the main job. For each dataset of the config: compress its documents into
// a store, fine-tune the group's adapter on its training QA pairs, answer its evaluation questions
// with every requested system, score them with the dataset's metric, and collect one results table
// (results.{md,json}; eval's per-system tables under eval/<system>/) in the run directory. Every
// stage resumes from its outputs.
// The YAML is read into RunConfig by apps/run_config.cpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/distributed_env.h"
#include "apps/needle_data.h"
#include "apps/pipeline.h"
#include "apps/run_config.h"
#include "retrieve/dense.h"
#include "compress/autocompressor.h"
#include "compress/store.h"
#include "core/atomic_file.h"
#include "eval/readers.h"
#include "eval/results_plot.h"
#include "eval/runner.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco run CONFIG.yaml [--run-dir DIR] [--root DIR] [--quiet] [--dry-run]

Runs an experiment config (see configs/): compress -> fine-tune one adapter per dataset (group) ->
predict with each system -> evaluate, into the run directory (default: runs/<name>). Relative paths
in the config resolve against --root (default: the config's directory). Re-running continues.
--dry-run prints the plan and the inputs that are missing, and loads nothing.

Systems: lloco (summary vectors + the dataset's adapter), compressed (summary vectors, no adapter:
AutoCompressor out of the box), no_context (the prompt alone), truncated_text (the document as text
cut to predict.text_budget = 4,000 tokens with the prompt: LLoCO's "with context" baseline),
retrieved_text (LLoCO's "retrieval" baseline: the document cut into predict.retrieval_chunk_tokens =
512-token chunks, the predict.retrieval_top_k = 5 best for the question, in document order, as text
within the same budget; ranked by BM25, or with predict.retriever: contriever and
predict.retriever_model: DIR by a Contriever-style BERT as in LLoCO). A system may also be a mapping
{name, context: compressed|none|truncated_text|retrieved_text, finetune: true|false, decoder: DIR,
tokenizer: PATH, text_budget: N}: finetune trains a LoRA per dataset on its training set with that
context (LLoCO's Table 2: the decoder fine-tuned on the uncompressed document), decoder answers with
another model (its 32k LongChat baseline, with text_budget: 32000). See configs/ablation_ft_context.yaml.

Datasets may be generated: `needle:` builds LLoCO's needle-in-a-haystack grid (context lengths x
depths, a fixed or random needle hidden in a haystack document) and `needle_train:` its synthetic
training set; each system's success per cell goes to eval/<system>/needle.{md,json,svg}.
`adapter:` gives the lloco system an earlier dataset's adapter (by name) or a PEFT directory, used as
is, or fine-tuned further when the entry also has training data (LLoCO: the NarrativeQA adapter for
the needle). See configs/needle.yaml.

results.md: each system's score per dataset, then its cost: context positions per question, time to
first token, decode speed and peak memory (host resident set and CUDA allocator live bytes, both reset
before each system's predictions; a host peak the kernel could not reset is marked (process)).
results.svg: per dataset, each system's score against its context positions per question (log).
)";

struct Row {
  std::string metric;
  size_t n = 0;
  std::map<std::string, double> score;  // system -> score (x100)
  std::map<std::string, apps::PredictCost> cost;
};

// results.json and results.md in the run directory: one row per dataset, one column per system.
void write_results(const fs::path& run_dir, const apps::RunConfig& c, const std::map<std::string, Row>& table) {
  std::vector<std::string> systems;
  for (const apps::SystemSpec& s : c.systems) systems.push_back(s.name);
  nlohmann::json j = {{"name", c.name}, {"systems", systems}, {"datasets", nlohmann::json::object()}};
  std::string md = "# " + c.name + "\n\n| dataset | metric | n |";
  for (const std::string& s : systems) md += " " + s + " |";
  md += "\n|---|---|---|";
  for (size_t i = 0; i < c.systems.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& [name, row] : table) {
    j["datasets"][name] = {{"metric", row.metric}, {"n", row.n}, {"scores", row.score}};
    char buf[64];
    md += "| " + name + " | " + row.metric + " | " + std::to_string(row.n) + " |";
    for (const std::string& s : systems) {
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
  // The same table as a picture: score against the positions each system read (results.svg).
  std::vector<eval::CostPanel> panels;
  for (const auto& [name, row] : table) {
    eval::CostPanel panel{name, row.metric, {}};
    for (const std::string& system : systems) {
      const auto score = row.score.find(system);
      const auto cost = row.cost.find(system);
      if (score == row.score.end() || cost == row.cost.end()) continue;
      const double n = std::max<double>(1.0, static_cast<double>(cost->second.examples));
      panel.points.push_back({system, cost->second.context_positions / n, score->second});
    }
    panels.push_back(std::move(panel));
  }
  md += "\n![score against context positions per question](results.svg)\n";
  write_file_atomic((run_dir / "results.svg").string(), eval::quality_vs_context_svg(c.name, panels));
  write_file_atomic((run_dir / "results.json").string(), j.dump(2) + "\n");
  write_file_atomic((run_dir / "results.md").string(), md);
}

// What every stage of a run shares.
struct RunContext {
  const apps::RunConfig& config;
  fs::path run_dir;
  const compress::AutoCompressor& encoder;
  const models::LlamaModel& base;
  const models::Tokenizer& tok;
  compress::CorpusOptions corpus;  // group_dataset is set per store
  Device device;
  bool quiet = false;
  std::function<void(const std::string&)> stage;
  std::shared_ptr<Communicator> comm;  // the ranks of `lloco launch` (one without it)
  retrieve::RankerFactory chunk_ranker;  // retrieved_text's: BM25, or predict.retriever's Contriever
  bool lead() const { return comm->rank() == 0; }

  // How `system` puts a document in front of its questions; kCompressed reads `store`.
  apps::ContextOptions context(const apps::SystemSpec& system, const fs::path& store) const {
    apps::ContextOptions o;
    o.context = system.context;
    o.store_dir = store.string();
    o.text_budget = system.text_budget > 0 ? system.text_budget : config.text_budget;
    o.retrieval_chunk_tokens = config.retrieval_chunk_tokens;
    o.retrieval_top_k = config.retrieval_top_k;
    o.chunk_ranker = chunk_ranker;
    return o;
  }
};

// The decoders and tokenizers the systems name, loaded when first asked for. Besides the run's decoder
// one other is kept at a time, so a config with several 7B baselines needs room for two models.
class Decoders {
 public:
  Decoders(const RunContext& r, const models::LoadOptions& load) : r_(r), load_(load) {}

  const models::LlamaModel& model(const apps::SystemSpec& s) {
    if (s.decoder.empty() || s.decoder == r_.config.decoder) return r_.base;
    if (other_path_ != s.decoder) {
      other_.reset();  // free the previous one before loading the next
      r_.stage("system " + s.name + ": load decoder " + s.decoder);
      other_ = std::make_unique<models::LlamaModel>(compress::load_decoder(s.decoder, load_).to(r_.device));
      other_path_ = s.decoder;
    }
    const int64_t summary_dim = r_.encoder.model().config.hidden_size;
    if (s.context == apps::ContextKind::kCompressed && other_->config.hidden_size != summary_dim)
      throw std::runtime_error("run: system " + s.name + ": decoder " + s.decoder + " has hidden size " +
                               std::to_string(other_->config.hidden_size) + ", but the encoder's summary vectors have " +
                               std::to_string(summary_dim));
    return *other_;
  }

  const models::Tokenizer& tokenizer(const apps::SystemSpec& s, const models::LlamaModel& model) {
    const models::Tokenizer* tok = &r_.tok;
    if (!s.tokenizer.empty() && s.tokenizer != r_.config.tokenizer) {
      auto it = tokenizers_.find(s.tokenizer);
      if (it == tokenizers_.end())
        it = tokenizers_.emplace(s.tokenizer, std::make_unique<models::SentencePieceTokenizer>(s.tokenizer)).first;
      tok = it->second.get();
    }
    if (tok->vocab_size() > model.config.vocab_size)
      throw std::runtime_error("run: system " + s.name + ": the tokenizer has " + std::to_string(tok->vocab_size()) +
                               " pieces, more than the decoder's vocabulary of " + std::to_string(model.config.vocab_size));
    return *tok;
  }

 private:
  const RunContext& r_;
  models::LoadOptions load_;
  std::string other_path_;
  std::unique_ptr<models::LlamaModel> other_;
  std::map<std::string, std::unique_ptr<models::SentencePieceTokenizer>> tokenizers_;
};

// What train_lora fine-tunes and how its examples look.
struct LoraTarget {
  const models::LlamaModel& base;
  std::string base_name;  // recorded in the PEFT config
  const models::Tokenizer& tok;
  apps::ContextOptions context;  // kCompressed: the training documents are compressed into its store_dir
};

// Trains a LoRA on all the training sets' QA pairs (each with its dataset's prompt, after the target's
// context), fresh or continued from the PEFT directory `start`, and writes it as PEFT into `out`; with
// summary vectors as context, their documents are compressed first (document group `group`). The
// training loop resumes from out/run.
void train_lora(const RunContext& r, const std::string& who, const std::vector<eval::DatasetFile>& sets,
                const LoraTarget& target, const std::string& group, const fs::path& out, const fs::path& start) {
  const apps::RunConfig& c = r.config;
  std::vector<lora::QaExample> examples;
  for (const eval::DatasetFile& set : sets) {
    if (target.context.context == apps::ContextKind::kCompressed) {
      r.stage(who + ": compress " + std::to_string(set.documents.size()) + " training documents of " + set.path);
      apps::compress_dataset(r.encoder, set, r.tok, target.context.store_dir, r.corpus, group, r.comm.get());
    }
    std::vector<lora::QaExample> part = apps::qa_examples(set, target.tok, target.context, r.device);
    examples.insert(examples.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  lora::AdapterTrainOptions o = c.finetune;
  o.loop.steps = c.steps > 0 ? c.steps
                             : lora::steps_for_epochs(static_cast<int64_t>(examples.size()), c.epochs, o.batch_size,
                                                      o.loop.grad_accumulation);
  o.loop.run_dir = (out / "run").string();
  o.loop.log_every = std::max<int64_t>(1, o.loop.steps / 20);
  o.loop.quiet = r.quiet;
  o.loop.comm = r.comm;  // train::train checks that the ranks divide grad_accumulation
  r.stage(who + ": fine-tune " + (start.empty() ? std::string("a new adapter") : "the adapter " + start.string()) +
          " on " + std::to_string(examples.size()) + " QA pairs (context " +
          apps::context_kind_name(target.context.context) + "), " + std::to_string(o.loop.steps) + " steps");
  models::LlamaModel model = target.base;
  model.gradient_checkpointing = c.gradient_checkpointing;
  std::shared_ptr<lora::LoraAdapters> adapters;
  if (start.empty()) {
    adapters = std::make_shared<lora::LoraAdapters>(
        lora::LoraAdapters::zeros(model.config, c.lora, 1, model.embed_tokens.dtype(), r.device));
    adapters->init_peft(0, o.seed);
  } else {
    adapters = std::make_shared<lora::LoraAdapters>(
        lora::load_peft_adapters(model.config, {start.string()}, model.embed_tokens.dtype(), r.device));
  }
  lora::train_adapter(model, adapters, examples, o);
  if (r.lead()) lora::save_peft_adapter(*adapters, 0, out.string(), target.base_name);  // the replicas are identical
  r.comm->barrier();
}

// LLoCO's target: the run's decoder on summary vectors from `store`.
LoraTarget lloco_target(const RunContext& r, const fs::path& store) {
  return {r.base, r.config.decoder, r.tok, r.context(*apps::builtin_system("lloco"), store)};
}

// A dataset entry's file; a SCROLLS file holds the entry's dataset (eval scores it under that name).
eval::DatasetFile read_entry(const apps::DatasetEntry& d, const std::string& file) {
  eval::ReadOptions ro;
  if (d.format == "scrolls") ro.dataset = d.name;
  return eval::read_dataset(file, eval::parse_format(d.format), ro);
}

fs::path named_adapter_dir(const RunContext& r, const std::string& name) { return r.run_dir / "adapters" / name / "adapter"; }

// The adapter the lloco system uses for `d`: trained here when the entry has training data (fresh, or
// continued from the entry's `adapter`), else the one `adapter` names.
fs::path prepare_adapter(const RunContext& r, const apps::DatasetEntry& d, const std::string& train_file) {
  using Source = apps::DatasetEntry::AdapterSource;
  const fs::path start = d.adapter_source == Source::kNamed     ? named_adapter_dir(r, d.adapter)
                         : d.adapter_source == Source::kDataset ? r.run_dir / d.adapter / "adapter"
                                                                : fs::path(d.adapter);
  if (train_file.empty()) return start;  // reused as is
  std::vector<eval::DatasetFile> sets;
  sets.push_back(apps::sample_examples(read_entry(d, train_file), d.train_examples, r.config.finetune.seed));
  const fs::path dd = r.run_dir / d.name;
  train_lora(r, d.name, sets, lloco_target(r, dd / "store"), d.name, dd / "adapter", start);
  return dd / "adapter";
}

// The run's named adapters (`adapters:`), each trained on all its training sets, in its own store.
void train_named_adapters(RunContext r) {
  for (const apps::NamedAdapter& a : r.config.adapters) {
    std::vector<eval::DatasetFile> sets;
    for (const apps::TrainSource& t : a.train)
      sets.push_back(apps::sample_examples(eval::read_dataset(t.file, eval::parse_format(t.format)), t.examples,
                                           r.config.finetune.seed));
    r.corpus.group_dataset.clear();  // a mixed group: each example keeps its own prompt
    const fs::path dir = r.run_dir / "adapters" / a.name;
    train_lora(r, "adapter " + a.name, sets, lloco_target(r, dir / "store"), a.name, named_adapter_dir(r, a.name), {});
  }
}

int run_experiment(const std::vector<std::string>& argv) {
  const apps::Args args(argv, {"run-dir", "root"}, {"quiet", "help", "dry-run"});
  if (args.flag("help") || args.positional().size() != 1) {
    std::printf("%s", kUsage);
    return args.flag("help") ? 0 : 2;
  }
  const std::string config_path = args.positional()[0];
  const fs::path root = args.has("root") ? fs::path(args.str("root", "")) : fs::path(config_path).parent_path();
  const apps::RunConfig c = apps::parse_run_config(config_path, root.string());
  const fs::path run_dir = args.str("run-dir", (fs::path("runs") / c.name).string());
  const bool quiet = args.flag("quiet");
  const std::vector<std::string> missing = apps::missing_inputs(c);
  if (args.flag("dry-run")) {
    std::printf("%s", apps::describe_plan(c).c_str());
    for (const std::string& m : missing) std::printf("  missing %s\n", m.c_str());
    return 0;
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& m : missing) list += "\n  " + m;
    throw std::runtime_error("run: " + config_path + " names inputs that are not there:" + list);
  }
  // Under `lloco launch` the ranks share compression, fine-tuning (data-parallel) and predictions;
  // rank 0 alone writes the shared files and scores.
  train::DistributedOptions dist = apps::distributed_from_env();
  dist.timeout_s = std::max(dist.timeout_s, 7 * 24 * 3600.0);  // ranks wait while rank 0 evaluates
  const Device device = apps::rank_device(c.device, dist);
  const std::shared_ptr<Communicator> comm = apps::connect_from_env(dist, device);
  const bool lead = comm->rank() == 0;
  fs::create_directories(run_dir);
  if (lead) {
    std::ifstream raw(config_path);
    write_file_atomic((run_dir / "config.yaml").string(), std::string(std::istreambuf_iterator<char>(raw), {}));
  }

  models::LoadOptions load;
  if (!c.dtype.empty()) load.dtype = dtype_from_name(c.dtype);
  const compress::AutoCompressor encoder = compress::AutoCompressor::load(c.encoder, load).to(device);
  const models::LlamaModel base = compress::load_decoder(c.decoder, load).to(device);
  const models::SentencePieceTokenizer tok(c.tokenizer);
  retrieve::RankerFactory chunk_ranker = retrieve::bm25_ranker_factory();
  if (c.retriever == "contriever" && apps::has_context(c, apps::ContextKind::kRetrievedText))
    chunk_ranker = retrieve::dense_ranker_factory(retrieve::DenseEncoder::load(c.retriever_model, device, DType::F32));
  const auto t0 = std::chrono::steady_clock::now();
  const std::function<void(const std::string&)> stage = [&](const std::string& what) {
    if (!lead) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "[%7.1f s] %s\n", secs, what.c_str());
  };
  const bool want_lloco = apps::has_system(c, "lloco");
  compress::CorpusOptions corpus;
  corpus.compress = c.compress;
  corpus.encoder_name = fs::weakly_canonical(c.encoder).string();
  corpus.docs_per_shard = c.docs_per_shard;
  corpus.quiet = quiet;
  RunContext run{c, run_dir, encoder, base, tok, corpus, device, quiet, stage, comm, chunk_ranker};
  Decoders decoders(run, load);
  if (want_lloco) train_named_adapters(run);
  std::map<std::string, Row> table;
  for (const apps::DatasetEntry& d : c.datasets) {
    const fs::path dd = run_dir / d.name;
    const fs::path store = dd / "store";
    // A generated needle set is written into the run, then read like any dataset file.
    std::string eval_file = d.eval, train_file = d.train;
    if (d.needle_eval) {
      eval_file = (dd / "needle_eval.jsonl").string();
      if (lead)
        stage(d.name + ": " + std::to_string(apps::write_needle_dataset(*d.needle_eval, tok, eval_file)) +
              " needle cases -> " + eval_file);
    }
    if (d.needle_train) {
      train_file = (dd / "needle_train.jsonl").string();
      if (lead)
        stage(d.name + ": " + std::to_string(apps::write_needle_dataset(*d.needle_train, tok, train_file)) +
              " needle training cases -> " + train_file);
    }
    comm->barrier();  // the generated sets are on disk for every rank
    const eval::DatasetFile eval_data = read_entry(d, eval_file);
    // The dataset is the document group: `lloco serve --store` on this store applies its adapter.
    run.corpus.group_dataset = eval_data.examples.empty() ? "" : eval_data.examples.front().dataset;
    if (apps::has_context(c, apps::ContextKind::kCompressed)) {  // text-only systems need no summary vectors
      stage(d.name + ": compress " + std::to_string(eval_data.documents.size()) + " evaluation documents");
      apps::compress_dataset(encoder, eval_data, tok, store.string(), run.corpus, d.name, comm.get());
    }

    fs::path adapter;
    if (want_lloco) {
      adapter = prepare_adapter(run, d, train_file);
      if (lead) compress::register_adapter(store.string(), d.name, adapter.string());
      comm->barrier();
    }
    for (const apps::SystemSpec& spec : c.systems) {
      const std::string& system = spec.name;
      const models::LlamaModel& decoder = decoders.model(spec);
      const models::Tokenizer& system_tok = decoders.tokenizer(spec, decoder);
      apps::PredictOptions po;
      static_cast<apps::ContextOptions&>(po) = run.context(spec, store);
      // lloco answers with the dataset's adapter; another fine-tuned system with its own, trained here
      // on the dataset's training set in the system's context (LLoCO's Table 2 for the text contexts).
      fs::path system_adapter = spec.builtin && spec.finetune ? adapter : fs::path();
      if (spec.finetune && !spec.builtin) {
        std::vector<eval::DatasetFile> sets;
        sets.push_back(apps::sample_examples(read_entry(d, train_file), d.train_examples, c.finetune.seed));
        system_adapter = dd / system / "adapter";
        const LoraTarget target{decoder, spec.decoder.empty() ? c.decoder : spec.decoder, system_tok, po};
        train_lora(run, d.name + " / " + system, sets, target, d.name, system_adapter, {});
      }
      models::LlamaModel model = decoder;
      if (!system_adapter.empty())
        lora::attach(model,
                     std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(
                         model.config, {system_adapter.string()}, model.embed_tokens.dtype(), device)),
                     {0});
      po.max_new_tokens = d.max_new_tokens > 0 ? d.max_new_tokens : c.max_new_tokens;
      po.quiet = quiet;
      const std::string preds = (dd / system / "predictions.jsonl").string();
      fs::create_directories(dd / system);
      stage(d.name + ": predict with " + system);
      const apps::PredictCount pc = apps::predict_sharded(*comm, model, system_tok, eval_data, preds, po);
      if (!lead) continue;  // rank 0 scores the folded predictions
      table[d.name].cost[system] = pc.cost;
      eval::EvalRequest req;
      req.dataset = d.name;
      req.predictions = preds;
      req.data = eval_file;
      req.format = eval::parse_format(d.format);
      req.out_dir = (run_dir / "eval" / system).string();  // eval's tables: one system per directory
      req.system = system;
      const eval::EvalOutcome r = eval::run_eval(req);
      table[d.name].metric = eval::metric_name(r.score.metric);
      table[d.name].n = r.score.n;
      table[d.name].score[system] = r.score.score;
      stage(d.name + " / " + system + ": " + table[d.name].metric + " = " + std::to_string(r.score.score));
      for (const std::string& f : r.written)  // eval adds the length x depth grid for a needle set
        if (fs::path(f).filename() == "needle.svg") stage(d.name + " / " + system + ": needle grid -> " + f);
    }
  }
  if (!lead) return 0;
  write_results(run_dir, c, table);
  std::ifstream md(run_dir / "results.md");
  std::printf("%s", std::string(std::istreambuf_iterator<char>(md), {}).c_str());
  return 0;
}

}  // namespace

LLOCO_COMMAND("run", "run an experiment config: compress -> fine-tune -> predict -> evaluate", run_experiment);
