// `lloco serve`: LLoCO's online stage behind an OpenAI-compatible HTTP API (apps/http). Each chat
// request retrieves compressed chunks from the store, applies their group's LoRA adapter and answers
// with the summary vectors prepended (apps/serve_backend.h). Only argv is handled here.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/http/http_server.h"
#include "apps/http/openai_api.h"
#include "apps/retriever_args.h"
#include "apps/serve_backend.h"
#include "compress/autocompressor.h"
#include "core/atomic_file.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco serve --model DIR [--store DIR] [options]

Serves LLoCO over an OpenAI-compatible API: POST /v1/chat/completions (streaming with "stream":
true), GET /v1/models, GET /health. The last user message is the question: BM25 over the store's
chunk texts (or Contriever, with --retriever-model) picks the top-k chunks, their summary vectors are prepended to the prompt, and the
adapter `lloco finetune --group` registered for their group is applied.

Request "model": "lloco" (retrieve from every group), a group's name (retrieve within that group),
or "base" (the decoder alone). Extension fields: "lloco": {"top_k": K, "doc_ids": [...] (use these
documents instead of retrieving), "adapter": GROUP (force that group's adapter)}. The response's
"lloco" field reports the chunks and adapter used and timings.

  --model DIR            decoder: an HF LLaMA directory or an AutoCompressor's (LLoCO decodes with those)
  --store DIR            a `lloco compress` store with chunk texts (without one, only "base" is served)
  --tokenizer PATH       default: MODEL/tokenizer.model
)" "%s" R"(                         (the store's chunk keys are cached in STORE/retrieval/, built on first use)
  --host H --port P      default 127.0.0.1:8080 (port 0: any free port)
  --port-file PATH       write the bound port there (atomically) once listening
  --top-k K              chunks per question when the request does not say (default 1)
  --max-tokens N         answer length when the request does not say (default 256)
  --context-window N     positions the decoder may use (default: the model's max_position_embeddings)
  --max-batch N          greedy requests decoded together, each with its own context and adapter (default 8)
  --batch-window-ms MS   how long a request waits for others to join its batch (default 2)
  --max-connections N    default 64
  --dtype f32|bf16|f16   --device cpu|cuda[:N]   --quiet (no access log)   --help
)";

int run_serve(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"model", "store", "tokenizer", "host", "port", "port-file", "top-k", "max-tokens",
                         "context-window", "max-connections", "dtype", "device", "max-batch", "batch-window-ms",
                         "retriever-model"},
                        {"quiet", "help"});
  if (args.flag("help")) {
    std::printf(kUsage, apps::kRetrieverOptionsHelp);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  if (!args.has("model")) throw std::runtime_error("--model is required (see --help)");
  if (args.has("retriever-model") && !args.has("store")) throw std::runtime_error("--retriever-model needs --store");
  const std::string model_dir = args.str("model", "");
  models::LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  const Device device = apps::parse_device(args.str("device", "cpu"));
  models::LlamaModel decoder = compress::load_decoder(model_dir, load).to(device);
  const std::string tok_path = args.str("tokenizer", (fs::path(model_dir) / "tokenizer.model").string());
  if (!fs::exists(tok_path)) throw std::runtime_error("no tokenizer at " + tok_path + "; pass --tokenizer");
  auto tok = std::make_shared<const models::SentencePieceTokenizer>(tok_path);
  std::shared_ptr<const retrieve::ContextRetriever> retriever;
  if (const auto encoder = apps::dense_encoder_arg(args, device, !args.flag("quiet")))
    retriever = std::make_shared<const retrieve::ContextRetriever>(
        retrieve::dense_context_retriever(args.str("store", ""), encoder));
  else if (args.has("store"))
    retriever = std::make_shared<const retrieve::ContextRetriever>(retrieve::ContextRetriever::from_store(args.str("store", "")));

  apps::ServeOptions o;
  o.top_k = args.integer("top-k", 1);
  o.max_tokens = args.integer("max-tokens", 256);
  o.context_window = args.integer("context-window", 0);
  o.max_batch = args.integer("max-batch", 8);
  o.batch_window_ms = static_cast<int>(args.integer("batch-window-ms", 2));
  if (o.top_k < 0 || o.max_tokens < 1) throw std::runtime_error("--top-k must be >= 0 and --max-tokens >= 1");
  auto backend = std::make_shared<apps::LlocoChatBackend>(std::move(decoder), tok, retriever, o);

  http::HttpServerOptions so;
  so.host = args.str("host", "127.0.0.1");
  so.port = static_cast<int>(args.integer("port", 8080));
  so.max_connections = static_cast<int>(args.integer("max-connections", 64));
  if (!args.flag("quiet"))
    so.access_log = [](const http::Request& req, int status, double ms) {
      std::fprintf(stderr, "%s %s -> %d (%.1f ms)\n", req.method.c_str(), req.target.c_str(), status, ms);
    };
  http::HttpServer server(so);
  http::OpenAiRoutesOptions ro;
  ro.serialize = false;  // the backend queues requests and batches them itself
  http::register_openai_routes(server, backend, ro);

  std::string names;
  for (const http::ModelInfo& m : backend->models()) names += (names.empty() ? "" : ", ") + m.id;
  const int received = http::run_until_signal(server, [&](int port) {
    if (args.has("port-file")) write_file_atomic(args.str("port-file", ""), std::to_string(port) + "\n");
    std::printf("lloco serve: listening on http://%s:%d (models: %s; %zu adapters)\n", so.host.c_str(), port,
                names.c_str(), backend->adapter_of_group().size());
    std::fflush(stdout);
  });
  std::fprintf(stderr, "lloco serve: signal %d, stopped\n", received);
  return 0;
}

}  // namespace

LLOCO_COMMAND("serve", "serve LLoCO over an OpenAI-compatible HTTP API (retrieval + per-group adapters)", run_serve);
