// `lloco data stats`: documents, questions and document lengths of every dataset file in a folder.
// Only argv handling lives here; the work is in eval/stats.h.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "eval/io.h"
#include "eval/stats.h"

namespace {

constexpr const char* kUsage = R"(usage: lloco data stats [--data-dir DIR] [--out FILE]

Reads every dataset file under DIR (default: ../shared/data relative to the current directory;
model and license folders are skipped) and prints, per file, the number of documents and
questions and the document length in words: mean / p50 / p95 / max.

  --data-dir DIR   the data folder
  --out FILE       also write the statistics as JSON (atomically)
  --help           this text
)";

int run_data_command(const std::vector<std::string>& argv) {
  using namespace lloco::eval;
  const lloco::apps::Args args(argv, {"data-dir", "out"}, {"help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (args.positional().size() != 1 || args.positional()[0] != "stats")
    throw std::runtime_error(args.positional().empty() ? std::string("missing subcommand: lloco data stats (see --help)")
                                                       : "unknown subcommand '" + args.positional()[0] + "' (see --help)");
  const std::string data_dir = args.str("data-dir", "../shared/data");
  const std::string out = args.str("out", "");
  std::vector<std::string> unknown;
  const auto stats = directory_stats(data_dir, word_length_counter(), &unknown);
  std::printf("%s", stats_table(stats).c_str());
  for (const auto& u : unknown) std::printf("not a recognised dataset file: %s\n", u.c_str());
  if (!out.empty()) {
    write_file_atomic(out, stats_to_json(stats).dump(2) + "\n");
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}

}  // namespace

LLOCO_COMMAND("data", "dataset tools: data stats", run_data_command);
