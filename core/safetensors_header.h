// The safetensors header parser/validator, kept free of Tensor so the fuzz target can link it alone
// (it needs only dtype.h, error.h and nlohmann json).
//
// File layout: u64 little-endian N, N bytes of UTF-8 JSON, then the data buffer. The JSON object
// maps tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the
// buffer) plus an optional "__metadata__" string->string map.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lloco {

constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // the reference implementation's cap

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;      // as written in the file, e.g. "BF16"
  std::optional<DType> dtype;  // empty for valid safetensors dtypes lloco has no DType for (U8, F8_*, ...)
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data buffer
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;  // N
  uint64_t data_start = 0;    // 8 + N: file offset of the data buffer
  uint64_t data_bytes = 0;    // file size - data_start
  std::vector<SafetensorsEntry> entries;  // in header (file) order
  std::map<std::string, std::string> metadata;
};

// Validates everything the format promises and throws lloco::Error naming `filename` (and the
// tensor/field and offending values) otherwise: lengths, UTF-8 JSON object, exact entry fields,
// dtype, shape, offsets, per-tensor byte size, no duplicate keys, and tensor ranges that tile the
// data buffer exactly (no overlap, no hole, no trailing bytes), as the reference reader requires.
// `bytes` holds the first `size` bytes of a file of `file_size` bytes; size must cover 8 + N.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& filename);

// Element width in bits of a safetensors dtype name, or 0 when the name is not a safetensors dtype.
int safetensors_dtype_bits(const std::string& name);
// The safetensors spelling of a lloco dtype ("F32", "BF16", ...).
const char* safetensors_dtype_name(DType dt);

}  // namespace lloco
