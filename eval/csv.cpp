// RFC 4180 CSV reader; see csv.h.
#include "eval/csv.h"

#include <cerrno>
#include <cstring>


namespace lloco::eval {

CsvReader::CsvReader(const std::string& path) : path_(path), in_(path, std::ios::binary), buf_(1 << 16) {
  if (!in_) fail_at(path, 0, std::string("cannot open: ") + std::strerror(errno));
}

int CsvReader::peek() {
  if (pos_ == len_) {
    in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    len_ = static_cast<size_t>(in_.gcount());
    pos_ = 0;
    if (len_ == 0) return -1;
  }
  return static_cast<unsigned char>(buf_[pos_]);
}

int CsvReader::get() {
  const int c = peek();
  if (c < 0) return c;
  ++pos_;
  if (c == '\n') ++line_;
  return c;
}

void CsvReader::skip_rest_of_line() {
  for (int c = get(); c >= 0 && c != '\n'; c = get()) {
  }
}

bool CsvReader::next(std::vector<std::string>& fields) {
  fields.clear();
  if (peek() < 0) return false;
  record_line_ = line_;
  std::string cur;
  for (;;) {
    int c = get();
    if (c == '"' && cur.empty()) {
      // Quoted field: runs to the matching quote; "" is a literal quote.
      const size_t open_line = line_;
      for (;;) {
        c = get();
        if (c < 0)
          throw CsvUnterminatedError(at_line(path_, open_line, "end of file inside a quoted field that starts here"));
        if (c == '"') {
          if (peek() == '"') {
            get();
            cur.push_back('"');
            continue;
          }
          break;
        }
        cur.push_back(static_cast<char>(c));
      }
      c = get();
      if (c != ',' && c != '\n' && c != '\r' && c >= 0) {
        const size_t bad_line = line_;
        skip_rest_of_line();
        fail_at(path_, bad_line, std::string("unexpected character '") + static_cast<char>(c) +
                                     "' after the closing quote of field " + std::to_string(fields.size() + 1));
      }
    } else {
      while (c >= 0 && c != ',' && c != '\n' && c != '\r') {
        if (c == '"') {
          const size_t bad_line = line_;
          skip_rest_of_line();
          fail_at(path_, bad_line, "quote inside unquoted field " + std::to_string(fields.size() + 1) +
                                       " (fields containing quotes must be quoted, with quotes doubled)");
        }
        cur.push_back(static_cast<char>(c));
        c = get();
      }
    }
    fields.push_back(std::move(cur));
    cur.clear();
    if (c == ',') continue;
    if (c == '\r' && peek() == '\n') get();
    return true;  // '\n', '\r' or end of file
  }
}

size_t CsvTable::column(const std::string& name, const std::string& path) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  fail_at(path, 1, "missing CSV column '" + name + "'");
}

CsvTable read_csv_table(const std::string& path, bool skip_bad, size_t* skipped,
                        std::vector<std::string>* skip_reasons) {
  CsvReader reader(path);
  CsvTable table;
  if (!reader.next(table.header)) fail_at(path, 1, "empty CSV file (no header row)");
  if (!table.header.empty() && table.header[0].rfind("\xEF\xBB\xBF", 0) == 0) table.header[0].erase(0, 3);
  std::vector<std::string> fields;
  for (;;) {
    std::string reason;
    size_t line = 0;
    try {
      if (!reader.next(fields)) break;
      line = reader.record_line();
      if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
      if (fields.size() != table.header.size()) {
        reason = "expected " + std::to_string(table.header.size()) + " fields (header), got " +
                 std::to_string(fields.size());
      } else {
        table.rows.push_back(fields);
        table.row_lines.push_back(line);
        continue;
      }
    } catch (const CsvUnterminatedError&) {
      throw;
    } catch (const EvalError& e) {
      if (!skip_bad) throw;
      if (skipped) ++*skipped;
      if (skip_reasons && skip_reasons->size() < 5) skip_reasons->push_back(e.what());
      continue;
    }
    if (!skip_bad) fail_at(path, line, reason);
    if (skipped) ++*skipped;
    if (skip_reasons && skip_reasons->size() < 5) skip_reasons->push_back(at_line(path, line, reason));
  }
  return table;
}

}  // namespace lloco::eval
