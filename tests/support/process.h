// Test support: run a program to completion and capture what it printed.
//
//   auto r = run_process({"/path/to/kiln", "spec", "check", "x.spec"});
//   EXPECT_EQ(r.exit_code, 1);
//   EXPECT_THAT(r.err, HasSubstr("x.spec:3:2"));
//
// For tests only: aborts the test binary if fork/exec plumbing itself fails.
#pragma once

#include <string>
#include <vector>

namespace kiln::testing {

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal number
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
};

// Runs argv[0] (a path) with the given arguments, optional stdin text and
// working directory, and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdin_text = "",
                          const std::string& cwd = "");

// The repository root (KILN_SOURCE_DIR, which ctest sets).
std::string source_dir();

}  // namespace kiln::testing
