// RFC 4180 CSV reader, streaming one record at a time: fields separated by ',', records by LF or
// CRLF (a lone CR also ends a record, as in Python's csv module), quoted fields may hold commas,
// line breaks and doubled quotes (""). Strict where the RFC is: a quote inside an unquoted field,
// text after a closing quote, or end of file inside quotes is an error naming the file and line.
#pragma once
#include <cstddef>
#include <fstream>
#include <string>
#include <vector>

#include "eval/error.h"

namespace lloco::eval {

// End of file inside quotes: nothing after it can be resynchronised, so it is never skippable.
class CsvUnterminatedError : public EvalError {
 public:
  using EvalError::EvalError;
};

class CsvReader {
 public:
  explicit CsvReader(const std::string& path);

  // Reads the next record into fields; false at end of file. Throws EvalError "path:line: ...".
  bool next(std::vector<std::string>& fields);

  // After a recoverable error (stray quote, junk after a closing quote) next() has already
  // resynchronised at the following line, so callers that skip bad rows can simply continue.
  size_t record_line() const { return record_line_; }  // physical line where the last record began
  const std::string& path() const { return path_; }

 private:
  int get();   // next byte or -1
  int peek();
  void skip_rest_of_line();

  std::string path_;
  std::ifstream in_;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
  size_t line_ = 1;
  size_t record_line_ = 0;
};

// Reads a whole CSV file with a header row; each row must have as many fields as the header.
// With skip_bad, malformed rows are counted in *skipped instead of throwing (end of file inside
// quotes cannot be skipped and always throws).
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> row_lines;
  size_t column(const std::string& name, const std::string& path) const;  // throws if absent
};
CsvTable read_csv_table(const std::string& path, bool skip_bad, size_t* skipped,
                        std::vector<std::string>* skip_reasons);

}  // namespace lloco::eval
