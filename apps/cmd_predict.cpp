// `lloco predict`: LLoCO's answers for a dataset. Each example's document comes from a `lloco
// compress` store as summary vectors in front of LLoCO's prompt for the dataset; the decoder
// (optionally with a group's PEFT adapter) answers greedily; the predictions JSONL is what
// `lloco eval` scores. Only argv and the file plumbing live here.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/dataset_args.h"
#include "compress/autocompressor.h"
#include "compress/store.h"
#include "core/atomic_file.h"
#include "eval/prompts.h"
#include "lora/peft_io.h"
#include "models/generate.h"
#include "models/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco predict --model DIR --store DIR --dataset-file F --out FILE.jsonl [options]

Answers every example of a dataset LLoCO-style: [summary vectors of its document ; LLoCO's prompt],
greedy decoding, and writes {"id", "prediction"} lines for `lloco eval`. Predictions already in
--out are kept, so a stopped run continues.

  --model DIR            decoder: HF LLaMA or AutoCompressor directory
  --store DIR            the `lloco compress` store with the dataset's documents
)" "%s" R"(  --adapter DIR          a PEFT LoRA adapter (the group's, from `lloco finetune`)
  --tokenizer PATH       default: MODEL/tokenizer.model
  --max-new-tokens N     default 50 (LLoCO's default; its QMSum script uses 96)
  --save-every N         rewrite --out every N examples (default 16)
  --dtype f32|bf16|f16   --device cpu|cuda[:N]   --quiet   --help
)";

int run_predict(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"model", "store", "dataset-file", "format", "out", "adapter", "tokenizer", "max-new-tokens",
                         "save-every", "dtype", "device"},
                        {"skip-bad-lines", "quiet", "help"});
  if (args.flag("help")) {
    std::printf(kUsage, apps::kDatasetOptionsHelp);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  for (const char* required : {"model", "store", "dataset-file", "out"})
    if (!args.has(required)) throw std::runtime_error(std::string("--") + required + " is required (see --help)");
  const std::string model_dir = args.str("model", ""), store_dir = args.str("store", ""), out = args.str("out", "");
  models::LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  const Device device = apps::parse_device(args.str("device", "cpu"));
  models::LlamaModel model = compress::load_decoder(model_dir, load).to(device);
  if (args.has("adapter"))
    lora::attach(model,
                 std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(
                     model.config, {args.str("adapter", "")}, model.embed_tokens.dtype(), device)),
                 {0});
  const models::SentencePieceTokenizer tok(args.str("tokenizer", (fs::path(model_dir) / "tokenizer.model").string()));
  const compress::StoreManifest manifest = compress::StoreManifest::read((fs::path(store_dir) / "manifest.json").string());
  const eval::DatasetFile data = apps::read_dataset_arg(args);

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
  models::GenerateOptions g;
  g.max_new_tokens = args.integer("max-new-tokens", 50);
  g.eos_ids = {tok.eos_id()};
  const int64_t save_every = std::max<long long>(1, args.integer("save-every", 16));
  const auto t0 = std::chrono::steady_clock::now();
  size_t new_count = 0, todo = 0;
  for (const eval::Example& ex : data.examples) todo += done.count(ex.id) ? 0 : 1;
  std::string cached_doc;
  for (const eval::Example& ex : data.examples) {
    if (done.count(ex.id)) continue;
    if (ex.doc_id != cached_doc) {  // examples of one document come together in every reader
      g.prefix_embeddings = compress::load_summary(store_dir, manifest, ex.doc_id).to(device).unsqueeze(0);
      cached_doc = ex.doc_id;
    }
    const models::GenerateResult r = models::generate(model, {tok.encode(eval::lloco_prompt(ex), false, false)}, g);
    std::vector<int32_t> ids = r.tokens[0];
    if (!ids.empty() && ids.back() == tok.eos_id()) ids.pop_back();
    lines.push_back(nlohmann::json{{"id", ex.id}, {"prediction", tok.decode(ids)}}.dump());
    done.insert(ex.id);
    if (++new_count % static_cast<size_t>(save_every) == 0 || new_count == todo) {
      std::string text;
      for (const std::string& l : lines) text += l + "\n";
      write_file_atomic(out, text);
    }
    if (!args.flag("quiet")) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rpredicted %zu/%zu  %.1f examples/s  ETA %.0f s   ", new_count, todo, new_count / secs,
                   (todo - new_count) * secs / new_count);
    }
  }
  if (!args.flag("quiet") && new_count > 0) std::fprintf(stderr, "\n");
  if (new_count == 0 && !fs::exists(out)) write_file_atomic(out, "");
  std::printf("predictions %s: %zu examples (%zu new)\n", out.c_str(), done.size(), new_count);
  return 0;
}

}  // namespace

LLOCO_COMMAND("predict", "answer a dataset's questions from compressed documents (predictions for `eval`)", run_predict);
