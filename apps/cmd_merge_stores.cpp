// `lloco merge-stores`: unites compressed stores (e.g. the per-rank stores of a sharded `compress`)
// into one (compress/store_merge.h). Only argv is handled here.
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "compress/store_merge.h"

namespace {

namespace fs = std::filesystem;
using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco merge-stores --out DIR IN1 [IN2 ...] [--move] [--quiet]

Merges compressed stores (from `lloco compress`, e.g. one per rank under STORE/ranks/rank-R) into
the store DIR, which may already hold one: its chunks are kept and the inputs' added. Every store
must come from the same encoder with the same settings; a chunk id in two stores must be the same
chunk; a group's adapter must agree. Nothing is written unless all of that holds. A stopped merge
leaves DIR valid and the same command completes it. Dense retrieval keys (STORE/retrieval/) are not
merged; `serve --retriever-model` embeds the new chunks.

  --out DIR   the merged store (created if needed)
  --move      hard-link the shard files instead of copying them (copies across filesystems) and
              remove each input once DIR lists its chunks
  --quiet     no per-input progress lines
  --help      this text
)";

int run_merge_stores(const std::vector<std::string>& argv) {
  const apps::Args args(argv, {"out"}, {"move", "quiet", "help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!args.has("out")) throw std::runtime_error("--out is required (see --help)");
  if (args.positional().empty()) throw std::runtime_error("give at least one input store (see --help)");
  const std::string out = args.str("out", "");
  const bool had_store = fs::exists(fs::path(out) / "manifest.json");
  const size_t before = had_store ? compress::read_store(out).chunks.size() : 0;
  compress::MergeOptions o;
  o.move = args.flag("move");
  o.quiet = args.flag("quiet");
  const compress::StoreManifest m = compress::merge_stores(args.positional(), out, o);
  std::set<std::string> docs;
  long long vectors = 0;
  for (const compress::StoredChunk& c : m.chunks) {
    docs.insert(c.doc);
    vectors += c.vectors;
  }
  std::printf("merged %zu stores into %s: %zu chunks (%zu new), %zu documents, %lld summary vectors, %zu groups, %lld bytes\n",
              args.positional().size(), out.c_str(), m.chunks.size(), m.chunks.size() - before, docs.size(), vectors,
              m.groups.size(), static_cast<long long>(compress::store_file_bytes(out, m)));
  return 0;
}

}  // namespace

LLOCO_COMMAND("merge-stores", "merge compressed stores (e.g. per-rank shards of compress) into one", run_merge_stores);
