// The context options `predict` and `finetune` share (--context, --store, --text-budget, the retrieval
// settings and --retriever-model), read into ContextOptions with the same checks in both, so an
// adapter trained on a context (finetune --context truncated_text) is asked questions in that context.
#pragma once
#include <stdexcept>
#include <string>

#include "apps/args.h"
#include "apps/context_input.h"
#include "apps/retriever_args.h"

namespace lloco::apps {

inline const char* kContextOptionsHelp =
    "  --context KIND         compressed (default: the --store's summary vectors), none (the prompt alone),\n"
    "                         truncated_text (or text: the document cut to --text-budget tokens, default\n"
    "                         4000, with the prompt: LLoCO's 4k-window baseline), or retrieved_text (LLoCO's\n"
    "                         retrieval baseline: the document cut into --retrieval-chunk-tokens (512)\n"
    "                         token chunks, the --retrieval-top-k (5) best for the question, in document\n"
    "                         order, within --text-budget; BM25 ranks them unless --retriever-model is given)\n";

inline const std::vector<std::string> kContextOptionNames{"context", "store", "text-budget", "retrieval-chunk-tokens",
                                                           "retrieval-top-k", "retriever-model"};

inline ContextOptions read_context_args(const Args& args, Device device) {
  ContextOptions o;
  const std::string context = args.str("context", "compressed");
  o.context = parse_context_kind(context, "--context");
  o.store_dir = args.str("store", "");
  if (o.context == ContextKind::kCompressed && o.store_dir.empty())
    throw std::runtime_error("--context compressed needs --store");
  o.text_budget = args.integer("text-budget", 4000);
  o.retrieval_chunk_tokens = args.integer("retrieval-chunk-tokens", 512);
  o.retrieval_top_k = args.integer("retrieval-top-k", 5);
  if (o.text_budget <= 0) throw std::runtime_error("--text-budget must be positive, got " + std::to_string(o.text_budget));
  if (o.retrieval_chunk_tokens <= 0 || o.retrieval_top_k <= 0)
    throw std::runtime_error("--retrieval-chunk-tokens and --retrieval-top-k must be positive");
  if (args.has("retriever-model") && o.context != ContextKind::kRetrievedText)
    throw std::runtime_error("--retriever-model ranks the chunks of --context retrieved_text, got --context " + context);
  if (const auto encoder = dense_encoder_arg(args, device, false)) o.chunk_ranker = retrieve::dense_ranker_factory(encoder);
  return o;
}

}  // namespace lloco::apps
