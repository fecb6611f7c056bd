// What the apps tests on real LLaMA tokens share: the LLaMA-2 tokenizer from the shared data, and a
// crafted meeting of routine filler items with chosen sentences after chosen items, so ranking, budget
// and truncation mistakes change the text.
#pragma once
#include <map>
#include <string>

#include "models/tokenizer.h"

namespace lloco::apps::testing {

inline const models::SentencePieceTokenizer& llama_tokenizer() {
  static const models::SentencePieceTokenizer tok(LLOCO_SHARED_DATA_DIR "/models/llama2-tokenizer/tokenizer.model");
  return tok;
}

// `items` routine items; after_item[i] follows item i.
inline std::string routine_meeting(int items, const std::map<int, std::string>& after_item) {
  std::string doc;
  for (int i = 0; i < items; ++i) {
    doc += "Item " + std::to_string(i) + ": the group reviewed routine paperwork and moved on to other matters. ";
    if (const auto it = after_item.find(i); it != after_item.end()) doc += it->second + " ";
  }
  return doc;
}

}  // namespace lloco::apps::testing
