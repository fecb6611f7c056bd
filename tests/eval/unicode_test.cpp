// Python str semantics: lower(), split(), strip(), splitlines() against CPython's own output in
// the parity fixture, plus UTF-8 edge cases.
#include <gtest/gtest.h>

#include "eval/unicode.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

TEST(PythonStr, MatchesCPythonOnFixtureStrings) {
  const auto& cases = testing::parity_fixture().at("cases");
  size_t checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    if (!c.contains("lower")) continue;
    const std::string s = c.at("pred");
    EXPECT_EQ(text::lower(s), c.at("lower").get<std::string>()) << i << " " << s;
    EXPECT_EQ(text::split_ws(s), c.at("split").get<std::vector<std::string>>()) << i << " " << s;
    EXPECT_EQ(text::count_ws_words(s), c.at("split").size()) << i;
    EXPECT_EQ(text::strip_ws(s), c.at("strip").get<std::string>()) << i << " " << s;
    EXPECT_EQ(text::splitlines(s), c.at("splitlines").get<std::vector<std::string>>()) << i << " " << s;
    ++checked;
  }
  EXPECT_GT(checked, 250u);
}

TEST(PythonStr, SpecialCasing) {
  EXPECT_EQ(text::lower("\xC4\xB0"), "i\xCC\x87");                        // U+0130 -> i + U+0307
  EXPECT_EQ(text::lower("\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCF\x82");          // final sigma: ΟΣ -> ος
  EXPECT_EQ(text::lower("\xCE\xA3"), "\xCF\x83");                          // lone Σ -> σ
  EXPECT_EQ(text::lower("\xCE\x9F\xCE\xA3\xCE\x9F"), "\xCE\xBF\xCF\x83\xCE\xBF");  // medial sigma
  EXPECT_EQ(text::lower("\xE2\x84\xAA"), "k");                             // KELVIN SIGN
}

TEST(PythonStr, InvalidUtf8RoundTrips) {
  const std::string bad = "A\xFF" "B\xC3(\xE2\x82";
  EXPECT_EQ(text::encode_utf8(text::decode_utf8(bad)), bad);
  EXPECT_EQ(text::lower(bad), "a\xFF" "b\xC3(\xE2\x82");
  EXPECT_EQ(text::split_ws("x\xFF y"), (std::vector<std::string>{"x\xFF", "y"}));
}

TEST(PythonStr, WordAndSpaceClasses) {
  EXPECT_TRUE(text::is_space(0x3000));
  EXPECT_TRUE(text::is_space(0x1C));
  EXPECT_FALSE(text::is_space(0x200B));  // ZERO WIDTH SPACE is not whitespace in Python
  EXPECT_TRUE(text::is_word(0xE9));      // é
  EXPECT_TRUE(text::is_word(0xB2));      // ² is a digit for str.isalnum()
  EXPECT_FALSE(text::is_word(0x2014));   // em dash
  EXPECT_STREQ(text::unicode_version(), "14.0.0");
}

}  // namespace
}  // namespace lloco::eval
