// Streaming input helpers shared by the readers: a line-by-line JSONL walker with per-line error
// reporting and optional skipping, JSON field accessors whose errors name the field and the type
// found, a byte-offset -> line lookup for whole-file JSON, and the atomic file writer.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/example.h"

namespace lloco::eval {

using json = nlohmann::json;

// Calls fn(record, line_number) for every non-blank line. A line that is not valid JSON, or whose
// fn throws EvalError, is an error "path:line: ..." unless skip_bad, in which case it is counted in
// out.skipped (with the reason kept for the first few).
void for_each_jsonl(const std::string& path, bool skip_bad, DatasetFile& out,
                    const std::function<void(const json&, size_t line)>& fn);

// Parses a whole-file JSON value from disk, calling on_record(value, key, index) for each element
// of the top-level array or each member of the top-level object as soon as it is complete, so the
// full document tree is never held. Syntax errors report the line.
void for_each_json_record(const std::string& path,
                          const std::function<void(const json&, const std::string& key, size_t index)>& on_record);

const json& field(const json& obj, const char* name);  // throws if absent
std::string get_string(const json& obj, const char* name);
std::vector<std::string> get_string_array(const json& obj, const char* name);
const json& get_array(const json& obj, const char* name);
const json& get_object(const json& obj, const char* name);
std::string type_name(const json& v);

std::string file_stem(const std::string& path);  // "dir/val.jsonl" -> "val"
std::string first_nonblank_line(const std::string& path);
char first_nonspace_char(const std::string& path);

// Writes via a temporary file in the same directory, fsync, then rename over `path`.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace lloco::eval
