// The dense-retriever option the retrieval commands share (predict, serve, compress): --retriever-model
// DIR, a Contriever-style HF BERT directory (config.json, model.safetensors, vocab.txt), as in LLoCO's
// retrieval baseline. Without it they rank with BM25.
#pragma once
#include <memory>
#include <string>

#include "apps/args.h"
#include "retrieve/dense.h"

namespace lloco::apps {

inline const char* kRetrieverOptionsHelp =
    "  --retriever-model DIR  rank chunks with this Contriever-style BERT directory (mean-pooled, inner\n"
    "                         product; LLoCO's retriever) instead of BM25; it runs on --device in f32\n";

// The dense encoder --retriever-model names, on `device`; null when the option is absent.
inline std::shared_ptr<const retrieve::DenseEncoder> dense_encoder_arg(const Args& args, Device device, bool progress) {
  if (!args.has("retriever-model")) return nullptr;
  retrieve::DenseEncoderOptions o;
  o.progress = progress;
  return retrieve::DenseEncoder::load(args.str("retriever-model", ""), device, DType::F32, o);
}

}  // namespace lloco::apps
