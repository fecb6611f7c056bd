// The picture of a run's results table: per dataset, each system's score against the number of
// positions its decoder read per question. LLoCO's claim is a point up and to the left of the text
// baselines (as good or better at ~30x fewer positions); the plot shows whether a run reproduces it.
#pragma once
#include <string>
#include <vector>

namespace lloco::eval {

struct CostPoint {
  std::string system;
  double context_positions = 0;  // per question: summary vectors + prompt tokens (below 1: drawn at 1)
  double score = 0;              // the dataset's metric, x100
};

struct CostPanel {
  std::string dataset, metric;
  std::vector<CostPoint> points;
};

// An SVG with one panel per dataset (three to a row): score on a linear y axis from 0, context
// positions on a log10 x axis spanning whole decades, one point per system in the system's color,
// the same in every panel; the legend names them in order of first appearance. Each
// point is a <circle class="point" data-dataset=... data-system=...> with a <title> giving its values.
std::string quality_vs_context_svg(const std::string& title, const std::vector<CostPanel>& panels);

}  // namespace lloco::eval
