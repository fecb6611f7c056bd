// Test helper for the simt suites: runs a launch (or any call) and returns the message of the
// lloco::Error it throws, "" when it throws none, so a test can assert on what the executor reported.
#pragma once
#include <string>

#include "core/error.h"

namespace lloco::simt {

template <typename Fn>
std::string launch_error(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lloco::simt
