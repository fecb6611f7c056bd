// `lloco generate`: loads an HF directory or a llama2.c .bin, generates from a prompt with streaming
// output, and reports prefill and decode throughput. Only argv handling lives here; the work is in
// models/generate.h.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "models/checkpoint.h"
#include "models/generate.h"
#include "models/tokenizer.h"
#if defined(LLOCO_WITH_LORA)
#include "lora/peft_io.h"
#endif
#if defined(LLOCO_WITH_COMPRESS)
#include "compress/autocompressor.h"
#endif

namespace {

namespace fs = std::filesystem;
using namespace lloco;
using namespace lloco::models;

constexpr const char* kUsage = R"(usage: lloco generate --model PATH (--prompt TEXT | --prompt-file F) [options]

Generates text with a LLaMA-family model, printing tokens as they come.

  --model PATH             HF directory (config.json + safetensors; an AutoCompressor's too) or llama2.c .bin
  --tokenizer PATH         tokenizer.model (SentencePiece) or llama2.c tokenizer .bin; default: the
                           model directory's tokenizer.model, tokenizer.bin or tok*.bin
  --prompt TEXT            the prompt (BOS is prepended)
  --prompt-file F          read the prompt from F
  --max-new-tokens N       default 256
  --temperature T          0 = greedy (default 0)
  --top-k K                default 0 (off)
  --top-p P                default 1 (off)
  --repetition-penalty R   default 1 (off), HF semantics
  --seed S                 sampling seed (default 0)
  --stop STR               stop when STR appears (repeatable)
  --dtype f32|bf16|f16     parameter dtype (default: as stored)
  --adapter DIR            a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)
                           applied to the model's projections, unmerged
  --device cpu|cuda[:N]    default cpu
  --help                   this text
)";

std::string find_tokenizer(const std::string& model) {
  const fs::path dir = fs::is_directory(model) ? fs::path(model) : fs::path(model).parent_path();
  for (const char* name : {"tokenizer.model", "tokenizer.bin"})
    if (fs::exists(dir / name)) return (dir / name).string();
  for (const auto& e : fs::directory_iterator(dir.empty() ? fs::path(".") : dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("tok", 0) == 0 && e.path().extension() == ".bin") return e.path().string();
  }
  throw std::runtime_error("no tokenizer found next to " + model + "; pass --tokenizer");
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path, int64_t vocab_size) {
  if (fs::path(path).extension() == ".model") return std::make_unique<SentencePieceTokenizer>(path);
  return std::make_unique<Llama2cTokenizer>(path, static_cast<int32_t>(vocab_size));
}

int run_generate(const std::vector<std::string>& raw) {
  // --stop may repeat, which Args (one value per key) cannot hold: collect it first.
  std::vector<std::string> argv, stops;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == "--stop") {
      if (i + 1 >= raw.size()) throw std::runtime_error("option --stop needs a value");
      stops.push_back(raw[++i]);
    } else if (raw[i].rfind("--stop=", 0) == 0) {
      stops.push_back(raw[i].substr(7));
    } else {
      argv.push_back(raw[i]);
    }
  }
  const apps::Args args(argv,
                        {"model", "tokenizer", "prompt", "prompt-file", "max-new-tokens", "temperature", "top-k", "top-p",
                         "repetition-penalty", "seed", "dtype", "device", "adapter"},
                        {"help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  if (!args.has("model")) throw std::runtime_error("--model is required (see --help)");
  if (args.has("prompt") == args.has("prompt-file"))
    throw std::runtime_error("give exactly one of --prompt and --prompt-file");
  std::string prompt = args.str("prompt", "");
  if (args.has("prompt-file")) {
    std::ifstream f(args.str("prompt-file", ""), std::ios::binary);
    if (!f) throw std::runtime_error("cannot read --prompt-file '" + args.str("prompt-file", "") + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    prompt = ss.str();
  }
  LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  const std::string model_path = args.str("model", "");
  const Device device = apps::parse_device(args.str("device", "cpu"));
#if defined(LLOCO_WITH_COMPRESS)
  // An AutoCompressor directory decodes with its LLaMA weights (LLoCO's decoder).
  LlamaModel model = (fs::is_directory(model_path) ? compress::load_decoder(model_path, load) : load_model(model_path, load))
                         .to(device);
#else
  LlamaModel model = load_model(model_path, load).to(device);
#endif
  if (args.has("adapter")) {
#if defined(LLOCO_WITH_LORA)
    const std::string dir = args.str("adapter", "");
    auto adapters = std::make_shared<lora::LoraAdapters>(
        lora::load_peft_adapters(model.config, {dir}, model.embed_tokens.dtype(), device));
    lora::attach(model, adapters, {0});
    std::fprintf(stderr, "adapter %s: r %lld, scale %g, %zu target modules\n", dir.c_str(),
                 static_cast<long long>(adapters->config().rank), adapters->config().scale(),
                 adapters->config().targets.size());
#else
    throw std::runtime_error("--adapter needs the lora layer (LLOCO_LAYERS without lora in this build)");
#endif
  }
  const std::string tok_path = args.has("tokenizer") ? args.str("tokenizer", "") : find_tokenizer(model_path);
  const auto tok = open_tokenizer(tok_path, model.config.vocab_size);

  GenerateOptions opts;
  opts.max_new_tokens = args.integer("max-new-tokens", 256);
  opts.temperature = args.real("temperature", 0.0);
  opts.top_k = args.integer("top-k", 0);
  opts.top_p = args.real("top-p", 1.0);
  opts.repetition_penalty = args.real("repetition-penalty", 1.0);
  opts.seed = static_cast<uint64_t>(args.integer("seed", 0));
  opts.stop = stops;
  opts.eos_ids = {tok->eos_id()};

  const std::vector<int32_t> ids = tok->encode(prompt, true, false);
  std::fprintf(stderr, "model %s: %lld layers, d=%lld, %.2fM params, %s; prompt %zu tokens\n", model_path.c_str(),
               static_cast<long long>(model.config.num_layers), static_cast<long long>(model.config.hidden_size),
               static_cast<double>(model.num_parameters()) / 1e6, dtype_name(model.embed_tokens.dtype()), ids.size());
  std::printf("%s", prompt.c_str());
  std::fflush(stdout);
  std::string pending;  // bytes held back until they form complete UTF-8
  int32_t prev = ids.empty() ? -1 : ids.back();
  const GenerateResult r = generate(model, {ids}, opts, tok.get(), [&](int64_t, int32_t id) {
    if (id == tok->eos_id()) return;
    pending += tok->decode_piece(prev, id);
    prev = id;
    const size_t n = utf8_complete_prefix(pending);
    std::fwrite(pending.data(), 1, n, stdout);
    std::fflush(stdout);
    pending.erase(0, n);
  });
  std::fwrite(pending.data(), 1, pending.size(), stdout);
  std::printf("\n");
  const char* why = r.finish[0] == FinishReason::Eos ? "eos" : r.finish[0] == FinishReason::Stop ? "stop"
                  : r.finish[0] == FinishReason::Cancelled ? "cancelled" : "length";
  std::fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s); decode: %lld tokens in %.3f s (%.1f tok/s); finish: %s\n",
               static_cast<long long>(r.prefill_tokens), r.prefill_seconds,
               r.prefill_seconds > 0 ? r.prefill_tokens / r.prefill_seconds : 0.0,
               static_cast<long long>(r.decode_tokens), r.decode_seconds,
               r.decode_seconds > 0 ? r.decode_tokens / r.decode_seconds : 0.0, why);
  return 0;
}

}  // namespace

LLOCO_COMMAND("generate", "generate text with a LLaMA model (HF dir or llama2.c .bin)", run_generate);
