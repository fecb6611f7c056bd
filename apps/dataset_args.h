// The dataset options the pipeline commands share (compress, finetune, predict): --dataset-file F
// [--format F] [--skip-bad-lines], read through eval's readers (the same files `lloco eval` scores).
#pragma once
#include "apps/args.h"
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

}  // namespace lloco::apps
