// `lloco compress-train`: trains (or adapts) the AutoCompressor context encoder with its own objective
// (compress/ac_training.h): summary-token table + LoRA, merged into the written encoder. Only argv and
// the JSONL fields are handled here; the work is compress::train_autocompressor.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/dataset_args.h"
#include "apps/distributed_env.h"
#include "apps/train_args.h"
#include "compress/ac_training.h"
#include "eval/io.h"
#include "models/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco compress-train --encoder DIR --data FILE.jsonl (--ids-field NAME | --text-field NAME) --out DIR [options]

Trains an AutoCompressor's summary-token table and a LoRA on its LLaMA (base frozen) with the
AutoCompressor objective: each sequence is cut into substeps of randomly split segments, every
segment token is predicted with the earlier segments' summary vectors as context, and the summary
vectors are detached between substeps. Writes the LoRA-merged encoder to OUT (AutoCompressor HF
directory). The run checkpoints into --run-dir and continues from there when started again.
Recipe defaults (AutoCompressor-Llama-2-7b-6k): 6144-token sequences, 2 substeps x 2 segments,
32 sequences a step, lr 8e-4 with 5000 warmup steps then linear decay, LoRA r 16, alpha 16,
dropout 0.05 on q/k/v/o.

  --encoder DIR          the AutoCompressor HF directory to start from
  --data FILE            JSONL, one document per line
  --ids-field NAME       pre-tokenized documents (a list of token ids)
  --text-field NAME      text instead, tokenized without BOS in 10,000-character slices
  --tokenizer PATH       default: DIR/tokenizer.model
  --out DIR              the trained encoder
  --seq-len N            each document is cut into windows of N tokens; a shorter rest is dropped
                         (default 6144)
  --substeps N --segments-per-substep N   default 2 and 2
  --steps N              default: one epoch (sequences / grad-accum, rounded up)
  --grad-accum N         sequences per step (default 32)
  --lr X                 default 8e-4;  --schedule constant|linear|cosine (default linear)
  --warmup-steps N       default 5000;  --weight-decay X (default 0);  --max-grad-norm X (default 1)
  --rank R --alpha A --dropout P        default 16, 16, 0.05
  --seed S               data order, segment plans, LoRA init and dropout (default 42)
  --run-dir DIR          metrics.jsonl + checkpoint.safetensors (default: OUT/run)
  --checkpoint-every N   steps (default: 0 = only at the end)
  --dtype f32|bf16|f16   --device cpu|cuda[:N]   --quiet   --help

Data-parallel: `lloco launch --nproc N compress-train ...` splits each step's --grad-accum
sequences over N ranks (a multiple of N); the result equals one process's; rank 0 writes it.
)";

int run_compress_train(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"encoder", "data", "ids-field", "text-field", "tokenizer", "out", "seq-len", "substeps",
                         "segments-per-substep", "steps", "grad-accum", "lr", "schedule", "warmup-steps",
                         "weight-decay", "max-grad-norm", "rank", "alpha", "dropout", "seed", "run-dir",
                         "checkpoint-every", "dtype", "device"},
                        {"quiet", "help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  apps::require_options(args, {"encoder", "data", "out"});
  if (args.has("ids-field") == args.has("text-field"))
    throw std::runtime_error("give exactly one of --ids-field and --text-field");
  const std::string encoder_dir = args.str("encoder", ""), data = args.str("data", ""), out = args.str("out", "");
  const int64_t seq_len = args.integer("seq-len", 6144);
  if (seq_len < 1) throw std::runtime_error("--seq-len must be >= 1, got " + std::to_string(seq_len));
  models::LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  const train::DistributedOptions dist = apps::distributed_from_env();
  const Device device = apps::rank_device(args.str("device", "cpu"), dist);
  const std::shared_ptr<Communicator> comm = apps::connect_from_env(dist, device);
  const bool lead = comm->rank() == 0;
  const compress::AutoCompressor encoder = compress::AutoCompressor::load(encoder_dir, load).to(device);
  std::unique_ptr<models::Tokenizer> tok;
  if (args.has("text-field")) {
    const std::string path = args.str("tokenizer", (fs::path(encoder_dir) / "tokenizer.model").string());
    if (!fs::exists(path)) throw std::runtime_error("no tokenizer at " + path + "; pass --tokenizer or --ids-field");
    tok = std::make_unique<models::SentencePieceTokenizer>(path);
  }

  std::vector<std::vector<int32_t>> sequences;
  int64_t documents = 0, dropped = 0;
  eval::DatasetFile seen;
  eval::for_each_jsonl(data, false, seen, [&](const eval::json& rec, size_t line) {
    const std::vector<int32_t> ids =
        tok ? models::encode_long_document(*tok, eval::get_string(rec, args.str("text-field", "").c_str()), 10000, 0)
            : apps::token_ids_field(rec, args.str("ids-field", ""), data + ":" + std::to_string(line));
    const auto n = static_cast<int64_t>(ids.size());
    for (int64_t at = 0; at + seq_len <= n; at += seq_len)
      sequences.emplace_back(ids.begin() + at, ids.begin() + at + seq_len);
    dropped += n % seq_len;
    ++documents;
  });
  if (sequences.empty())
    throw std::runtime_error(data + ": no document has --seq-len " + std::to_string(seq_len) + " tokens");

  compress::AcTrainOptions o;
  o.substeps = args.integer("substeps", 2);
  o.segments_per_substep = args.integer("segments-per-substep", 2);
  o.loop.grad_accumulation = args.integer("grad-accum", 32);
  if (o.loop.grad_accumulation < 1) throw std::runtime_error("--grad-accum must be >= 1");
  const auto n_seq = static_cast<int64_t>(sequences.size());
  o.loop.steps = args.integer("steps", (n_seq + o.loop.grad_accumulation - 1) / o.loop.grad_accumulation);
  apps::read_loop_args(args, out, comm, o.loop);
  o.lr = args.real("lr", 8e-4);
  o.schedule = args.str("schedule", "linear");
  o.warmup_steps = args.integer("warmup-steps", 5000);
  o.weight_decay = args.real("weight-decay", 0.0);
  o.lora.rank = args.integer("rank", 16);
  o.lora.alpha = args.real("alpha", 16.0);
  o.lora.dropout = args.real("dropout", 0.05);
  o.seed = static_cast<uint64_t>(args.integer("seed", 42));
  if (lead) std::fprintf(stderr, "compress-train: %lld documents -> %lld sequences of %lld tokens (%lld tokens dropped), "
               "%lld steps of %lld sequences\n", static_cast<long long>(documents), static_cast<long long>(n_seq),
               static_cast<long long>(seq_len), static_cast<long long>(dropped), static_cast<long long>(o.loop.steps),
               static_cast<long long>(o.loop.grad_accumulation));
  const compress::AcTrainResult r = compress::train_autocompressor(encoder, sequences, o);
  if (!lead) return 0;  // the replicas are identical: rank 0 writes the encoder
  compress::save_autocompressor(r.encoder, out);
  if (r.train.losses.empty())
    std::printf("saved AutoCompressor %s after %lld steps (the run was already complete)\n", out.c_str(),
                static_cast<long long>(r.train.steps_done));
  else
    std::printf("saved AutoCompressor %s after %lld steps (loss %.4f at the first step of this run, %.4f at the last)\n",
                out.c_str(), static_cast<long long>(r.train.steps_done), r.train.losses.front(), r.train.losses.back());
  return 0;
}

}  // namespace

LLOCO_COMMAND("compress-train", "train an AutoCompressor encoder (summary tokens + merged LoRA) on token sequences",
              run_compress_train);
