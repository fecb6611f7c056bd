// Needle-in-a-haystack cases: the grid, the insertion on token ids, the city draws and the dataset
// file; see needle.h. The per-cell table and the heatmap are in needle_report.cpp.
#include "eval/needle.h"

#include <cfenv>
#include <cmath>
#include <map>

#include "eval/error.h"
#include "eval/io.h"

namespace lloco::eval {
namespace {

[[noreturn]] void needle_fail(const std::string& message) { throw EvalError("needle: " + message); }

std::string num(int64_t v) { return std::to_string(v); }

void check_grid(const NeedleGridSpec& g) {
  if (g.min_length < 1) needle_fail("grid.min_length must be >= 1, got " + num(g.min_length));
  if (g.max_length < g.min_length)
    needle_fail("grid.max_length " + num(g.max_length) + " is below grid.min_length " + num(g.min_length));
  if (g.lengths < 1) needle_fail("grid.lengths must be >= 1, got " + num(g.lengths));
  if (g.depths < 1) needle_fail("grid.depths must be >= 1, got " + num(g.depths));
  if (g.reserve < 0) needle_fail("grid.reserve must be >= 0, got " + num(g.reserve));
  if (g.reserve >= g.min_length)
    needle_fail("grid.reserve " + num(g.reserve) + " must be below grid.min_length " + num(g.min_length) +
                " (no room left for the haystack)");
}

// numpy.round(numpy.linspace(lo, hi, n)): numpy computes lo + i * ((hi - lo) / (n - 1)) in double,
// sets the last point to hi exactly, and rounds half to even (nearbyint in the default mode).
std::vector<int64_t> rounded_linspace(int64_t lo, int64_t hi, int64_t n) {
  if (n == 1) return {lo};
  const double step = static_cast<double>(hi - lo) / static_cast<double>(n - 1);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  const int saved_mode = std::fegetround();
  std::fesetround(FE_TONEAREST);
  for (int64_t i = 0; i < n; ++i) {
    const double v = i + 1 == n ? static_cast<double>(hi) : static_cast<double>(i) * step + static_cast<double>(lo);
    out.push_back(static_cast<int64_t>(std::nearbyint(v)));
  }
  std::fesetround(saved_mode);
  return out;
}

// splitmix64 (Steele, Lea & Flood 2014): a fixed, portable stream, so the same seed draws the same
// cities on every machine and standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<int64_t> needle_lengths(const NeedleGridSpec& grid) {
  check_grid(grid);
  return rounded_linspace(grid.min_length, grid.max_length, grid.lengths);
}

std::vector<int64_t> needle_depths(const NeedleGridSpec& grid) {
  check_grid(grid);
  return rounded_linspace(0, 100, grid.depths);
}

std::vector<int32_t> insert_needle(std::span<const int32_t> haystack, std::span<const int32_t> needle, int64_t length,
                                   int64_t depth_percent, int64_t reserve, std::span<const int32_t> break_ids) {
  if (length < 1) needle_fail("length must be >= 1, got " + num(length));
  if (depth_percent < 0 || depth_percent > 100) needle_fail("depth_percent must be in [0, 100], got " + num(depth_percent));
  if (reserve < 0) needle_fail("reserve must be >= 0, got " + num(reserve));
  if (needle.empty()) needle_fail("the needle has no tokens");
  const auto hay_size = static_cast<int64_t>(haystack.size()), needle_size = static_cast<int64_t>(needle.size());
  if (hay_size < length)
    needle_fail("haystack has " + num(hay_size) + " tokens, fewer than length " + num(length));
  const int64_t budget = length - reserve;  // haystack + needle must fit here
  if (budget <= needle_size)
    needle_fail("length " + num(length) + " - reserve " + num(reserve) + " leaves " + num(budget) +
                " tokens, not more than the needle's " + num(needle_size) + ": no haystack left");

  // LLoCO cuts to `length`, then to budget - needle when haystack + needle exceed the budget; with a
  // non-negative reserve and a non-empty needle that second cut always applies.
  const int64_t kept = budget - needle_size;
  const auto ctx = haystack.first(static_cast<size_t>(kept));
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(kept + needle_size));
  if (depth_percent == 100) {
    out.insert(out.end(), ctx.begin(), ctx.end());
    out.insert(out.end(), needle.begin(), needle.end());
    return out;
  }
  // Python's int(len * (depth / 100)): double product, truncated.
  auto at = static_cast<int64_t>(static_cast<double>(kept) * (static_cast<double>(depth_percent) / 100.0));
  auto is_break = [&](int32_t id) {
    for (int32_t b : break_ids)
      if (b == id) return true;
    return false;
  };
  while (at > 0 && !is_break(ctx[static_cast<size_t>(at - 1)])) --at;
  out.insert(out.end(), ctx.begin(), ctx.begin() + at);
  out.insert(out.end(), needle.begin(), needle.end());
  out.insert(out.end(), ctx.begin() + at, ctx.end());
  return out;
}

const std::vector<std::string>& needle_test_cities() {
  // LLoCO preproc_embs.py RANDOM_TEST_NEEDLE_CITIES, in its order, repeats included (they weight the draw).
  static const std::vector<std::string> cities = {
      "Doha",     "Istanbul",  "Kuala Lumpur", "Budapest",     "Shanghai",    "Moscow",    "Los Angeles", "Oslo",
      "Johannesburg", "Berlin", "Bangalore",   "Tokyo",        "Melbourne",   "Barcelona", "Chicago",     "Port Louis",
      "Lisbon",   "Nairobi",   "Kampala",      "Lima",         "Maputo",      "Vancouver", "Dubai",       "Khartoum",
      "Jakarta",  "Madrid",    "Yerevan",      "Beirut",       "Athens",      "Chicago",   "Paris",       "Bucharest",
      "Copenhagen", "Brussels", "Damascus",    "Seattle",      "Los Angeles", "Yerevan",   "Victoria",    "Tunis",
      "Astana",   "Seoul",     "Buenos Aires", "Bangkok",      "Colombo",     "Brussels",  "Khartoum",    "Doha",
      "San Francisco", "Vienna", "Jakarta"};
  return cities;
}

const std::vector<std::string>& needle_train_cities() {
  // LLoCO preproc_embs.py RANDOM_NEEDLE_CITIES (its synthetic fine-tuning set), repeats included.
  static const std::vector<std::string> cities = {
      "Chicago",   "Yangon",       "Antananarivo", "Colombo",      "Almaty",    "Sydney",   "Chicago",
      "Mexico City", "Seattle",    "Lagos",        "Amsterdam",    "Belgrade",  "Cairo",    "Baghdad",
      "Damascus",  "Kigali",       "Dakar",        "Dakar",        "Sofia",     "Kigali",   "Victoria",
      "Tashkent",  "Mumbai",       "Barcelona",    "Almaty",       "Amman",     "Toronto",  "Bratislava",
      "Johannesburg", "Thimphu",   "Bangkok",      "Santiago",     "Cairo",     "San Francisco", "Lagos",
      "Amsterdam", "Paris",        "Rabat",        "Santiago",     "Copenhagen", "Madrid",  "Kigali",
      "Ho Chi Minh City", "Sarajevo", "Delhi",     "Istanbul",     "Ho Chi Minh City", "Khartoum", "Helsinki"};
  return cities;
}

std::vector<NeedleCase> build_needle_cases(const std::string& haystack, const NeedleSpec& spec,
                                           const NeedleTokenizer& tok) {
  check_grid(spec.grid);
  if (!tok.encode || !tok.decode) needle_fail("the tokenizer needs both encode and decode");
  if (tok.break_ids.empty()) needle_fail("tokenizer break_ids is empty (LLoCO: the ids of encode(\"\\n\") with BOS)");
  if (spec.iterations < 1) needle_fail("iterations must be >= 1, got " + num(spec.iterations));
  const bool random = !spec.cities.empty();
  for (size_t i = 0; i < spec.cities.size(); ++i)
    if (spec.cities[i].empty()) needle_fail("cities[" + std::to_string(i) + "] is empty");
  if (!random && (spec.needle.empty() || spec.question.empty() || spec.answer.empty()))
    needle_fail("a fixed needle needs needle, question and answer (got sizes " + std::to_string(spec.needle.size()) +
                ", " + std::to_string(spec.question.size()) + ", " + std::to_string(spec.answer.size()) + ")");

  const std::vector<int32_t> hay = tok.encode(haystack);
  if (static_cast<int64_t>(hay.size()) < spec.grid.max_length)
    needle_fail("haystack has " + num(static_cast<int64_t>(hay.size())) + " tokens, fewer than grid.max_length " +
                num(spec.grid.max_length));
  std::map<std::string, std::vector<int32_t>> needle_ids;  // needle text -> tokens, encoded once
  auto tokens_of = [&](const std::string& text) -> const std::vector<int32_t>& {
    auto it = needle_ids.find(text);
    if (it == needle_ids.end()) it = needle_ids.emplace(text, tok.encode(text)).first;
    return it->second;
  };

  const std::vector<int64_t> lengths = needle_lengths(spec.grid), depths = needle_depths(spec.grid);
  SplitMix64 draws(spec.seed);
  std::vector<NeedleCase> cases;
  cases.reserve(lengths.size() * depths.size() * static_cast<size_t>(spec.iterations));
  for (int64_t length : lengths) {
    for (int64_t depth : depths) {
      for (int64_t it = 0; it < spec.iterations; ++it) {
        NeedleCase c;
        c.length = length, c.depth_percent = depth, c.iteration = it;
        c.id = num(length) + "_" + num(depth);
        if (random) {
          const std::string& city = spec.cities[draws.next() % spec.cities.size()];
          c.needle = "The magic city is " + city;
          c.question = "What is the magic city?";
          c.answer = city;
          c.id.append("_").append(num(it));
        } else {
          c.needle = spec.needle, c.question = spec.question, c.answer = spec.answer;
          if (spec.iterations > 1) c.id.append("_").append(num(it));
        }
        const std::vector<int32_t> ids =
            insert_needle(hay, tokens_of(c.needle), length, depth, spec.grid.reserve, tok.break_ids);
        c.context_tokens = static_cast<int64_t>(ids.size());
        c.context = tok.decode(ids);
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

std::string needle_jsonl(const std::vector<NeedleCase>& cases) {
  std::string out;
  for (const NeedleCase& c : cases) {
    const json rec = {{"_id", c.id},
                      {"length", c.length},
                      {"depth_percent", c.depth_percent},
                      {"iteration", c.iteration},
                      {"context_tokens", c.context_tokens},
                      {"needle", c.needle},
                      {"question", c.question},
                      {"answers", json::array({c.answer})},
                      {"context", c.context}};
    try {
      out += rec.dump() + "\n";
    } catch (const json::type_error& e) {  // text that is not valid UTF-8
      needle_fail("case '" + c.id + "': " + e.what());
    }
  }
  return out;
}

void write_needle_jsonl(const std::string& path, const std::vector<NeedleCase>& cases) {
  write_file_atomic(path, needle_jsonl(cases));
}

}  // namespace lloco::eval
