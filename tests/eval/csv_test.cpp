// RFC 4180 CSV reader: quoting, embedded newlines, doubled quotes, line endings, and strict errors
// that name the file and line.
#include <gtest/gtest.h>

#include "eval/csv.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::TempDir;
using Rows = std::vector<std::vector<std::string>>;

Rows read_all(const std::string& path) {
  CsvReader r(path);
  Rows rows;
  std::vector<std::string> f;
  while (r.next(f)) rows.push_back(f);
  return rows;
}

std::string error_of(const std::string& path) {
  try {
    read_all(path);
  } catch (const EvalError& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, QuotedFieldsNewlinesAndDoubledQuotes) {
  TempDir dir;
  const auto p = dir.file("a.csv", "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\n,,\n\"\",last,\"\"\nend,no,newline");
  EXPECT_EQ(read_all(p), (Rows{{"a", "b", "c"},
                               {"x, y", "say \"hi\"", "two\r\nlines"},
                               {"", "", ""},
                               {"", "last", ""},
                               {"end", "no", "newline"}}));
}

TEST(Csv, RecordLinesCountPhysicalLines) {
  TempDir dir;
  const auto p = dir.file("a.csv", "h1,h2\n\"multi\nline\",x\nnext,y\n");
  CsvReader r(p);
  std::vector<std::string> f;
  ASSERT_TRUE(r.next(f));
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(r.record_line(), 2u);
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(r.record_line(), 4u);
  EXPECT_EQ(f, (std::vector<std::string>{"next", "y"}));
  EXPECT_FALSE(r.next(f));
}

TEST(Csv, LoneCarriageReturnEndsARecord) {
  TempDir dir;
  EXPECT_EQ(read_all(dir.file("a.csv", "a,b\rc,d\r")), (Rows{{"a", "b"}, {"c", "d"}}));
}

TEST(Csv, StrayQuoteIsAnErrorWithLine) {
  TempDir dir;
  const auto p = dir.file("bad.csv", "a,b\nok,fine\nbro\"ken,x\n");
  const std::string err = error_of(p);
  EXPECT_NE(err.find(p + ":3:"), std::string::npos) << err;
  EXPECT_NE(err.find("quote inside unquoted field 1"), std::string::npos) << err;
}

TEST(Csv, TextAfterClosingQuoteIsAnError) {
  TempDir dir;
  const auto p = dir.file("bad.csv", "a,b\n\"x\"y,z\n");
  const std::string err = error_of(p);
  EXPECT_NE(err.find(p + ":2:"), std::string::npos) << err;
  EXPECT_NE(err.find("after the closing quote"), std::string::npos) << err;
}

TEST(Csv, UnterminatedQuoteNamesWhereItStarted) {
  TempDir dir;
  const auto p = dir.file("bad.csv", "a,b\nx,\"open\nstill open\nand more\n");
  const std::string err = error_of(p);
  EXPECT_NE(err.find(p + ":2:"), std::string::npos) << err;
  EXPECT_NE(err.find("end of file inside a quoted field"), std::string::npos) << err;
}

TEST(Csv, TableChecksFieldCountsAndCanSkip) {
  TempDir dir;
  const auto p = dir.file("t.csv", "\xEF\xBB\xBFid,v\n1,a\n2,b,extra\n3,c\"bad\n4,d\n");
  try {
    read_csv_table(p, false, nullptr, nullptr);
    ADD_FAILURE() << "expected an error";
  } catch (const EvalError& e) {
    EXPECT_NE(std::string(e.what()).find(p + ":3: expected 2 fields (header), got 3"), std::string::npos) << e.what();
  }
  size_t skipped = 0;
  std::vector<std::string> reasons;
  const CsvTable t = read_csv_table(p, true, &skipped, &reasons);
  EXPECT_EQ(t.header, (std::vector<std::string>{"id", "v"}));  // BOM removed
  EXPECT_EQ(skipped, 2u);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"4", "d"}));
  EXPECT_EQ(t.row_lines[1], 5u);
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_NE(reasons[1].find(":4:"), std::string::npos) << reasons[1];
}

TEST(Csv, RealNarrativeQADocumentsParseStrictly) {
  const CsvTable t = read_csv_table(testing::shared_data("narrativeqa/documents.csv"), false, nullptr, nullptr);
  EXPECT_EQ(t.header.size(), 10u);
  EXPECT_EQ(t.rows.size(), 1572u);
}

}  // namespace
}  // namespace lloco::eval
