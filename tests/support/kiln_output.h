// Reading what kiln printed, for tests that run the command.
#pragma once

#include <cstddef>
#include <regex>
#include <string>

#include "tests/support/process.h"

namespace kiln::testing {

// How many times `needle` occurs in `text` (overlapping occurrences count).
inline std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The result id of `kiln build` ("Got: ID" on stdout), or "" when none.
inline std::string got_id(const ProcessResult& r) {
  std::smatch m;
  static const std::regex got("Got: ([0-9a-f]{64})");
  return std::regex_search(r.out, m, got) ? m[1].str() : "";
}

}  // namespace kiln::testing
