// Test support: a fresh directory under /tmp (or `parent`), removed with
// everything in it (and anything mounted below it) by the destructor.
//
//   TempDir dir;                                  // /tmp/kiln-test-XXXXXX
//   write_file(dir.path() + "/a.spec", "...");
//   TempDir home("kiln-e2e", "/var/tmp");         // /var/tmp/kiln-e2e-XXXXXX
//
// For tests only: aborts the test binary if the directory cannot be made.
#pragma once

#include <string>

namespace kiln::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kiln-test", const std::string& parent = "/tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kiln::testing
