// Compression over a process group (`lloco launch`): documents are shared out across ranks, each rank
// writes its own store, and rank 0 merges them into the one store a single process would write.
// (The questions' counterpart, predict_sharded, is in apps/pipeline.h.)
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/collective.h"

namespace lloco::apps {

// Indices of the items rank `rank` of `world` takes: largest first onto the least-loaded rank, so
// ranks finish together; every rank computes the same split from the same sizes.
std::vector<size_t> balanced_share(const std::vector<size_t>& sizes, int rank, int world);

// Compresses the documents `dir` does not hold yet. Documents whose ids are empty are tokenized by
// `tokenize` on the rank that compresses them. Ranks write DIR/ranks/rank-R, rank 0 merges them
// (and those an earlier, stopped run left behind, made with any rank count).
compress::StoreManifest compress_sharded(Communicator& comm, const compress::AutoCompressor& encoder,
                                         std::vector<compress::TokenizedDoc> docs, const std::string& dir,
                                         const compress::CorpusOptions& options,
                                         const std::function<std::vector<int32_t>(const std::string&)>& tokenize);

}  // namespace lloco::apps
