// Needle in a haystack, as LLoCO runs it (lloco-method.md §6, paper §4.4): a sentence (the needle) is
// hidden in a long document (the haystack, LLoCO: SCROLLS NarrativeQA validation row 97) cut to a
// grid of lengths, at a grid of depths, and the model is asked the question only the needle answers.
// The document is built on token ids (so lengths are exact) and decoded back to text, because the
// compressor and the text baselines read text. eval links no tokenizer: callers pass one in.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "eval/example.h"
#include "eval/scoring.h"

namespace lloco::eval {

struct NeedleGridSpec {
  int64_t min_length = 1000, max_length = 32000;  // haystack + needle tokens, before the reserve
  int64_t lengths = 10, depths = 10;              // grid points
  int64_t reserve = 180;  // tokens kept free of haystack for the instruction, question and answer
};

// LLoCO's grid: numpy.round(numpy.linspace(lo, hi, n)) (round half to even), as int64. Both throw on
// an invalid grid (min_length < 1, max_length < min_length, lengths or depths < 1, reserve outside
// [0, min_length)).
std::vector<int64_t> needle_lengths(const NeedleGridSpec& grid);  // lo=min_length, hi=max_length
std::vector<int64_t> needle_depths(const NeedleGridSpec& grid);   // lo=0, hi=100 (percent)

// LLoCO's insertion on token ids. Throws when the haystack is shorter than `length`, depth_percent
// is outside [0, 100], or `length - reserve` does not exceed the needle's size. The haystack is cut to `length` tokens, then to `length - reserve -
// needle.size()` when haystack + needle would exceed `length - reserve`. At depth 100 the needle is
// appended; otherwise it goes at int(size * depth / 100) moved back until the token before it is one
// of `break_ids` (LLoCO: the ids of encode("\n") with BOS, so after a newline), or to the start.
std::vector<int32_t> insert_needle(std::span<const int32_t> haystack,  // [tokens] whole document
                                   std::span<const int32_t> needle,    // [tokens]
                                   int64_t length, int64_t depth_percent, int64_t reserve,
                                   std::span<const int32_t> break_ids);

// The needle and its question. A fixed needle (LLoCO's first test) when `cities` is empty; otherwise
// LLoCO's random needle "The magic city is <city>" (no period, as LLoCO writes it), question "What is
// the magic city?", with the city drawn per cell and iteration from `cities` by a splitmix64 stream
// seeded with `seed` (deterministic across machines).
struct NeedleSpec {
  NeedleGridSpec grid;
  std::string needle = "Mary's favourite fashion designer was Coco Chanel when she was a teenager.";
  std::string question = "Who was Mary's favourite fashion designer when she was a teenager?";
  std::string answer = "Coco Chanel";
  std::vector<std::string> cities;  // random needle; `needle`/`question`/`answer` are then ignored
  int64_t iterations = 1;           // draws per grid cell (LLoCO's random needle: 10)
  uint64_t seed = 0;
};

// LLoCO's city lists for the random needle (preproc_embs.py, repeats kept, 51 and 49 names): the test
// cities, and the ones its synthetic fine-tuning set draws from. The paper calls the two disjoint, but
// 14 names (Chicago, Paris, Madrid, ...) are in both lists.
const std::vector<std::string>& needle_test_cities();
const std::vector<std::string>& needle_train_cities();

// What building the cases needs from a tokenizer.
struct NeedleTokenizer {
  std::function<std::vector<int32_t>(const std::string&)> encode;  // no BOS/EOS
  std::function<std::string(std::span<const int32_t>)> decode;
  std::vector<int32_t> break_ids;  // see insert_needle
};

struct NeedleCase {
  // "<length>_<depth>" (fixed needle) or "<length>_<depth>_<iteration>" (random needle, or a fixed one
  // with iterations > 1), as LLoCO keys them.
  std::string id;
  int64_t length = 0, depth_percent = 0, iteration = 0;
  int64_t context_tokens = 0;  // haystack + needle tokens in `context`
  std::string needle, question, answer, context;
};

// One case per length x depth (x iteration), lengths outermost, iterations innermost (LLoCO loops
// iterations outermost; only the ids matter). City draws follow that order, one per case. Throws when
// the haystack is shorter than the largest length (LLoCO's haystack is >32k tokens), reserve + needle
// leave no haystack, or the spec is invalid (errors start with "needle:" and name the field).
std::vector<NeedleCase> build_needle_cases(const std::string& haystack, const NeedleSpec& spec,
                                           const NeedleTokenizer& tok);

// The cases as a dataset file (format `needle`, one JSON object per line: _id, length, depth_percent,
// iteration, context_tokens, needle, question, answers [answer], context), written atomically.
std::string needle_jsonl(const std::vector<NeedleCase>& cases);
void write_needle_jsonl(const std::string& path, const std::vector<NeedleCase>& cases);

// Per-cell success rate of scored predictions: rows = lengths, columns = depths, the mean of the
// examples' scores (0 or 100) over iterations. `data` is read with Format::kNeedle; `score` is
// score_dataset's result for it (matched by example id; an example without a score throws).
struct NeedleGrid {
  std::vector<int64_t> lengths, depths;
  std::vector<std::vector<double>> success;  // [lengths][depths] percent; NaN where no example
  std::vector<std::vector<int64_t>> count;   // [lengths][depths]
  double overall = 0;                        // mean over all examples
};
NeedleGrid needle_grid(const DatasetFile& data, const DatasetScore& score);

// needle.json, needle.md (table) and needle.svg (heatmap: depth on x, length on y) in `dir`, atomically;
// returns the paths written. `title` heads the table and the plot.
std::vector<std::string> write_needle_report(const std::string& dir, const std::string& title, const NeedleGrid& grid);

}  // namespace lloco::eval
