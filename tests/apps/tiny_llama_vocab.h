// The tiny LLaMA shape the apps tests run on real text: the LLaMA-2 vocabulary (so the real
// tokenizer.model applies), hidden 16, one layer with grouped-query heads. Seconds on a CPU.
#pragma once
#include <cstdint>

#include "models/llama.h"

namespace lloco::apps_test {

inline models::LlamaConfig tiny_llama_vocab_config(int64_t max_positions) {
  models::LlamaConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.max_position_embeddings = max_positions;
  return c;
}

}  // namespace lloco::apps_test
