// `lloco finetune`: LLoCO's second stage. Trains one LoRA adapter for a document group on QA pairs,
// each with its document's summary vectors (from a `lloco compress` store) in front of the prompt,
// and writes the adapter as a PEFT directory. Only argv and the JSONL fields are handled here; the
// work is lora::train_adapter.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/context_args.h"
#include "apps/dataset_args.h"
#include "apps/distributed_env.h"
#include "apps/pipeline.h"
#include "apps/train_args.h"
#include "compress/autocompressor.h"
#include "compress/store.h"
#include "eval/io.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"
#include "models/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco finetune --model DIR --store DIR (--qa FILE.jsonl | --dataset-file F) --out ADAPTER_DIR [options]
       lloco finetune --model DIR --context KIND --dataset-file F --out ADAPTER_DIR [options]

Fine-tunes one LoRA adapter (LLoCO: r 8, alpha 16, dropout 0.05 on q/k/v/o) on QA pairs with each
pair's compressed document prepended; the loss covers the answer (+ EOS) only. The run checkpoints
into --run-dir and continues from there when started again. With --context and a --dataset-file, the
pairs get that context instead (LLoCO's Table 2: the decoder fine-tuned on the uncompressed document,
truncated to its window); `lloco predict` with the same context options asks it the same way.

  --model DIR            decoder: an HF LLaMA directory or an AutoCompressor's (LLoCO decodes with those)
  --store DIR            the `lloco compress` store holding the documents' summary vectors
)" "%s%s" R"(  --qa FILE              JSONL, one QA pair per line
)" "%s" R"(                         (its examples: LLoCO's prompt for the dataset, the reference answer + EOS)
  --doc-field NAME       the pair's document id in the store (default "doc_id")
  --prompt-field NAME    prompt text (default "prompt"; encoded without BOS, as LLoCO prompts)
  --answer-field NAME    answer text (default "answer"; EOS is appended)
  --prompt-ids-field NAME / --answer-ids-field NAME   pre-tokenized prompt / answer ids instead
  --tokenizer PATH       default: MODEL/tokenizer.model
  --group NAME           record the adapter as this store group's (what `lloco serve` applies to it)
  --run-dir DIR          metrics.jsonl + checkpoint.safetensors (default: OUT/run)
  --epochs E             default 3 (LLoCO), or --steps N
  --batch-size N         examples per micro-batch (default 1)
  --grad-accum N         micro-batches per step (default 8: LLoCO's 4 GPUs x 1 x 2)
  --lr X                 default 2e-5;  --schedule constant|linear|cosine (default cosine)
  --warmup-ratio X       default 0.04;  --weight-decay X (default 0);  --max-grad-norm X (default 1)
  --rank R --alpha A --dropout P        default 8, 16, 0.05
  --targets LIST         default q_proj,k_proj,v_proj,o_proj
  --seed S               data order and dropout (default 42)
  --checkpoint-every N   steps (default: 0 = only at the end)
  --gradient-checkpointing   recompute each decoder layer in backward
  --dtype f32|bf16|f16   --device cpu|cuda[:N]   --quiet   --help

Data-parallel: `lloco launch --nproc N finetune ...` splits each step's --grad-accum micro-batches
over N ranks (a multiple of N) and gives the same adapter as one process; rank 0 writes it.
)";

int run_finetune(const std::vector<std::string>& argv) {
  const apps::Args args(
      argv,
      {"model", "store", "qa", "dataset-file", "format", "out", "doc-field", "prompt-field", "answer-field", "prompt-ids-field",
       "answer-ids-field", "tokenizer", "run-dir", "epochs", "steps", "batch-size", "grad-accum", "lr", "schedule",
       "warmup-ratio", "weight-decay", "max-grad-norm", "rank", "alpha", "dropout", "targets", "seed",
       "checkpoint-every", "dtype", "device", "group", "context", "text-budget", "retrieval-chunk-tokens",
       "retrieval-top-k", "retriever-model"},
      {"gradient-checkpointing", "quiet", "skip-bad-lines", "help"});
  if (args.flag("help")) {
    std::printf(kUsage, apps::kContextOptionsHelp, apps::kRetrieverOptionsHelp, apps::kDatasetOptionsHelp);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  apps::require_options(args, {"model", "out"});
  if (args.has("qa") == args.has("dataset-file")) throw std::runtime_error("give exactly one of --qa and --dataset-file");
  if (args.has("dataset-file") && args.has("prompt-ids-field"))
    throw std::runtime_error("--dataset-file examples are text: drop the ids fields");
  if (args.has("prompt-ids-field") != args.has("answer-ids-field"))
    throw std::runtime_error("give both --prompt-ids-field and --answer-ids-field, or neither");
  if (args.has("qa") && args.has("context"))
    throw std::runtime_error("--qa pairs bring their own prompts after the --store's summary vectors: --context "
                             "needs --dataset-file");
  if (args.has("qa") && !args.has("store")) throw std::runtime_error("--qa needs --store (its documents' summary vectors)");
  if (args.has("group") && !args.has("store")) throw std::runtime_error("--group registers the adapter in a --store: give one");

  const std::string model_dir = args.str("model", ""), store_dir = args.str("store", ""), out = args.str("out", "");
  models::LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  const train::DistributedOptions dist = apps::distributed_from_env();
  const Device device = apps::rank_device(args.str("device", "cpu"), dist);
  const std::shared_ptr<Communicator> comm = apps::connect_from_env(dist, device);
  const bool lead = comm->rank() == 0;
  models::LlamaModel model = compress::load_decoder(model_dir, load).to(device);
  model.gradient_checkpointing = args.flag("gradient-checkpointing");
  const bool pretokenized = args.has("prompt-ids-field");
  std::unique_ptr<models::Tokenizer> tok;
  if (!pretokenized) {
    const std::string path = args.str("tokenizer", (fs::path(model_dir) / "tokenizer.model").string());
    if (!fs::exists(path)) throw std::runtime_error("no tokenizer at " + path + "; pass --tokenizer or the ids fields");
    tok = std::make_unique<models::SentencePieceTokenizer>(path);
  }

  const apps::ContextOptions context = apps::read_context_args(args, device);  // checked before any work
  compress::StoreManifest manifest;
  if (!store_dir.empty()) manifest = compress::read_store(store_dir);
  if (args.has("group") && !manifest.groups.count(args.str("group", "")))  // before training, not after
    throw std::runtime_error("--group '" + args.str("group", "") + "': the store " + store_dir + " has no such group");
  std::map<std::string, Tensor> summaries;  // each --qa document loaded once
  auto summary_of = [&](const std::string& doc) {
    auto it = summaries.find(doc);
    if (it == summaries.end()) it = summaries.emplace(doc, compress::load_document_summary(store_dir, manifest, doc).to(device)).first;
    return it->second;
  };
  std::vector<lora::QaExample> examples;
  const std::string qa_path = args.has("qa") ? args.str("qa", "") : args.str("dataset-file", "");
  size_t documents = 0;
  if (args.has("dataset-file")) {
    const eval::DatasetFile data = apps::read_dataset_arg(args);
    documents = data.documents.size();
    examples = apps::qa_examples(data, *tok, context, device);
  }
  eval::DatasetFile seen;
  const std::string doc_field = args.str("doc-field", "doc_id");
  if (args.has("qa")) eval::for_each_jsonl(qa_path, false, seen, [&](const eval::json& rec, size_t line) {
    const std::string where = qa_path + ":" + std::to_string(line);
    const eval::json& id = eval::field(rec, doc_field.c_str());
    lora::QaExample e;
    e.prefix = summary_of(id.is_string() ? id.get<std::string>() : id.dump());
    if (pretokenized) {
      e.prompt = apps::token_ids_field(rec, args.str("prompt-ids-field", ""), where);
      e.answer = apps::token_ids_field(rec, args.str("answer-ids-field", ""), where);
    } else {
      e.prompt = tok->encode(eval::get_string(rec, args.str("prompt-field", "prompt").c_str()), false, false);
      e.answer = tok->encode(eval::get_string(rec, args.str("answer-field", "answer").c_str()), false, true);
    }
    examples.push_back(std::move(e));
  });
  if (examples.empty()) throw std::runtime_error(qa_path + ": no QA pairs");
  documents = std::max(documents, summaries.size());

  lora::LoraConfig cfg;
  cfg.rank = args.integer("rank", 8);
  cfg.alpha = args.real("alpha", 16.0);
  cfg.dropout = args.real("dropout", 0.05);
  if (args.has("targets")) {
    cfg.targets.clear();
    std::stringstream list(args.str("targets", ""));
    for (std::string name; std::getline(list, name, ',');)
      cfg.targets.push_back(lora::proj_from_module_name(name, "--targets"));
  }
  auto adapters = std::make_shared<lora::LoraAdapters>(
      lora::LoraAdapters::zeros(model.config, cfg, 1, model.embed_tokens.dtype(), device));
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 42));
  adapters->init_peft(0, seed);

  lora::AdapterTrainOptions o;
  o.batch_size = args.integer("batch-size", 1);
  o.loop.grad_accumulation = args.integer("grad-accum", 8);
  o.loop.steps = args.has("steps") ? args.integer("steps", 0)
                                   : lora::steps_for_epochs(static_cast<int64_t>(examples.size()), args.real("epochs", 3.0),
                                                            o.batch_size, o.loop.grad_accumulation);
  apps::read_loop_args(args, out, comm, o.loop);
  o.lr = args.real("lr", 2e-5);
  o.schedule = args.str("schedule", "cosine");
  o.warmup_ratio = args.real("warmup-ratio", 0.04);
  o.weight_decay = args.real("weight-decay", 0.0);
  o.seed = seed;
  if (lead)
    std::fprintf(stderr, "finetune: %zu QA pairs over %zu documents (context %s), %lld steps of %lld x %lld examples%s\n",
                 examples.size(), documents, apps::context_kind_name(context.context), static_cast<long long>(o.loop.steps),
                 static_cast<long long>(o.batch_size), static_cast<long long>(o.loop.grad_accumulation),
                 comm->world_size() > 1 ? (" over " + std::to_string(comm->world_size()) + " ranks").c_str() : "");
  const train::TrainResult r = lora::train_adapter(model, adapters, examples, o);
  if (!lead) return 0;  // the replicas are identical: rank 0 writes the one adapter
  lora::save_peft_adapter(*adapters, 0, out, model_dir);
  if (args.has("group")) {
    compress::register_adapter(store_dir, args.str("group", ""), out);
    std::printf("registered %s as the adapter of group '%s' in %s\n", out.c_str(), args.str("group", "").c_str(),
                store_dir.c_str());
  }
  if (r.losses.empty())
    std::printf("saved PEFT adapter %s after %lld steps (the run was already complete)\n", out.c_str(),
                static_cast<long long>(r.steps_done));
  else
    std::printf("saved PEFT adapter %s after %lld steps (answer loss %.4f at the last step)\n", out.c_str(),
                static_cast<long long>(r.steps_done), r.losses.back());
  return 0;
}

}  // namespace

LLOCO_COMMAND("finetune", "train a group's LoRA adapter on QA pairs with compressed documents (PEFT output)", run_finetune);
