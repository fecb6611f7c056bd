#include "core/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"

namespace lloco {

namespace {

using json = nlohmann::json;

struct DtypeInfo {
  const char* name;
  int bits;
  std::optional<DType> dtype;
};

// Every dtype the reference format defines; only six have a lloco DType.
const DtypeInfo kDtypes[] = {
    {"BOOL", 8, std::nullopt},     {"F4", 4, std::nullopt},       {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt},  {"U8", 8, std::nullopt},       {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt},  {"F8_E4M3", 8, std::nullopt},  {"F8_E8M0", 8, std::nullopt},
    {"I16", 16, std::nullopt},     {"U16", 16, std::nullopt},     {"F16", 16, DType::F16},
    {"BF16", 16, DType::BF16},     {"I32", 32, DType::I32},       {"U32", 32, std::nullopt},
    {"F32", 32, DType::F32},       {"C64", 64, std::nullopt},     {"F64", 64, DType::F64},
    {"I64", 64, DType::I64},       {"U64", 64, std::nullopt},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

template <typename... Args>
[[noreturn]] void fail(const std::string& file, const Args&... args) {
  LLOCO_FAIL("safetensors", "'", file, "': ", args...);
}

// A short description of a JSON value for error messages. Containers are never dumped: a
// hostile header can nest them deep enough to overflow the recursive serializer's stack.
std::string describe(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array of " + std::to_string(v.size());
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

uint64_t as_u64(const json& v, const std::string& file, const std::string& tensor, const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail(file, "tensor '", tensor, "': ", field, " must hold non-negative integers, got ", describe(v));
}

std::string range_str(const SafetensorsEntry& e) {
  return detail::concat("[", e.begin, ", ", e.end, "]");
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, const std::string& file) {
  if (!v.is_object()) fail(file, "tensor '", name, "': entry must be an object, got ", describe(v));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) fail(file, "tensor '", name, "': missing field '", field, "'");
  if (v.size() != 3) {
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
        fail(file, "tensor '", name, "': unexpected field '", it.key(),
             "' (allowed: dtype, shape, data_offsets)");
  }

  SafetensorsEntry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail(file, "tensor '", name, "': dtype must be a string, got ", describe(dt));
  e.dtype_name = dt.get<std::string>();
  const DtypeInfo* info = find_dtype(e.dtype_name);
  if (!info) fail(file, "tensor '", name, "': unknown dtype ", describe(dt));
  e.dtype = info->dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) fail(file, "tensor '", name, "': shape must be an array, got ", describe(shape));
  int64_t numel = 1;
  for (const json& d : shape) {
    uint64_t dim = as_u64(d, file, name, "shape");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, static_cast<int64_t>(dim), &numel))
      fail(file, "tensor '", name, "': shape overflows a 64-bit element count at dimension ",
           e.shape.size(), " (size ", dim, ")");
    e.shape.push_back(static_cast<int64_t>(dim));
  }

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail(file, "tensor '", name, "': data_offsets must be an array of two integers, got ", describe(off));
  e.begin = as_u64(off[0], file, name, "data_offsets");
  e.end = as_u64(off[1], file, name, "data_offsets");
  if (e.begin > e.end)
    fail(file, "tensor '", name, "': data_offsets begin ", e.begin, " is after end ", e.end);

  uint64_t bits;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), static_cast<uint64_t>(info->bits), &bits))
    fail(file, "tensor '", name, "': byte size of ", numel, " x ", e.dtype_name, " overflows 64 bits");
  if (bits % 8 != 0)
    fail(file, "tensor '", name, "': ", numel, " x ", e.dtype_name, " is not a whole number of bytes");
  if (e.end - e.begin != bits / 8)
    fail(file, "tensor '", name, "': data_offsets ", range_str(e), " span ", e.end - e.begin,
         " bytes but dtype ", e.dtype_name, " with ", numel, " elements needs ", bits / 8);
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& file) {
  if (!v.is_object()) fail(file, "__metadata__ must be an object of strings, got ", describe(v));
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string())
      fail(file, "__metadata__ value for key '", it.key(), "' must be a string, got ", describe(it.value()));
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

// Requires the ranges, sorted by position, to tile [0, data_bytes) exactly, like the reference.
void check_layout(const std::vector<SafetensorsEntry>& entries, uint64_t data_bytes, const std::string& file) {
  for (const SafetensorsEntry& e : entries)
    if (e.end > data_bytes)
      fail(file, "tensor '", e.name, "': data_offsets end ", e.end, " is beyond the data buffer of ",
           data_bytes, " bytes (file truncated?)");
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(entries[a].begin, entries[a].end) < std::tie(entries[b].begin, entries[b].end);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* prev = nullptr;
  for (size_t i : order) {
    const SafetensorsEntry& e = entries[i];
    if (e.begin < covered)
      fail(file, "tensor '", e.name, "' at data_offsets ", range_str(e), " overlaps tensor '", prev->name,
           "' at ", range_str(*prev));
    if (e.begin > covered)
      fail(file, "bytes [", covered, ", ", e.begin, ") of the data buffer belong to no tensor (hole before tensor '",
           e.name, "' at ", range_str(e), ")");
    covered = e.end;
    if (e.end > e.begin || !prev) prev = &e;
  }
  if (covered != data_bytes)
    fail(file, "the data buffer has ", data_bytes, " bytes but the tensors cover only ", covered,
         " (unused trailing bytes)");
}

}  // namespace

int safetensors_dtype_bits(const std::string& name) {
  const DtypeInfo* d = find_dtype(name);
  return d ? d->bits : 0;
}

const char* safetensors_dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  LLOCO_FAIL("safetensors", "no safetensors name for dtype ", static_cast<int>(dt));
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& filename) {
  if (file_size < 8) fail(filename, "file is ", file_size, " bytes, shorter than the 8-byte header length");
  if (size < 8) fail(filename, "only ", size, " bytes available, need the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian on any host
  if (n > kSafetensorsMaxHeaderBytes)
    fail(filename, "header length ", n, " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  if (n > file_size - 8)
    fail(filename, "header length ", n, " is larger than the ", file_size - 8, " bytes after the length field");
  if (size - 8 < n) fail(filename, "only ", size, " bytes available, the header needs ", 8 + n);
  const char* text = reinterpret_cast<const char*>(bytes) + 8;
  if (n == 0 || text[0] != '{') fail(filename, "header must be a JSON object starting with '{'");

  // nlohmann keeps the last of duplicate keys silently, so track every object's keys while
  // parsing; the top level's keys are also recorded to keep the file order of the tensors.
  std::vector<std::unordered_set<std::string>> open_objects;
  std::vector<std::string> top_keys;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) -> bool {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        if (open_objects.size() == 1) fail(filename, "duplicate key '", key, "' in the header");
        fail(filename, "duplicate key '", key, "' inside the header entry '", top_keys.back(), "'");
      }
      if (open_objects.size() == 1) top_keys.push_back(key);
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    fail(filename, "header is not valid UTF-8 JSON: ", e.what());
  }
  if (!root.is_object()) fail(filename, "header must be a JSON object, got ", describe(root));

  SafetensorsHeader h;
  h.header_bytes = n;
  h.data_start = 8 + n;
  h.data_bytes = file_size - h.data_start;
  h.entries.reserve(top_keys.size());
  for (const std::string& key : top_keys) {
    const json& v = root.find(key).value();
    if (key == "__metadata__")
      h.metadata = parse_metadata(v, filename);
    else
      h.entries.push_back(parse_entry(key, v, filename));
  }
  check_layout(h.entries, h.data_bytes, filename);
  return h;
}

}  // namespace lloco
