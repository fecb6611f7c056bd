// `lloco compress`: LLoCO's offline stage. Reads documents from JSONL, compresses each with an
// AutoCompressor into summary vectors and writes a resumable store (compress/store.h) with each chunk's text and group for the retrievers. Only argv
// and the JSONL fields are handled here.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/dataset_args.h"
#include "apps/distributed_env.h"
#include "apps/retriever_args.h"
#include "apps/sharded.h"
#include "compress/store.h"
#include "eval/io.h"
#include "models/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco compress --encoder DIR (--docs FILE.jsonl | --dataset-file F) --out DIR [options]

Compresses every document into AutoCompressor summary vectors (50 per 1536-token segment for
AutoCompressor-Llama-2-7b-6k) and writes them to a store: summaries-*.safetensors, the texts the
retrievers index (texts-*.jsonl) and manifest.json (chunks, groups, adapters). Re-running with the
same settings continues where a stopped run ended.

  --encoder DIR          AutoCompressor HF directory (config.json with summary_length,
                         weights with embed_summary.weight)
  --docs FILE            JSONL, one document per line
)" "%s" R"(                         (a dataset's documents, each once, under their document ids)
  --out DIR              the store directory
  --id-field NAME        document id field (default "id"; numbers are accepted)
  --text-field NAME      text field (default "text"), tokenized as LLoCO does: no BOS, in
                         10,000-character slices, at most 122,880 tokens (80 segments)
  --ids-field NAME       read pre-tokenized documents (a list of token ids) from this field instead
  --tokenizer PATH       default: DIR/tokenizer.model
  --segment-length N     tokens per segment (default 1536)
  --chunk-tokens N       compress each document as independent chunks of N tokens, the unit that
                         `lloco serve` retrieves (default 0: one chunk per document, LLoCO's eval)
  --group NAME           the document group of every document (one LoRA adapter per group)
  --group-field NAME     per-document group field instead
  --group-dataset NAME   the prompt template new groups are served with (qmsum, qasper, ...)
  --docs-per-shard N     documents per safetensors shard (default 64)
)" "%s" R"(                         (also index the store's chunk texts with it, into OUT/retrieval/, for
                         `lloco serve --retriever-model`)
  --dtype f32|bf16|f16   encoder dtype, which is also the stored dtype (default: as stored)
  --device cpu|cuda[:N]  default cpu
  --quiet                no progress line
  --help                 this text

Sharded: `lloco launch --nproc N compress ...` gives each rank a share of the documents (balanced
by length), compresses it into OUT/ranks/rank-R, and rank 0 merges the shares into OUT once all
are done. A stopped sharded run resumes with any N.
)";

int run_compress(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"encoder", "docs", "dataset-file", "format", "out", "id-field", "text-field", "ids-field",
                         "tokenizer", "segment-length", "docs-per-shard", "dtype", "device", "chunk-tokens", "group",
                         "group-field", "group-dataset", "retriever-model"},
                        {"quiet", "skip-bad-lines", "help"});
  if (args.flag("help")) {
    std::printf(kUsage, apps::kDatasetOptionsHelp, apps::kRetrieverOptionsHelp);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "'");
  apps::require_options(args, {"encoder", "out"});
  if (args.has("docs") == args.has("dataset-file"))
    throw std::runtime_error("give exactly one of --docs and --dataset-file");
  if (args.has("group") && args.has("group-field")) throw std::runtime_error("give at most one of --group and --group-field");
  if (args.has("group-field") && !args.has("docs")) throw std::runtime_error("--group-field needs --docs");
  const std::string encoder_dir = args.str("encoder", ""), id_field = args.str("id-field", "id");
  models::LoadOptions load;
  if (args.has("dtype")) load.dtype = dtype_from_name(args.str("dtype", "f32"));
  train::DistributedOptions dist = apps::distributed_from_env();
  // Ranks finish their shares at different times and wait for each other; a crashed rank still
  // fails the group at once (its sockets close), and `lloco launch` stops the rest.
  dist.timeout_s = std::max(dist.timeout_s, 7 * 24 * 3600.0);
  const Device device = apps::rank_device(args.str("device", "cpu"), dist);
  const std::shared_ptr<Communicator> comm = apps::connect_from_env(dist, cpu());
  const std::string out = args.str("out", "");
  // A first filter, so stored texts are not kept; compress_sharded filters again after merging the
  // rank stores an earlier, stopped run left.
  const std::set<std::string> stored = compress::stored_ids(out);
  const compress::AutoCompressor encoder = compress::AutoCompressor::load(encoder_dir, load).to(device);

  std::unique_ptr<models::Tokenizer> tok;
  if (!args.has("ids-field")) {
    const std::string path = args.str("tokenizer", (fs::path(encoder_dir) / "tokenizer.model").string());
    if (!fs::exists(path)) throw std::runtime_error("no tokenizer at " + path + "; pass --tokenizer or --ids-field");
    tok = std::make_unique<models::SentencePieceTokenizer>(path);
  }
  // Documents are read whole, shared out, and only this rank's share is tokenized.
  std::vector<compress::TokenizedDoc> docs;
  if (args.has("dataset-file")) {
    if (!tok) throw std::runtime_error("--dataset-file needs text: drop --ids-field");
    for (const eval::Document& d : apps::read_dataset_arg(args).documents)
      if (d.text && !stored.count(d.id)) docs.push_back({d.id, {}, args.str("group", ""), *d.text});
  }
  eval::DatasetFile seen;
  if (args.has("docs")) eval::for_each_jsonl(args.str("docs", ""), false, seen, [&](const eval::json& rec, size_t line) {
    const eval::json& id = eval::field(rec, id_field.c_str());
    compress::TokenizedDoc d;
    d.id = id.is_string() ? id.get<std::string>() : id.dump();
    d.group = args.has("group-field") ? eval::get_string(rec, args.str("group-field", "").c_str()) : args.str("group", "");
    if (args.has("ids-field"))
      d.ids = apps::token_ids_field(rec, args.str("ids-field", ""), args.str("docs", "") + ":" + std::to_string(line));
    else
      d.text = eval::get_string(rec, args.str("text-field", "text").c_str());
    if (!stored.count(d.id)) docs.push_back(std::move(d));
  });
  compress::CorpusOptions o;
  o.compress.segment_length = args.integer("segment-length", 1536);
  o.docs_per_shard = args.integer("docs-per-shard", 64);
  o.chunk_tokens = args.integer("chunk-tokens", 0);
  o.group_dataset = args.str("group-dataset", "");
  if (tok) o.decode = [&tok](const std::vector<int32_t>& ids) { return tok->decode(ids); };
  o.encoder_name = fs::weakly_canonical(encoder_dir).string();  // the same store from any working directory
  o.quiet = args.flag("quiet");
  std::function<std::vector<int32_t>(const std::string&)> tokenize;
  if (tok) tokenize = [&tok](const std::string& text) {
    return models::encode_long_document(*tok, text, 10000, compress::kMaxDocumentTokens);
  };
  apps::compress_sharded(*comm, encoder, std::move(docs), out, o, tokenize);
  if (comm->rank() != 0) return 0;  // rank 0 reports (and builds the dense index)
  const compress::StoreManifest m = compress::read_store(out);
  int64_t tokens = 0, vectors = 0;
  std::set<std::string> documents;
  for (const compress::StoredChunk& c : m.chunks) {
    tokens += c.tokens();
    vectors += c.vectors;
    documents.insert(c.doc);
  }
  std::printf("store %s: %zu documents, %lld tokens -> %lld summary vectors (%.1fx fewer), %zu chunks, %zu groups, %s\n",
              out.c_str(), documents.size(), static_cast<long long>(tokens), static_cast<long long>(vectors),
              vectors > 0 ? static_cast<double>(tokens) / static_cast<double>(vectors) : 0.0, m.chunks.size(),
              m.groups.size(), m.dtype.c_str());
  if (const auto retriever = apps::dense_encoder_arg(args, device, !args.flag("quiet"))) {
    const auto ranker = retrieve::store_dense_ranker(out, retrieve::ContextRetriever::store_passages(out), retriever);
    std::printf("dense index %s: %lld chunk keys of dim %lld\n", (fs::path(out) / "retrieval" / "dense.faiss").c_str(),
                static_cast<long long>(ranker->size()), static_cast<long long>(retriever->dim()));
  }
  return 0;
}

}  // namespace

LLOCO_COMMAND("compress", "compress documents into AutoCompressor summary vectors (a resumable store)", run_compress);
