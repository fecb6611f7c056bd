// Op-table cases for packed variable-length attention (filled in by the varlen work).
#include "tests/core/op_table.h"

namespace lloco::testing {
void append_attention_varlen_cases(std::vector<OpCase>&) {}
}  // namespace lloco::testing
