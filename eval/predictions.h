// Prediction files: SCROLLS-style JSON object {"id": "text", ...} or JSONL lines
// {"id": ..., "prediction": ...}.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace lloco::eval {

struct Predictions {
  std::string path;
  std::map<std::string, std::string> by_id;
  const std::string* find(const std::string& id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : &it->second;
  }
};

Predictions read_predictions(const std::string& path);

}  // namespace lloco::eval
