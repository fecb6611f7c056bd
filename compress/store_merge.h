// Merging compressed stores (compress/store.h). Compression shards across processes: rank r of W
// compresses every W-th document into its own store (conventionally rank_store_dir(store, r)), and
// merge_stores then unites those stores into one.
//
// What a merge guarantees:
//   - Every part (the inputs, and `out` when it already holds a store) agrees on the encoder and on
//     every compression setting; the first disagreement is an error naming the input, the field and
//     both values. The encoder is compared by fingerprint (by path only where a version-1 store has
//     none), so stores compressed on machines that mount the encoder elsewhere still merge.
//   - A chunk id in two parts is an error naming both directories, unless both copies are identical:
//     same document, group, span and vector count, the same vector bytes and the same text. Identical
//     copies are kept once; this is what lets a rerun of a merge skip what it already merged.
//   - A document keeps one group across parts. Groups are united; a group whose adapters (or
//     datasets) are both non-empty and differ is an error naming both directories; otherwise the
//     non-empty one is kept.
//   - Shards are given fresh names continuing `out`'s numbering (summaries-NNNNN and texts-NNNNN
//     together), so the names `out` lists stay summaries-00000.. without gaps and a later resumed
//     `compress_corpus` into `out` does not collide with them.
//   - Everything is checked (settings, groups, ids, the shards' tensors) before the first write, so a
//     rejected merge leaves `out` untouched. Then, per input: its shard files are written atomically
//     under their new names, and the manifest listing them last. A merge stopped anywhere leaves `out`
//     valid (it lists only fully written files); a rerun skips the inputs already listed (identical
//     duplicates) and rewrites any unlisted leftovers.
//   - Move mode hard-links each shard into `out` (a rename that cannot lose the file: the input stays
//     whole until `out`'s manifest lists its chunks; other filesystems fall back to copying), then
//     removes the input: its manifest first, then its shards, texts and retrieval/ cache, and the
//     directory once empty. A stop between those steps leaves an input without a manifest, which a
//     rerun names; `out` already holds all of it.
//   - Derived caches are not merged: an input's retrieval/ (dense chunk keys) is left behind, and the
//     dense ranker (retrieve/dense.h store_dense_ranker) embeds the chunks `out` gained on first use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compress/store.h"

namespace lloco::compress {

struct MergeOptions {
  bool move = false;   // hard-link shards into `out` (copy across filesystems), then remove the inputs
  bool quiet = false;  // one progress line per input on stderr otherwise
};

// Merges the stores in `inputs` into `out` (created if needed; a store already there is one of the
// parts) and returns `out`'s manifest. See the top of this file for the checks and guarantees.
StoreManifest merge_stores(const std::vector<std::string>& inputs, const std::string& out, const MergeOptions& options);

// "<store>/ranks/rank-<rank>": where rank `rank` of a sharded compression writes its own store.
std::string rank_store_dir(const std::string& store, int rank);

// Bytes of the shard and text files `manifest` lists in `dir`.
int64_t store_file_bytes(const std::string& dir, const StoreManifest& manifest);

}  // namespace lloco::compress
