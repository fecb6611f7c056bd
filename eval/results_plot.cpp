#include "eval/results_plot.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "eval/svg.h"

namespace lloco::eval {
namespace {

// Tableau 10: distinct in print and for the common color-vision deficiencies.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

constexpr int kPanelW = 340, kPanelH = 260, kPlotLeft = 58, kPlotRight = 20, kPlotTop = 34, kPlotBottom = 44;
constexpr int kPerRow = 3, kTitleH = 40, kLegendRowH = 20, kLegendColW = 160;

// "100", "1k", "10k", "1M": the decade ticks of the x axis.
std::string decade_label(int exponent) {
  if (exponent < 3) return fmt("%.0f", std::pow(10.0, exponent));
  if (exponent < 6) return fmt("%.0f", std::pow(10.0, exponent - 3)) + "k";
  return fmt("%.0f", std::pow(10.0, exponent - 6)) + "M";
}

// The smallest of 1, 2, 5 x 10^k at or above v (v > 0).
double nice_ceiling(double v) {
  const double step = std::pow(10.0, std::floor(std::log10(v)));
  for (const double m : {1.0, 2.0, 5.0, 10.0})
    if (m * step >= v - 1e-9 * step) return m * step;
  return 10.0 * step;
}

struct Axes {
  int x0 = 0, x1 = 1;   // decades spanned
  double y_max = 1;     // score axis top
};

Axes axes_for(const CostPanel& p) {
  Axes a;
  double lo = 0, hi = 0, top = 0;
  bool any = false;
  for (const CostPoint& q : p.points) {
    const double x = std::max(1.0, q.context_positions);
    lo = any ? std::min(lo, x) : x;
    hi = any ? std::max(hi, x) : x;
    top = std::max(top, q.score);
    any = true;
  }
  if (any) {
    a.x0 = static_cast<int>(std::floor(std::log10(lo)));
    a.x1 = std::max(a.x0 + 1, static_cast<int>(std::ceil(std::log10(hi))));
  }
  a.y_max = top > 0 ? nice_ceiling(top) : 1.0;
  return a;
}

}  // namespace

std::string quality_vs_context_svg(const std::string& title, const std::vector<CostPanel>& panels) {
  std::vector<std::string> systems;  // color order: first appearance
  for (const CostPanel& p : panels)
    for (const CostPoint& q : p.points)
      if (std::find(systems.begin(), systems.end(), q.system) == systems.end()) systems.push_back(q.system);
  const auto color = [&](const std::string& system) {
    const auto i = static_cast<size_t>(std::find(systems.begin(), systems.end(), system) - systems.begin());
    return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
  };
  const int n = static_cast<int>(panels.size());
  const int cols = std::max(1, std::min(n, kPerRow)), rows = std::max(1, (n + kPerRow - 1) / kPerRow);
  const int width = cols * kPanelW, legend_cols = std::max(1, width / kLegendColW);
  const int legend_rows = static_cast<int>((systems.size() + legend_cols - 1) / legend_cols);
  const int height = kTitleH + rows * kPanelH + 16 + legend_rows * kLegendRowH;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"white\"/>\n";
  s << "<text x=\"" << width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">"
    << xml_escape(title) << "</text>\n";
  if (panels.empty())
    s << "<text x=\"" << width / 2 << "\" y=\"" << kTitleH + kPanelH / 2 << "\" text-anchor=\"middle\">no results</text>\n";
  for (int i = 0; i < n; ++i) {
    const CostPanel& p = panels[static_cast<size_t>(i)];
    const Axes a = axes_for(p);
    const double left = (i % kPerRow) * kPanelW + kPlotLeft, top = kTitleH + (i / kPerRow) * kPanelH + kPlotTop;
    const double w = kPanelW - kPlotLeft - kPlotRight, h = kPanelH - kPlotTop - kPlotBottom;
    const auto px = [&](double positions) {
      return left + w * (std::log10(std::max(1.0, positions)) - a.x0) / (a.x1 - a.x0);
    };
    const auto py = [&](double score) { return top + h * (1.0 - std::max(0.0, score) / a.y_max); };
    s << "<g class=\"panel\" data-dataset=\"" << xml_escape(p.dataset) << "\">\n";
    s << "<text x=\"" << left + w / 2 << "\" y=\"" << top - 12 << "\" text-anchor=\"middle\" font-size=\"13\" "
      << "font-weight=\"bold\">" << xml_escape(p.dataset) << "</text>\n";
    s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << w << "\" height=\"" << h
      << "\" fill=\"none\" stroke=\"#888\"/>\n";
    // Score grid at round values: a top of 2 x 10^e gets quarters, 1, 5 and 10 x 10^e fifths.
    const double mantissa = a.y_max / std::pow(10.0, std::floor(std::log10(a.y_max)));
    const int ticks = std::lround(mantissa) == 2 ? 4 : 5;
    for (int k = 0; k <= ticks; ++k) {
      const double v = a.y_max * k / ticks, y = py(v);
      s << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + w << "\" y2=\"" << y
        << "\" stroke=\"#eee\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
        << fmt(a.y_max < 5 ? "%.2g" : "%.0f", v) << "</text>\n";
    }
    for (int e = a.x0; e <= a.x1; ++e) {  // decade grid
      const double x = px(std::pow(10.0, e));
      s << "<line x1=\"" << x << "\" y1=\"" << top << "\" x2=\"" << x << "\" y2=\"" << top + h
        << "\" stroke=\"#eee\"/>\n<text x=\"" << x << "\" y=\"" << top + h + 16 << "\" text-anchor=\"middle\">"
        << decade_label(e) << "</text>\n";
    }
    s << "<text x=\"" << left + w / 2 << "\" y=\"" << top + h + 34 << "\" text-anchor=\"middle\">context positions "
      << "per question (log)</text>\n";
    s << "<text transform=\"translate(" << left - 40 << " " << top + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << xml_escape(p.metric) << "</text>\n";
    for (const CostPoint& q : p.points) {
      const double x = px(q.context_positions), y = py(q.score);
      s << "<circle class=\"point\" data-dataset=\"" << xml_escape(p.dataset) << "\" data-system=\""
        << xml_escape(q.system) << "\" cx=\"" << fmt("%.2f", x) << "\" cy=\"" << fmt("%.2f", y)
        << "\" r=\"5\" fill=\"" << color(q.system) << "\" fill-opacity=\"0.85\" stroke=\"white\"><title>" << xml_escape(q.system) << ": "
        << fmt("%.2f", q.score) << " at " << fmt("%.0f", q.context_positions) << " positions</title></circle>\n";
    }
    s << "</g>\n";
  }
  const int legend_top = kTitleH + rows * kPanelH + 16;
  for (size_t k = 0; k < systems.size(); ++k) {
    const int col = static_cast<int>(k) % legend_cols, row = static_cast<int>(k) / legend_cols;
    const int x = 20 + col * kLegendColW, y = legend_top + row * kLegendRowH;
    s << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"5\" fill=\"" << color(systems[k]) << "\"/><text x=\"" << x + 10
      << "\" y=\"" << y + 4 << "\">" << xml_escape(systems[k]) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace lloco::eval
