// What the pipeline commands share (compress, finetune, predict): the dataset options --dataset-file F
// [--format F] [--skip-bad-lines], read through eval's readers (the same files `lloco eval` scores),
// required options, and pre-tokenized JSONL fields.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "eval/io.h"
#include "eval/readers.h"

namespace lloco::apps {

inline const char* kDatasetOptionsHelp =
    "  --dataset-file F       a dataset file eval reads (QuALITY, Qasper, NarrativeQA, HotpotQA, QMSum,\n"
    "                         SCROLLS, LongBench); --format F (default auto), --skip-bad-lines\n";

inline eval::DatasetFile read_dataset_arg(const Args& args) {
  eval::ReadOptions read;
  read.skip_bad = args.flag("skip-bad-lines");
  return eval::read_dataset(args.str("dataset-file", ""), eval::parse_format(args.str("format", "auto")), read);
}

// Throws "--NAME is required" for the first of `names` the command line lacks.
inline void require_options(const Args& args, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (!args.has(name)) throw std::runtime_error(std::string("--") + name + " is required (see --help)");
}

// A JSONL record's list of token ids (pre-tokenized inputs); `where` ("file:line") names a bad entry.
inline std::vector<int32_t> token_ids_field(const eval::json& rec, const std::string& field, const std::string& where) {
  std::vector<int32_t> out;
  for (const eval::json& v : eval::get_array(rec, field.c_str())) {
    if (!v.is_number_integer()) throw std::runtime_error(where + ": " + field + " entry " + v.dump() + " is not an integer");
    out.push_back(v.get<int32_t>());
  }
  return out;
}

}  // namespace lloco::apps
