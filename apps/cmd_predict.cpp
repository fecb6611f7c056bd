// `lloco predict`: LLoCO's answers for a dataset. Each example's document comes from a `lloco
// compress` store as summary vectors in front of LLoCO's prompt for the dataset (the baselines:
// nothing, or the document as truncated or retrieved text); the decoder (optionally with a group's
// PEFT adapter) answers greedily; the predictions JSONL is what `lloco eval` scores. Only argv and
// the file plumbing live here.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/dataset_args.h"
#include "apps/pipeline.h"
#include "apps/context_args.h"
#include "apps/retriever_args.h"
#include "compress/autocompressor.h"
#include "lora/peft_io.h"
#include "models/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco predict --model DIR (--store DIR | --context KIND) --dataset-file F --out FILE.jsonl [options]

Answers every example of a dataset LLoCO-style: [summary vectors of its document ; LLoCO's prompt],
greedy decoding, and writes {"id", "prediction"} lines for `lloco eval`. Predictions already in
--out are kept, so a stopped run continues.

  --model DIR            decoder: HF LLaMA or AutoCompressor directory
  --store DIR            the `lloco compress` store with the dataset's documents
)" "%s%s%s" R"(  --adapter DIR          a PEFT LoRA adapter (the group's, from `lloco finetune`)
  --tokenizer PATH       default: MODEL/tokenizer.model
  --max-new-tokens N     default 50 (LLoCO's default; its QMSum script uses 96)
  --save-every N         rewrite --out every N examples (default 16)
  --dtype f32|bf16|f16   --device cpu|cuda[:N]   --quiet   --help

Prints the cost: context positions per question, time to first token, decode speed, and the peak
host resident set and CUDA allocator bytes of this run (kept in FILE.jsonl.cost.json).
)";

int run_predict(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"model", "store", "context", "text-budget", "retrieval-chunk-tokens", "retrieval-top-k",
                         "dataset-file", "format", "out", "adapter", "tokenizer", "max-new-tokens", "save-every", "dtype",
                         "device", "retriever-model"},
                        {"skip-bad-lines", "quiet", "help"});
  if (args.flag("help")) {
    std::printf(kUsage, apps::kContextOptionsHelp, apps::kRetrieverOptionsHelp, apps::kDatasetOptionsHelp);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  apps::require_options(args, {"model", "dataset-file", "out"});
  const std::string model_dir = args.str("model", ""), out = args.str("out", "");
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
  apps::PredictOptions o;
  static_cast<apps::ContextOptions&>(o) = apps::read_context_args(args, device);
  o.max_new_tokens = args.integer("max-new-tokens", 50);
  o.save_every = args.integer("save-every", 16);
  o.quiet = args.flag("quiet");
  const apps::PredictCount n = apps::predict_dataset(model, tok, apps::read_dataset_arg(args), out, o);
  std::printf("predictions %s: %zu examples (%zu new); %.0f context positions, TTFT %.1f ms, decode %.1f tokens/s\n",
              out.c_str(), n.total, n.added, n.cost.examples ? n.cost.context_positions / n.cost.examples : 0.0,
              n.cost.examples ? 1e3 * n.cost.prefill_seconds / n.cost.examples : 0.0,
              n.cost.decode_seconds > 0 ? n.cost.decode_tokens / n.cost.decode_seconds : 0.0);
  constexpr double kMiB = 1024.0 * 1024.0;
  std::printf("peak memory: host %.0f MiB%s", n.cost.peak_host_bytes / kMiB,
              n.cost.peak_host_process_wide ? " (process so far)" : "");
  if (n.cost.peak_device_bytes > 0) std::printf(", device %.0f MiB", n.cost.peak_device_bytes / kMiB);
  std::printf("\n");
  return 0;
}

}  // namespace

LLOCO_COMMAND("predict", "answer a dataset's questions from compressed documents (predictions for `eval`)", run_predict);
