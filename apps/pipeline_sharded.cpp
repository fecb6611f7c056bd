// predict_sharded (apps/pipeline.h): the questions are shared out across ranks, and rank 0 folds the
// ranks' answer files into the one a single process writes.
#include <algorithm>
#include <filesystem>
#include <set>

#include "apps/pipeline.h"
#include "core/atomic_file.h"

namespace lloco::apps {

namespace fs = std::filesystem;

namespace {

std::string rank_file(const std::string& out, int rank) { return out + ".rank-" + std::to_string(rank); }

// Folds every OUT.rank-R file into `out`: new answers appended, costs summed (peaks: the largest), then
// the rank files removed. A fold stopped before the removal is redone without double counting: a
// rank file that adds no new answer adds no cost either.
PredictCost fold_rank_predictions(const std::string& out) {
  std::vector<std::string> parts;
  const fs::path parent = fs::absolute(out).parent_path();
  const std::string prefix = fs::path(out).filename().string() + ".rank-";
  for (const auto& e : fs::directory_iterator(parent)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.find(".cost.json") == std::string::npos) parts.push_back(e.path().string());
  }
  std::sort(parts.begin(), parts.end());
  std::vector<std::pair<std::string, std::string>> lines = read_prediction_lines(out);
  std::set<std::string> ids;
  for (const auto& [id, line] : lines) ids.insert(id);
  PredictCost total = read_predict_cost(out + ".cost.json", ids.size());
  if (parts.empty()) return total;
  for (const std::string& part : parts) {
    size_t added = 0;
    for (auto& [id, line] : read_prediction_lines(part))
      if (ids.insert(id).second) lines.emplace_back(id, line), ++added;
    if (added == 0) continue;
    const PredictCost c = read_predict_cost(part + ".cost.json", added);
    total.examples += c.examples;
    total.context_positions += c.context_positions;
    total.prefill_seconds += c.prefill_seconds;
    total.decode_seconds += c.decode_seconds;
    total.decode_tokens += c.decode_tokens;
    total.peak_host_bytes = std::max(total.peak_host_bytes, c.peak_host_bytes);
    total.peak_host_process_wide = total.peak_host_process_wide || c.peak_host_process_wide;
    total.peak_device_bytes = std::max(total.peak_device_bytes, c.peak_device_bytes);
  }
  std::string text;
  for (const auto& [id, line] : lines) text += line + "\n";
  write_file_atomic(out, text);
  write_predict_cost(out + ".cost.json", total);
  for (const std::string& part : parts) {
    fs::remove(part);
    fs::remove(part + ".cost.json");
  }
  return total;
}

}  // namespace

PredictCount predict_sharded(Communicator& comm, const models::LlamaModel& model, const models::Tokenizer& tok,
                             const eval::DatasetFile& data, const std::string& out, const PredictOptions& options) {
  const int rank = comm.rank(), world = comm.world_size();
  if (world == 1) return predict_dataset(model, tok, data, out, options);
  if (rank == 0) fold_rank_predictions(out);  // an earlier, stopped run's parts
  comm.barrier();
  std::set<std::string> done;
  for (const auto& [id, line] : read_prediction_lines(out)) done.insert(id);
  eval::DatasetFile part = data;
  part.examples.clear();
  size_t k = 0;
  for (const eval::Example& ex : data.examples)
    if (!done.count(ex.id) && static_cast<int>(k++ % static_cast<size_t>(world)) == rank) part.examples.push_back(ex);
  PredictCount count = predict_dataset(model, tok, part, rank_file(out, rank), options);
  comm.barrier();
  if (rank == 0) {
    count.cost = fold_rank_predictions(out);
    count.total = data.examples.size();
  }
  comm.barrier();
  return count;
}

}  // namespace lloco::apps
