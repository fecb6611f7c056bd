// Shared helpers for the eval tests: fixture loading, scratch directories, error messages, file reading.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/error.h"

namespace lloco::eval::testing {

inline const nlohmann::json& parity_fixture() {
  static const nlohmann::json fixture = [] {
    std::ifstream in(std::string(LLOCO_FIXTURES_DIR) + "/eval/metric_parity.json");
    if (!in) throw std::runtime_error("missing tests/fixtures/eval/metric_parity.json (run tests/fixtures/gen_eval_fixtures.py)");
    return nlohmann::json::parse(in);
  }();
  return fixture;
}

// The message of the EvalError fn throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const EvalError& e) {
    return e.what();
  }
  return "";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string shared_data(const std::string& rel) { return std::string(LLOCO_SHARED_DATA_DIR) + "/" + rel; }

// A fresh directory under the system temp dir, removed when the test ends.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("lloco_eval_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string path(const std::string& name = "") const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace lloco::eval::testing
