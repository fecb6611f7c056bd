#include "apps/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "eval/prompts.h"

namespace lloco::apps {

namespace fs = std::filesystem;

compress::StoreManifest compress_dataset(const compress::AutoCompressor& encoder, const eval::DatasetFile& data,
                                         const models::Tokenizer& tok, const std::string& dir,
                                         const compress::CorpusOptions& options) {
  const std::set<std::string> stored = compress::stored_ids(dir);
  std::vector<compress::TokenizedDoc> docs;
  for (const eval::Document& d : data.documents)
    if (d.text && !stored.count(d.id)) docs.push_back({d.id, models::encode_long_document(tok, *d.text, 10000, compress::kMaxDocumentTokens)});
  return compress::compress_corpus(encoder, docs, dir, options);
}

std::vector<lora::QaExample> qa_examples(const eval::DatasetFile& data, const models::Tokenizer& tok,
                                         const std::string& store_dir, Device device) {
  const compress::StoreManifest manifest = compress::StoreManifest::read((fs::path(store_dir) / "manifest.json").string());
  std::map<std::string, Tensor> summaries;  // each document loaded once
  std::vector<lora::QaExample> out;
  for (const eval::Example& ex : data.examples) {
    auto it = summaries.find(ex.doc_id);
    if (it == summaries.end())
      it = summaries.emplace(ex.doc_id, compress::load_summary(store_dir, manifest, ex.doc_id).to(device)).first;
    out.push_back({it->second, tok.encode(eval::lloco_prompt(ex), false, false),
                   tok.encode(eval::answer_target(ex), false, true)});
  }
  return out;
}

PredictCount predict_dataset(const models::LlamaModel& model, const models::Tokenizer& tok, const eval::DatasetFile& data,
                             const std::string& out, const PredictOptions& o) {
  // Predictions kept from an earlier run: lines that parse and have both fields.
  std::vector<std::string> lines;
  std::set<std::string> done;
  if (fs::exists(out)) {
    std::ifstream f(out);
    for (std::string line; std::getline(f, line);) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("id") && j["id"].is_string() && j.contains("prediction") && done.insert(j["id"]).second)
        lines.push_back(line);
    }
  }
  PredictCount count;
  const std::string cost_path = out + ".cost.json";
  if (fs::exists(cost_path)) {  // what earlier runs spent on the predictions kept above
    std::ifstream f(cost_path);
    const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_object() && j.value("examples", size_t{0}) <= done.size()) {
      count.cost.examples = j.value("examples", size_t{0});
      count.cost.context_positions = j.value("context_positions", 0.0);
      count.cost.prefill_seconds = j.value("prefill_seconds", 0.0);
      count.cost.decode_seconds = j.value("decode_seconds", 0.0);
      count.cost.decode_tokens = j.value("decode_tokens", 0.0);
    }
  }
  compress::StoreManifest manifest;
  if (o.context == ContextKind::kCompressed)
    manifest = compress::StoreManifest::read((fs::path(o.store_dir) / "manifest.json").string());
  const eval::TokenCounter count_tokens = [&](const std::string& text) { return tok.encode(text, false, false).size(); };
  models::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.eos_ids = {tok.eos_id()};
  const auto save = [&] {
    std::string text;
    for (const std::string& l : lines) text += l + "\n";
    write_file_atomic(out, text);
    const PredictCost& c = count.cost;
    write_file_atomic(cost_path, nlohmann::json{{"examples", c.examples}, {"context_positions", c.context_positions},
                                                {"prefill_seconds", c.prefill_seconds},
                                                {"decode_seconds", c.decode_seconds}, {"decode_tokens", c.decode_tokens}}
                                         .dump() + "\n");
  };
  size_t todo = 0;
  for (const eval::Example& ex : data.examples) todo += done.count(ex.id) ? 0 : 1;
  const auto t0 = std::chrono::steady_clock::now();
  std::string cached_doc;
  for (const eval::Example& ex : data.examples) {
    if (done.count(ex.id)) continue;
    if (o.context == ContextKind::kCompressed && ex.doc_id != cached_doc) {  // readers keep a document's examples together
      g.prefix_embeddings =
          compress::load_summary(o.store_dir, manifest, ex.doc_id).to(model.embed_tokens.device()).unsqueeze(0);
      cached_doc = ex.doc_id;
    }
    // The text baseline is an ordinary LLaMA prompt (BOS first, as vLLM tokenizes it in LLoCO's runs);
    // the compressed prompts follow the summary vectors without one, as in LLoCO.
    const std::vector<int32_t> prompt =
        o.context == ContextKind::kTruncatedText
            ? tok.encode(eval::baseline_prompt(ex, static_cast<size_t>(o.text_budget), count_tokens).text, true, false)
            : tok.encode(eval::lloco_prompt(ex), false, false);
    const models::GenerateResult r = models::generate(model, {prompt}, g);
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

}  // namespace lloco::apps
