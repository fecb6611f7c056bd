// The run's quality-vs-context plot (eval/results_plot.h): points where the axes put them (log10 x,
// linear y from 0), one circle per system and dataset, a system's color shared across panels, and
// names from configs escaped.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "eval/results_plot.h"

namespace lloco::eval {
namespace {

struct Circle {
  std::string dataset, system, fill;
  double cx = 0, cy = 0;
};

std::vector<Circle> circles(const std::string& svg) {
  static const std::regex re(
      "<circle class=\"point\" data-dataset=\"([^\"]*)\" data-system=\"([^\"]*)\" cx=\"([-0-9.]+)\" "
      "cy=\"([-0-9.]+)\" r=\"5\" fill=\"(#[0-9a-f]{6})\"");
  std::vector<Circle> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back({(*it)[1], (*it)[2], (*it)[5], std::stod((*it)[3]), std::stod((*it)[4])});
  return out;
}

const Circle& find(const std::vector<Circle>& cs, const std::string& dataset, const std::string& system) {
  for (const Circle& c : cs)
    if (c.dataset == dataset && c.system == system) return c;
  throw std::runtime_error("no point " + dataset + "/" + system);
}

TEST(ResultsPlot, ContextIsLogScaledAndScoreLinearFromZero) {
  const std::vector<CostPanel> panels{{"qmsum", "rouge_gm", {{"lloco", 100, 20}, {"mid", 1000, 10}, {"text", 10000, 0}}}};
  const std::vector<Circle> cs = circles(quality_vs_context_svg("run", panels));
  ASSERT_EQ(cs.size(), 3u);
  const Circle &a = find(cs, "qmsum", "lloco"), &b = find(cs, "qmsum", "mid"), &c = find(cs, "qmsum", "text");
  EXPECT_LT(a.cx, b.cx);
  EXPECT_NEAR(b.cx - a.cx, c.cx - b.cx, 0.02);  // equal steps per decade
  EXPECT_LT(a.cy, b.cy);                      // higher score, higher on the page
  EXPECT_NEAR(c.cy - b.cy, b.cy - a.cy, 0.02);  // 20 -> 10 -> 0: equal steps
}

TEST(ResultsPlot, OnePointPerSystemAndDatasetWithASharedColor) {
  const std::vector<CostPanel> panels{{"qmsum", "rouge_gm", {{"lloco", 120, 15}, {"truncated_text", 4001, 12}}},
                                      {"quality", "em", {{"truncated_text", 3900, 30}, {"lloco", 180, 41}}}};
  const std::vector<Circle> cs = circles(quality_vs_context_svg("run", panels));
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(find(cs, "qmsum", "lloco").fill, find(cs, "quality", "lloco").fill);
  EXPECT_EQ(find(cs, "qmsum", "truncated_text").fill, find(cs, "quality", "truncated_text").fill);
  EXPECT_NE(find(cs, "qmsum", "lloco").fill, find(cs, "qmsum", "truncated_text").fill);
  EXPECT_LT(find(cs, "quality", "lloco").cx, find(cs, "quality", "truncated_text").cx);
  EXPECT_GT(find(cs, "quality", "lloco").cx, find(cs, "qmsum", "truncated_text").cx);  // second panel, to the right
}

TEST(ResultsPlot, NamesAreEscapedAndZeroPositionsStayOnTheAxis) {
  const std::string svg = quality_vs_context_svg("a & b", {{"d<1>", "f1", {{"sys\"x", 0, 5}, {"y", 50, 5}}}});
  EXPECT_EQ(svg.find("d<1>"), std::string::npos);
  EXPECT_NE(svg.find("d&lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a &amp; b"), std::string::npos);
  const std::vector<Circle> cs = circles(svg);
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_TRUE(std::isfinite(cs[0].cx));
  EXPECT_LT(cs[0].cx, cs[1].cx);
}

TEST(ResultsPlot, NoPanelsIsAValidEmptyPicture) {
  const std::string svg = quality_vs_context_svg("empty", {});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("no results"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_TRUE(circles(svg).empty());
}

}  // namespace
}  // namespace lloco::eval
