// Prediction file reader; see predictions.h.
#include "eval/predictions.h"

#include <fstream>

#include "eval/error.h"
#include "eval/io.h"

namespace lloco::eval {
namespace {

bool looks_like_jsonl(const std::string& path) {
  try {
    const json first = json::parse(first_nonblank_line(path));
    return first.is_object() && first.contains("id") && first.contains("prediction");
  } catch (const json::parse_error&) {
    return false;
  }
}

}  // namespace

Predictions read_predictions(const std::string& path) {
  Predictions out;
  out.path = path;
  if (first_nonspace_char(path) != '{') fail_at(path, 1, "predictions must be a JSON object {id: text} or JSONL {id, prediction}");
  if (looks_like_jsonl(path)) {
    DatasetFile unused;
    std::map<std::string, size_t> first_line;
    for_each_jsonl(path, false, unused, [&](const json& rec, size_t line) {
      const json& id = field(rec, "id");
      if (!id.is_string() && !id.is_number_integer())
        throw EvalError("field 'id': expected string or integer, got " + type_name(id));
      const std::string key = id.is_string() ? id.get<std::string>() : id.dump();
      const std::string text = get_string(rec, "prediction");
      if (auto [it, fresh] = first_line.emplace(key, line); !fresh)
        throw EvalError("duplicate id '" + key + "' (first on line " + std::to_string(it->second) + ")");
      out.by_id.emplace(key, text);
    });
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    fail_at(path, 0, std::string("invalid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail_at(path, 0, "expected a JSON object {id: text}, got " + type_name(doc));
  for (const auto& [id, value] : doc.items()) {
    if (!value.is_string()) fail_at(path, 0, "prediction for id '" + id + "': expected string, got " + type_name(value));
    out.by_id.emplace(id, value.get<std::string>());
  }
  return out;
}

}  // namespace lloco::eval
