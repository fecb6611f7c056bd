#include "apps/args.h"

namespace lloco::apps {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& options, const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (flags.count(key)) {
      if (inline_value) throw std::runtime_error("option --" + key + " takes no value, got '" + value + "'");
      values_[key] = "1";
      continue;
    }
    if (!options.count(key)) throw std::runtime_error("unknown option --" + key + " (see --help)");
    if (!inline_value) {
      if (i + 1 >= argv.size()) throw std::runtime_error("option --" + key + " needs a value");
      value = argv[++i];
    }
    values_[key] = value;
  }
}

std::string Args::str(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

long long Args::integer(const std::string& key, long long fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size()) throw std::runtime_error("option --" + key + " expects an integer, got '" + it->second + "'");
  return v;
}

double Args::real(const std::string& key, double fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size()) throw std::runtime_error("option --" + key + " expects a number, got '" + it->second + "'");
  return v;
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.find_first_not_of("0123456789", 5) == std::string::npos)
    return cuda(std::stoi(s.substr(5)));
  throw std::runtime_error("--device must be cpu, cuda or cuda:N, got '" + s + "'");
}

}  // namespace lloco::apps
