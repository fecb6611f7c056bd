// libFuzzer target for the safetensors header parser. Any input must either parse into a header
// whose tensor ranges tile the data buffer inside the input, or throw lloco::Error naming the file;
// anything else (crash, sanitizer report, other exception, broken invariant) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/safetensors_header.h"

namespace {

const std::string kName = "fuzz.safetensors";

void require(bool ok) {
  if (!ok) __builtin_trap();
}

// Returns the number of entries, or -1 when the input was rejected.
long parse(const uint8_t* data, size_t size, uint64_t file_size) {
  try {
    lloco::SafetensorsHeader h = lloco::parse_safetensors_header(data, size, file_size, kName);
    require(h.data_start == 8 + h.header_bytes && h.data_start + h.data_bytes == file_size);
    uint64_t covered = 0;
    for (const lloco::SafetensorsEntry& e : h.entries) {
      require(e.begin <= e.end && e.end <= h.data_bytes);
      covered += e.end - e.begin;
      int bits = lloco::safetensors_dtype_bits(e.dtype_name);
      require(bits > 0);
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      require(numel * bits == (e.end - e.begin) * 8);
    }
    require(covered == h.data_bytes);  // with no overlap, the sizes must add up to the buffer
    if (size == file_size) {
      // Touch every tensor byte so ASan flags any range that escapes the input.
      volatile uint8_t sink = 0;
      for (const lloco::SafetensorsEntry& e : h.entries)
        for (uint64_t i = e.begin; i < e.end; ++i) sink = sink ^ data[h.data_start + i];
    }
    return static_cast<long>(h.entries.size());
  } catch (const lloco::Error& e) {
    require(std::string_view(e.what()).find(kName) != std::string_view::npos);
    return -1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  long whole = parse(data, size, size);
  // Header-only mode (the caller read just 8 + N bytes) must reach the same verdict.
  if (size >= 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n <= size - 8) require(parse(data, 8 + n, size) == whole);
  }
  return 0;
}
