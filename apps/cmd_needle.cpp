// `lloco needle`: writes LLoCO's needle-in-a-haystack set as a `needle` dataset file, which the
// stage commands read like any dataset (compress, finetune, predict, and `lloco eval --dataset
// needle`, which adds the length x depth grid). `lloco run` builds the same set from a config's
// `needle:` key. Only argv is handled here; the work is in apps/needle_data and eval/needle.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/needle_data.h"
#include "models/tokenizer.h"

namespace {

using namespace lloco;

constexpr const char* kUsage = R"(usage: lloco needle --tokenizer FILE --haystack FILE --out FILE.jsonl [options]

Builds LLoCO's needle-in-a-haystack cases (paper §4.4): the haystack document is cut to each context
length (tokens), the needle sentence goes in at each depth (moved back to just after a newline), and
the question only the needle answers is asked. Defaults are LLoCO's: 10 lengths from 1,000 to 32,000,
10 depths from 0 to 100%, 180 tokens reserved for the prompt; the haystack LLoCO used is SCROLLS
NarrativeQA validation row 97 (--haystack-format scrolls --haystack-row 97).

  --tokenizer FILE          the LLaMA-2 tokenizer.model (lengths are in its tokens)
  --haystack FILE           a dataset file; --haystack-format F (default: detected)
  --haystack-row N          the document of the example on the file's 0-based row N (scrolls files)
  --haystack-document ID    the document with this id (default: the longest document)
  --min-length N --max-length N --lengths N --depths N --reserve N
  --needle TEXT --question TEXT --answer TEXT
                            a fixed needle (default LLoCO's: Coco Chanel)
  --cities test|train|A,B,C random needle "The magic city is <city>" (LLoCO's city lists by name)
  --iterations N --seed S   cases per grid cell (LLoCO's random needle: 10 draws) and the draws' seed
  --out FILE                the dataset file (written atomically)
)";

int run_needle(const std::vector<std::string>& argv) {
  const apps::Args args(argv,
                        {"tokenizer", "haystack", "haystack-format", "haystack-row", "haystack-document", "min-length",
                         "max-length", "lengths", "depths", "reserve", "needle", "question", "answer", "cities",
                         "iterations", "seed", "out"},
                        {"help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  for (const char* required : {"tokenizer", "haystack", "out"})
    if (!args.has(required)) throw std::runtime_error(std::string("needle: --") + required + " is required (see --help)");
  apps::NeedleDataset d;
  d.haystack.data = args.str("haystack", "");
  d.haystack.format = args.str("haystack-format", "auto");
  d.haystack.row = args.integer("haystack-row", -1);
  d.haystack.document = args.str("haystack-document", "");
  eval::NeedleSpec& s = d.spec;
  s.grid.min_length = args.integer("min-length", s.grid.min_length);
  s.grid.max_length = args.integer("max-length", s.grid.max_length);
  s.grid.lengths = args.integer("lengths", s.grid.lengths);
  s.grid.depths = args.integer("depths", s.grid.depths);
  s.grid.reserve = args.integer("reserve", s.grid.reserve);
  s.needle = args.str("needle", s.needle);
  s.question = args.str("question", s.question);
  s.answer = args.str("answer", s.answer);
  s.iterations = args.integer("iterations", s.iterations);
  s.seed = static_cast<uint64_t>(args.integer("seed", 0));
  if (args.has("cities")) s.cities = apps::needle_cities(args.str("cities", ""));
  const models::SentencePieceTokenizer tok(args.str("tokenizer", ""));
  const std::string out = args.str("out", "");
  const size_t n = apps::write_needle_dataset(d, tok, out);
  std::printf("needle: %zu cases -> %s\n", n, out.c_str());
  return 0;
}

}  // namespace

LLOCO_COMMAND("needle", "build LLoCO's needle-in-a-haystack dataset file", run_needle);
