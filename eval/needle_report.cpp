// Needle results: per-cell success rates from scored predictions, written as JSON, a Markdown table
// and a self-contained SVG heatmap; see needle.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "eval/error.h"
#include "eval/io.h"
#include "eval/needle.h"
#include "eval/svg.h"

namespace lloco::eval {
namespace {

int64_t meta_int(const Example& ex, const char* key) {
  auto it = ex.meta.find(key);
  if (it == ex.meta.end())
    throw EvalError("needle_grid: example '" + ex.id + "' has no meta '" + key + "' (read the file with format needle)");
  try {
    size_t used = 0;
    const int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw EvalError("needle_grid: example '" + ex.id + "' meta '" + key + "' is not an integer: '" + it->second + "'");
}


std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return out;
}

// 0% red, 50% yellow, 100% green (ColorBrewer RdYlGn ends), linear in between.
std::string cell_color(double pct) {
  if (std::isnan(pct)) return "#bdbdbd";
  static const double stops[3][3] = {{215, 48, 39}, {254, 224, 139}, {26, 152, 80}};
  const double t = std::clamp(pct, 0.0, 100.0) / 50.0;
  const int lo = t >= 1.0 ? 1 : 0;
  const double f = t - lo;
  char buf[8];
  int rgb[3];
  for (int k = 0; k < 3; ++k) rgb[k] = static_cast<int>(std::lround(stops[lo][k] + f * (stops[lo + 1][k] - stops[lo][k])));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

void check_shape(const NeedleGrid& g) {
  const size_t rows = g.lengths.size(), cols = g.depths.size();
  if (g.success.size() != rows || g.count.size() != rows)
    throw EvalError("needle report: " + std::to_string(rows) + " lengths but " + std::to_string(g.success.size()) +
                    " success rows and " + std::to_string(g.count.size()) + " count rows");
  for (size_t i = 0; i < rows; ++i)
    if (g.success[i].size() != cols || g.count[i].size() != cols)
      throw EvalError("needle report: row " + std::to_string(i) + " has " + std::to_string(g.success[i].size()) +
                      " success and " + std::to_string(g.count[i].size()) + " count cells for " + std::to_string(cols) +
                      " depths");
}

nlohmann::json grid_json(const std::string& title, const NeedleGrid& g) {
  nlohmann::json success = nlohmann::json::array();
  for (const auto& row : g.success) {
    nlohmann::json r = nlohmann::json::array();
    for (double v : row) r.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v));
    success.push_back(std::move(r));
  }
  return {{"title", title},     {"lengths", g.lengths}, {"depths", g.depths},
          {"success", success}, {"count", g.count},     {"overall", std::isnan(g.overall) ? nlohmann::json(nullptr) : nlohmann::json(g.overall)}};
}

std::string grid_markdown(const std::string& title, const NeedleGrid& g) {
  std::ostringstream md;
  md << "# " << md_cell(title) << "\n\nSuccess rate (%) by context length (tokens, rows) and needle depth (%, columns).\n\n";
  md << "| length \\ depth |";
  for (int64_t d : g.depths) md << " " << d << " |";
  md << "\n|---|";
  for (size_t j = 0; j < g.depths.size(); ++j) md << "---|";
  md << "\n";
  for (size_t i = 0; i < g.lengths.size(); ++i) {
    md << "| " << g.lengths[i] << " |";
    for (double v : g.success[i]) md << " " << (std::isnan(v) ? std::string("-") : fmt("%.1f", v)) << " |";
    md << "\n";
  }
  md << "\nOverall: " << (std::isnan(g.overall) ? std::string("-") : fmt("%.2f", g.overall)) << "\n";
  return md.str();
}

std::string grid_svg(const std::string& title, const NeedleGrid& g) {
  const int cell_w = 56, cell_h = 30, left = 96, top = 56, bottom = 56, right = 24;
  const int cols = static_cast<int>(g.depths.size()), rows = static_cast<int>(g.lengths.size());
  const int width = left + cols * cell_w + right, height = top + rows * cell_h + bottom;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"white\"/>\n";
  s << "<text x=\"" << width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">"
    << xml_escape(title) << "</text>\n";
  if (!std::isnan(g.overall))
    s << "<text x=\"" << width / 2 << "\" y=\"42\" text-anchor=\"middle\">overall " << fmt("%.1f", g.overall)
      << "%</text>\n";
  for (int i = 0; i < rows; ++i) {
    const int y = top + i * cell_h;
    s << "<text x=\"" << left - 6 << "\" y=\"" << y + cell_h / 2 + 4 << "\" text-anchor=\"end\">" << g.lengths[i]
      << "</text>\n";
    for (int j = 0; j < cols; ++j) {
      const int x = left + j * cell_w;
      const double v = g.success[i][j];
      s << "<rect class=\"cell\" x=\"" << x << "\" y=\"" << y << "\" width=\"" << cell_w << "\" height=\"" << cell_h
        << "\" fill=\"" << cell_color(v) << "\" stroke=\"white\"><title>length " << g.lengths[i] << ", depth "
        << g.depths[j] << "%: " << (std::isnan(v) ? std::string("no examples") : fmt("%.1f", v) + "% of " + std::to_string(g.count[i][j]))
        << "</title></rect>\n";
      s << "<text x=\"" << x + cell_w / 2 << "\" y=\"" << y + cell_h / 2 + 4 << "\" text-anchor=\"middle\">"
        << (std::isnan(v) ? std::string("-") : fmt("%.0f", v)) << "</text>\n";
    }
  }
  const int axis_y = top + rows * cell_h;
  for (int j = 0; j < cols; ++j)
    s << "<text x=\"" << left + j * cell_w + cell_w / 2 << "\" y=\"" << axis_y + 16 << "\" text-anchor=\"middle\">"
      << g.depths[j] << "</text>\n";
  s << "<text x=\"" << left + cols * cell_w / 2 << "\" y=\"" << axis_y + 40 << "\" text-anchor=\"middle\">needle depth (%)</text>\n";
  s << "<text transform=\"translate(16 " << top + rows * cell_h / 2 << ") rotate(-90)\" text-anchor=\"middle\">context length (tokens)</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace

NeedleGrid needle_grid(const DatasetFile& data, const DatasetScore& score) {
  if (data.examples.empty()) throw EvalError("needle_grid: " + data.path + " has no examples");
  std::map<std::string, double> by_id;
  for (const auto& s : score.per_example) by_id[s.id] = s.score;
  std::set<int64_t> length_set, depth_set;
  for (const auto& ex : data.examples) length_set.insert(meta_int(ex, "length")), depth_set.insert(meta_int(ex, "depth_percent"));
  NeedleGrid g;
  g.lengths.assign(length_set.begin(), length_set.end());
  g.depths.assign(depth_set.begin(), depth_set.end());
  std::vector<std::vector<double>> sum(g.lengths.size(), std::vector<double>(g.depths.size(), 0.0));
  g.count.assign(g.lengths.size(), std::vector<int64_t>(g.depths.size(), 0));
  double total = 0;
  for (const auto& ex : data.examples) {
    auto it = by_id.find(ex.id);
    if (it == by_id.end())
      throw EvalError("needle_grid: example '" + ex.id + "' has no score (" + std::to_string(score.per_example.size()) +
                      " scores for " + std::to_string(data.examples.size()) + " examples)");
    const auto i = static_cast<size_t>(std::lower_bound(g.lengths.begin(), g.lengths.end(), meta_int(ex, "length")) - g.lengths.begin());
    const auto j = static_cast<size_t>(std::lower_bound(g.depths.begin(), g.depths.end(), meta_int(ex, "depth_percent")) - g.depths.begin());
    sum[i][j] += it->second;
    ++g.count[i][j];
    total += it->second;
  }
  g.success.assign(g.lengths.size(), std::vector<double>(g.depths.size(), std::numeric_limits<double>::quiet_NaN()));
  for (size_t i = 0; i < g.lengths.size(); ++i)
    for (size_t j = 0; j < g.depths.size(); ++j)
      if (g.count[i][j] > 0) g.success[i][j] = sum[i][j] / static_cast<double>(g.count[i][j]);
  g.overall = total / static_cast<double>(data.examples.size());
  return g;
}

std::vector<std::string> write_needle_report(const std::string& dir, const std::string& title, const NeedleGrid& grid) {
  check_shape(grid);
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const std::string json_path = (fs::path(dir) / "needle.json").string(), md_path = (fs::path(dir) / "needle.md").string(),
                    svg_path = (fs::path(dir) / "needle.svg").string();
  write_file_atomic(json_path, grid_json(title, grid).dump(2) + "\n");
  write_file_atomic(md_path, grid_markdown(title, grid));
  write_file_atomic(svg_path, grid_svg(title, grid));
  return {json_path, md_path, svg_path};
}

}  // namespace lloco::eval
