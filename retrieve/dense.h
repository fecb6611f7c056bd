// Dense retrieval as in LLoCO's retrieval baseline: Contriever (facebook/contriever, a BERT-base
// encoder) embeds the question and each 512-token chunk as the mean of its last hidden states over
// real tokens, and chunks rank by inner product (top-5). DenseEncoder wraps the WordPiece tokenizer
// and the BERT model of an HF directory; DenseRanker searches an exact FlatIndex of the chunk keys,
// which a compressed store caches in <store>/retrieval/ (a FAISS file plus what it was built from).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "models/bert.h"
#include "models/wordpiece.h"
#include "retrieve/context.h"
#include "retrieve/ranker.h"
#include "retrieve/vector_index.h"

namespace lloco::retrieve {

struct DenseEncoderOptions {
  enum class Pooling { kMean, kCls };
  Pooling pooling = Pooling::kMean;  // Contriever: mean over real tokens; DPR-style encoders: [CLS]
  // WordPiece ids per text with [CLS]/[SEP]; 0: the tokenizer's model_max_length (512 for Contriever),
  // capped at the model's positions, which is what HF's truncation=True gives.
  int32_t max_tokens = 0;
  int64_t batch_size = 32;           // texts per forward, grouped by length so padding stays small
  bool progress = false;             // report embedded texts / s on stderr (store indexing)
};

class DenseEncoder {
 public:
  // An HF BERT directory: config.json, model.safetensors, vocab.txt [, tokenizer_config.json].
  static std::shared_ptr<const DenseEncoder> load(const std::string& dir, Device device = cpu(),
                                                  DType dtype = DType::F32, DenseEncoderOptions options = {});
  // Embeddings of the texts, in their order: [N, dim()] f32 on the host.
  Tensor embed(const std::vector<std::string>& texts) const;
  int64_t dim() const { return model_.config.hidden_size; }
  const std::string& dir() const { return dir_; }
  // Identity of the weights, vocabulary, pooling, length and compute dtype (the files hashed by size,
  // head and tail): a cached index built by another encoder is rebuilt, not reused.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  DenseEncoder(std::string dir, models::BertModel model, models::WordPieceTokenizer tok, DenseEncoderOptions options);

  std::string dir_, fingerprint_;
  models::BertModel model_;
  models::WordPieceTokenizer tok_;
  DenseEncoderOptions options_;  // max_tokens resolved
};

class DenseRanker final : public PassageRanker {
 public:
  // index: the passages' keys in passage order, built by `encoder` (inner product).
  DenseRanker(std::shared_ptr<const DenseEncoder> encoder, FlatIndex index);
  // Embeds the texts (one batch pass) and indexes them.
  static std::unique_ptr<const DenseRanker> build(std::shared_ptr<const DenseEncoder> encoder,
                                                  const std::vector<std::string>& texts);
  int64_t size() const override { return index_.size(); }
  std::vector<Hit> search(const std::string& query, int64_t k) const override;
  std::string name() const override { return "dense"; }
  const FlatIndex& index() const { return index_; }

 private:
  std::shared_ptr<const DenseEncoder> encoder_;
  FlatIndex index_;
};

RankerFactory dense_ranker_factory(std::shared_ptr<const DenseEncoder> encoder);

// The store's chunk keys under <store>/retrieval/dense.{faiss,json}: reused when the JSON names this
// encoder's fingerprint and the passages' ids; when the store has grown, only the new chunks are
// embedded; otherwise rebuilt. Both files are written atomically, the JSON last, so a crash between
// them leaves a mismatch that the next call rebuilds.
std::unique_ptr<const DenseRanker> store_dense_ranker(const std::string& store_dir, const std::vector<Passage>& passages,
                                                      std::shared_ptr<const DenseEncoder> encoder);

// ContextRetriever over every chunk of a store, ranked by the store's dense index (built if needed).
ContextRetriever dense_context_retriever(const std::string& store_dir, std::shared_ptr<const DenseEncoder> encoder);

}  // namespace lloco::retrieve
