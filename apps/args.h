// Minimal argv parser for the subcommands: --key value / --key=value / --flag, with typed getters
// whose errors name the option and the bad value. Unknown options are rejected.
#pragma once
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/device.h"

namespace lloco::apps {

class Args {
 public:
  // `flags` take no value; every other known option takes one.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& options, const std::set<std::string>& flags = {});
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string str(const std::string& key, const std::string& fallback) const;
  long long integer(const std::string& key, long long fallback) const;
  double real(const std::string& key, double fallback) const;
  bool flag(const std::string& key) const { return values_.count(key) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// "cpu", "cuda" or "cuda:N" (a --device value); anything else throws naming the value.
Device parse_device(const std::string& s);

}  // namespace lloco::apps
