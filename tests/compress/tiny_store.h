// What the store tests share: the tiny fixture AutoCompressor (4 summary tokens), a corpus of
// pre-tokenized documents of 4, 7, 10, ... tokens, settings that cut them into 5-token segments, and
// fresh directories.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "compress/store.h"

namespace lloco::compress::testing {

inline const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";

// Documents "doc-0", "doc-1", ... of 4 + 3d tokens (ids in [3, 63)), without group or text.
inline std::vector<TokenizedDoc> tiny_corpus(int n) {
  std::vector<TokenizedDoc> docs;
  for (int d = 0; d < n; ++d) {
    TokenizedDoc doc;
    doc.id = "doc-" + std::to_string(d);
    for (int i = 0; i < 4 + 3 * d; ++i) doc.ids.push_back(3 + (d * 13 + i * 7) % 60);
    docs.push_back(doc);
  }
  return docs;
}

// Whole documents, 5-token segments, 2 documents per shard, no progress lines.
inline CorpusOptions tiny_options() {
  CorpusOptions o;
  o.compress.segment_length = 5;
  o.encoder_name = "tests/fixtures/compress/tiny_ac";
  o.docs_per_shard = 2;
  o.quiet = true;
  return o;
}

// An empty path under the test temp directory.
inline std::filesystem::path fresh(const std::string& name) {
  const std::filesystem::path d = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(d);
  return d;
}

}  // namespace lloco::compress::testing
