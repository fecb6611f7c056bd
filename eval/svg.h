// Small helpers the SVG reports share (needle grid, quality-vs-context plot).
#pragma once
#include <cstdio>
#include <string>

namespace lloco::eval {

// printf-style formatting of one number.
inline std::string fmt(const char* spec, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

// Text and attribute values: names come from configs and dataset files.
inline std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace lloco::eval
