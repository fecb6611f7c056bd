// Op-table cases for the LoRA ops (filled in by the LoRA work).
#include "tests/core/op_table.h"

namespace lloco::testing {
void append_lora_cases(std::vector<OpCase>&) {}
}  // namespace lloco::testing
