#include "apps/run_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <utility>

#include "apps/needle_data.h"

namespace lloco::apps {
namespace {

namespace fs = std::filesystem;

// Throws "config: <where> (line N): ..." with the YAML line when the node has one.
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

void require_positive(const YAML::Node& parent, const std::string& where,
                      std::initializer_list<std::pair<const char*, int64_t>> values) {
  for (const auto& [key, value] : values)
    if (value <= 0) bad(parent[key] ? parent[key] : parent, where + "." + key, "must be positive, got " + std::to_string(value));
}

std::string resolve(const std::string& path, const fs::path& root) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (root / path).string();
}

NeedleDataset parse_needle(const YAML::Node& n, const std::string& w, const fs::path& root) {
  only_keys(n, w, {"haystack", "haystack_format", "haystack_row", "haystack_document", "min_length", "max_length",
                   "lengths", "depths", "reserve", "needle", "question", "answer", "cities", "iterations", "seed"});
  NeedleDataset d;
  read(n, "haystack", w, d.haystack.data);
  read(n, "haystack_format", w, d.haystack.format);
  read(n, "haystack_row", w, d.haystack.row);
  read(n, "haystack_document", w, d.haystack.document);
  if (d.haystack.data.empty()) bad(n, w + ".haystack", "is required (the dataset file holding the haystack document)");
  if (d.haystack.row >= 0 && !d.haystack.document.empty())
    bad(n, w + ".haystack_row", "give haystack_row or haystack_document, not both");
  d.haystack.data = resolve(d.haystack.data, root);
  eval::NeedleSpec& s = d.spec;
  read(n, "min_length", w, s.grid.min_length);
  read(n, "max_length", w, s.grid.max_length);
  read(n, "lengths", w, s.grid.lengths);
  read(n, "depths", w, s.grid.depths);
  read(n, "reserve", w, s.grid.reserve);
  read(n, "needle", w, s.needle);
  read(n, "question", w, s.question);
  read(n, "answer", w, s.answer);
  read(n, "iterations", w, s.iterations);
  read(n, "seed", w, s.seed);
  require_positive(n, w, {{"min_length", s.grid.min_length}, {"max_length", s.grid.max_length},
                          {"lengths", s.grid.lengths}, {"depths", s.grid.depths}, {"iterations", s.iterations}});
  if (s.grid.max_length < s.grid.min_length)
    bad(n, w + ".max_length", "is " + std::to_string(s.grid.max_length) + ", below min_length " +
                                  std::to_string(s.grid.min_length));
  if (s.grid.reserve < 0 || s.grid.reserve >= s.grid.min_length)
    bad(n, w + ".reserve", "must be in [0, min_length = " + std::to_string(s.grid.min_length) + "), got " +
                               std::to_string(s.grid.reserve));
  if (const YAML::Node c = n["cities"]) {
    // LLoCO's random needle: its city lists by name ("test", "train"), or the config's own.
    if (c.IsSequence() && c.size() > 0) {
      read(n, "cities", w, s.cities);
    } else if (c.IsScalar()) {
      try {
        s.cities = needle_cities(c.as<std::string>());
      } catch (const std::runtime_error& e) {
        bad(c, w + ".cities", e.what());
      }
    } else {
      bad(c, w + ".cities", "must be 'test', 'train' (LLoCO's lists) or a non-empty list of cities");
    }
  }
  return d;
}

DatasetEntry parse_dataset(const YAML::Node& n, const std::string& w, const fs::path& root) {
  only_keys(n, w, {"name", "format", "train", "eval", "needle", "needle_train", "adapter", "train_examples", "max_new_tokens"});
  DatasetEntry d;
  read(n, "name", w, d.name);
  read(n, "format", w, d.format);
  read(n, "train", w, d.train);
  read(n, "eval", w, d.eval);
  read(n, "adapter", w, d.adapter);
  read(n, "train_examples", w, d.train_examples);
  read(n, "max_new_tokens", w, d.max_new_tokens);
  if (d.max_new_tokens < 0) bad(n["max_new_tokens"], w + ".max_new_tokens", "must be positive, got " + std::to_string(d.max_new_tokens));
  if (d.train_examples < 0) bad(n["train_examples"], w + ".train_examples", "must be >= 0, got " + std::to_string(d.train_examples));
  if (d.name.empty()) bad(n, w + ".name", "is required (the dataset, as `lloco eval --dataset` names it)");
  if (const YAML::Node t = n["needle"]) d.needle_eval = parse_needle(t, w + ".needle", root);
  if (const YAML::Node t = n["needle_train"]) d.needle_train = parse_needle(t, w + ".needle_train", root);
  if (d.needle_eval && !d.eval.empty()) bad(n["eval"], w + ".eval", "give `eval` or `needle`, not both");
  if (d.needle_train && !d.train.empty()) bad(n["train"], w + ".train", "give `train` or `needle_train`, not both");
  if (!d.needle_eval && d.eval.empty()) bad(n, w + ".eval", "is required (the file to answer and score, or `needle`)");
  if ((d.needle_eval || d.needle_train) && d.format != "auto" && d.format != "needle")
    bad(n["format"], w + ".format", "is '" + d.format + "', but a generated needle set has format needle");
  if (d.needle_eval || d.needle_train) d.format = "needle";
  // eval scores a set by its dataset name, and every generated case belongs to dataset `needle`.
  if (d.needle_eval && d.name != "needle")
    bad(n["name"], w + ".name", "is '" + d.name + "'; a generated needle set is scored as dataset 'needle': name it so");
  d.train = resolve(d.train, root);
  d.eval = resolve(d.eval, root);
  return d;
}

// A system: a built-in name, or a mapping that names its context, fine-tuning, decoder and budget.
SystemSpec parse_system(const YAML::Node& n, const std::string& w, const fs::path& root) {
  std::string builtins;
  for (const std::string& b : run_systems()) builtins += (builtins.empty() ? "" : ", ") + b;
  if (n.IsScalar()) {
    const std::optional<SystemSpec> spec = builtin_system(n.as<std::string>());
    if (!spec) bad(n, w, "unknown system '" + n.as<std::string>() + "' (" + builtins + ", or a mapping {name, context, ...})");
    return *spec;
  }
  only_keys(n, w, {"name", "context", "finetune", "decoder", "tokenizer", "text_budget"});
  SystemSpec s;
  s.builtin = false;
  read(n, "name", w, s.name);
  if (s.name.empty()) bad(n, w + ".name", "is required (the results column)");
  if (builtin_system(s.name)) bad(n["name"], w + ".name", "'" + s.name + "' is a built-in system (" + builtins + "): list it by name");
  // The name is a directory of the run, beside each dataset's store/ and adapter/.
  const bool plain = std::all_of(s.name.begin(), s.name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
  });
  if (!plain || s.name.front() == '.' || s.name == "store" || s.name == "adapter")
    bad(n["name"], w + ".name", "'" + s.name + "' must be letters, digits, '_', '-' or '.', not start with '.', and not be "
                                 "'store' or 'adapter' (the run's directories)");
  std::string context = "compressed";
  read(n, "context", w, context);
  try {
    s.context = parse_context_kind(context, "context");
  } catch (const std::runtime_error& e) {
    bad(n["context"], w + ".context", e.what());
  }
  read(n, "finetune", w, s.finetune);
  read(n, "decoder", w, s.decoder);
  read(n, "tokenizer", w, s.tokenizer);
  read(n, "text_budget", w, s.text_budget);
  if (n["text_budget"]) {
    if (s.text_budget <= 0) bad(n["text_budget"], w + ".text_budget", "must be positive, got " + std::to_string(s.text_budget));
    if (s.context != ContextKind::kTruncatedText && s.context != ContextKind::kRetrievedText)
      bad(n["text_budget"], w + ".text_budget", std::string("applies to the text contexts, not context ") +
                                                    context_kind_name(s.context));
  }
  s.decoder = resolve(s.decoder, root);
  s.tokenizer = resolve(s.tokenizer, root);
  return s;
}

}  // namespace

std::optional<SystemSpec> builtin_system(const std::string& name) {
  SystemSpec s;
  s.name = name;
  if (name == "lloco") s.finetune = true;
  else if (name == "compressed") {}
  else if (name == "no_context") s.context = ContextKind::kNone;
  else if (name == "truncated_text") s.context = ContextKind::kTruncatedText;
  else if (name == "retrieved_text") s.context = ContextKind::kRetrievedText;
  else return std::nullopt;
  return s;
}

RunConfig parse_run_config(const std::string& path, const std::string& root_dir) {
  const fs::path root(root_dir);
  YAML::Node y;
  try {
    y = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("config: " + path + ": " + e.what());
  }
  only_keys(y, "config", {"name", "encoder", "decoder", "tokenizer", "device", "dtype", "compress", "finetune", "predict",
                          "systems", "adapters", "datasets"});
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
                     "max_grad_norm", "rank", "alpha", "dropout", "seed", "checkpoint_every",
                     "gradient_checkpointing"});
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
    read(n, "gradient_checkpointing", w, c.gradient_checkpointing);
  } else {
    c.finetune.loop.grad_accumulation = 8;  // LLoCO: 4 GPUs x 1 x 2
  }
  if (const YAML::Node n = y["predict"]) {
    const std::string w = "config.predict";
    only_keys(n, w, {"max_new_tokens", "text_budget", "retrieval_chunk_tokens", "retrieval_top_k", "retriever",
                     "retriever_model"});
    read(n, "max_new_tokens", w, c.max_new_tokens);
    read(n, "text_budget", w, c.text_budget);
    read(n, "retrieval_chunk_tokens", w, c.retrieval_chunk_tokens);
    read(n, "retrieval_top_k", w, c.retrieval_top_k);
    require_positive(n, w, {{"max_new_tokens", c.max_new_tokens},
                            {"text_budget", c.text_budget},
                            {"retrieval_chunk_tokens", c.retrieval_chunk_tokens},
                            {"retrieval_top_k", c.retrieval_top_k}});
    read(n, "retriever", w, c.retriever);
    read(n, "retriever_model", w, c.retriever_model);
    if (c.retriever != "bm25" && c.retriever != "contriever")
      bad(n["retriever"], w + ".retriever", "must be bm25 or contriever, got '" + c.retriever + "'");
    if (c.retriever == "contriever" && c.retriever_model.empty())
      bad(n["retriever"], w + ".retriever_model", "is required with retriever: contriever (its HF BERT directory)");
    if (c.retriever == "bm25" && !c.retriever_model.empty())
      bad(n["retriever_model"], w + ".retriever_model", "is only used with retriever: contriever");
    c.retriever_model = resolve(c.retriever_model, root);
  }
  if (const YAML::Node n = y["systems"]) {
    if (!n.IsSequence() || n.size() == 0) bad(n, "config.systems", "must be a non-empty list of system names or {name, context, ...}");
    c.systems.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      SystemSpec spec = parse_system(n[i], "config.systems[" + std::to_string(i) + "]", root);
      if (has_system(c, spec.name)) bad(n[i], "config.systems[" + std::to_string(i) + "]", "'" + spec.name + "' is listed twice");
      c.systems.push_back(std::move(spec));
    }
  }
  const bool want_lloco = has_system(c, "lloco");
  if (const YAML::Node as = y["adapters"]) {
    if (!as.IsSequence()) bad(as, "config.adapters", "must be a list of {name, train}");
    for (size_t i = 0; i < as.size(); ++i) {
      const std::string w = "config.adapters[" + std::to_string(i) + "]";
      only_keys(as[i], w, {"name", "train"});
      NamedAdapter a;
      read(as[i], "name", w, a.name);
      if (a.name.empty()) bad(as[i], w + ".name", "is required");
      for (const NamedAdapter& other : c.adapters)
        if (other.name == a.name) bad(as[i]["name"], w + ".name", "'" + a.name + "' is already an adapter of this run");
      const YAML::Node tr = as[i]["train"];
      if (!tr || !tr.IsSequence() || tr.size() == 0) bad(tr ? tr : as[i], w + ".train", "must be a non-empty list of {file, format, examples}");
      for (size_t k = 0; k < tr.size(); ++k) {
        const std::string wk = w + ".train[" + std::to_string(k) + "]";
        only_keys(tr[k], wk, {"file", "format", "examples"});
        TrainSource t;
        read(tr[k], "file", wk, t.file);
        read(tr[k], "format", wk, t.format);
        read(tr[k], "examples", wk, t.examples);
        if (t.file.empty()) bad(tr[k], wk + ".file", "is required");
        if (t.examples < 0) bad(tr[k]["examples"], wk + ".examples", "must be >= 0, got " + std::to_string(t.examples));
        t.file = resolve(t.file, root);
        a.train.push_back(std::move(t));
      }
      c.adapters.push_back(std::move(a));
    }
  }
  const YAML::Node ds = y["datasets"];
  if (!ds || !ds.IsSequence() || ds.size() == 0) bad(y, "config.datasets", "must be a non-empty list");
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string w = "config.datasets[" + std::to_string(i) + "]";
    DatasetEntry d = parse_dataset(ds[i], w, root);
    for (const DatasetEntry& earlier : c.datasets)
      if (earlier.name == d.name) bad(ds[i]["name"], w + ".name", "'" + d.name + "' is already a dataset of this run");
    for (const NamedAdapter& a : c.adapters)
      if (a.name == d.name) bad(ds[i]["name"], w + ".name", "'" + d.name + "' is also the name of an adapter");
    const bool trains = !d.train.empty() || d.needle_train.has_value();
    if (!d.adapter.empty()) {
      // A named adapter, an earlier dataset's adapter, else a PEFT directory.
      using Source = DatasetEntry::AdapterSource;
      const bool named = std::any_of(c.adapters.begin(), c.adapters.end(),
                                     [&](const NamedAdapter& a) { return a.name == d.adapter; });
      const bool earlier = std::any_of(c.datasets.begin(), c.datasets.end(),
                                       [&](const DatasetEntry& e) { return e.name == d.adapter; });
      d.adapter_source = named ? Source::kNamed : earlier ? Source::kDataset : Source::kPath;
      if (d.adapter_source == Source::kPath) {
        bool later = false;
        for (size_t j = i + 1; j < ds.size(); ++j) later = later || (ds[j]["name"] && ds[j]["name"].as<std::string>() == d.adapter);
        if (later) bad(ds[i]["adapter"], w + ".adapter", "dataset '" + d.adapter + "' comes later in the list; put it first");
        d.adapter = resolve(d.adapter, root);
      }
    }
    if (want_lloco && !trains && d.adapter.empty())
      bad(ds[i], w, "system lloco needs an adapter: give `train` (or `needle_train`) or `adapter`");
    for (const SystemSpec& s : c.systems)
      if (s.finetune && !s.builtin && !trains)
        bad(ds[i], w, "system " + s.name + " is fine-tuned on each dataset's training set: give `train` (or `needle_train`)");
    c.datasets.push_back(std::move(d));
  }
  return c;
}

std::vector<std::string> missing_inputs(const RunConfig& c) {
  std::vector<std::string> missing;
  const auto need = [&](const std::string& path, const std::string& what) {
    if (!path.empty() && !fs::exists(path)) missing.push_back(what + ": " + path);
  };
  need(c.encoder, "encoder");
  need(c.decoder, "decoder");
  need(c.tokenizer, "tokenizer");
  if (has_context(c, ContextKind::kRetrievedText)) need(c.retriever_model, "retriever " + c.retriever);
  for (const SystemSpec& s : c.systems) {
    need(s.decoder, "system " + s.name + ", decoder");
    need(s.tokenizer, "system " + s.name + ", tokenizer");
  }
  for (const NamedAdapter& a : c.adapters)
    for (const TrainSource& t : a.train) need(t.file, "adapter " + a.name + ", train");
  for (const DatasetEntry& d : c.datasets) {
    need(d.train, "dataset " + d.name + ", train");
    need(d.eval, "dataset " + d.name + ", eval");
    if (d.needle_eval) need(d.needle_eval->haystack.data, "dataset " + d.name + ", needle haystack");
    if (d.needle_train) need(d.needle_train->haystack.data, "dataset " + d.name + ", needle_train haystack");
    if (d.adapter_source == DatasetEntry::AdapterSource::kPath)
      need((fs::path(d.adapter) / "adapter_config.json").string(), "dataset " + d.name + ", adapter (PEFT)");
  }
  return missing;
}

std::string describe_plan(const RunConfig& c) {
  std::string out = "run " + c.name + " on " + c.device + (c.dtype.empty() ? "" : " (" + c.dtype + ")") +
                    "\n  encoder " + c.encoder + "\n  decoder " + c.decoder + "\n  systems";
  for (const SystemSpec& s : c.systems) out += " " + s.name;
  out += "\n";
  for (const SystemSpec& s : c.systems) {
    if (s.builtin) continue;
    out += "  system " + s.name + ": context " + context_kind_name(s.context);
    if (s.context == ContextKind::kTruncatedText || s.context == ContextKind::kRetrievedText)
      out += " (" + std::to_string(s.text_budget > 0 ? s.text_budget : c.text_budget) + " tokens)";
    out += s.finetune ? ", a LoRA fine-tuned on it per dataset" : ", no adapter";
    out += ", decoder " + (s.decoder.empty() ? c.decoder : s.decoder);
    if (!s.tokenizer.empty()) out += ", tokenizer " + s.tokenizer;
    out += "\n";
  }
  if (has_context(c, ContextKind::kRetrievedText))
    out += "  retriever " + c.retriever + (c.retriever_model.empty() ? "" : " " + c.retriever_model) + " (top " +
           std::to_string(c.retrieval_top_k) + " of " + std::to_string(c.retrieval_chunk_tokens) + "-token chunks)\n";
  for (const NamedAdapter& a : c.adapters) {
    out += "  adapter " + a.name + ", trained on\n";
    for (const TrainSource& t : a.train)
      out += "    " + t.file + " (" + t.format + (t.examples > 0 ? ", " + std::to_string(t.examples) + " questions" : "") + ")\n";
  }
  for (const DatasetEntry& d : c.datasets) {
    out += "  dataset " + d.name + " (" + d.format + ")\n";
    out += "    eval:    " + (d.needle_eval ? "needle cases from " + d.needle_eval->haystack.data : d.eval) + "\n";
    const std::string train = d.needle_train ? "needle cases from " + d.needle_train->haystack.data : d.train;
    const std::string named = d.adapter_source == DatasetEntry::AdapterSource::kNamed ? "the run's adapter " : "";
    std::string adapter = d.adapter.empty() ? "new, trained on " + train
                          : train.empty()   ? "reused: " + named + d.adapter
                                            : "continued from " + d.adapter + ", trained on " + train;
    if (!train.empty() && d.train_examples > 0) adapter += " (" + std::to_string(d.train_examples) + " questions)";
    if (has_system(c, "lloco")) out += "    adapter: " + adapter + "\n";
    out += "    max_new_tokens " + std::to_string(d.max_new_tokens > 0 ? d.max_new_tokens : c.max_new_tokens) + "\n";
  }
  return out;
}

}  // namespace lloco::apps
