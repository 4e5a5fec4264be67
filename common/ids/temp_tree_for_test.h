// Test helper: a scratch directory tree that removes itself.
//
//   TempTree tree;
//   tree.file("src/main.c", "int main() {}\n");
//   tree.file("run.sh", "#!/bin/sh\n", 0755);
//   tree.symlink("src/link", "main.c");
//   DirectoryContext::open(tree.root());
//
// The tree lives in a kiln::testing::TempDir (tests/support, library
// kiln_test_support). Parent directories are created as needed. Failures
// abort the test binary (std::filesystem throws), which is what a broken
// fixture deserves.
// Thread safety: one thread.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "tests/support/temp_dir.h"

namespace kiln::ids {

class TempTree {
 public:
  TempTree() = default;
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::string& root() const { return dir_.path(); }
  std::string host(std::string_view rel) const { return root() + "/" + std::string(rel); }

  void file(std::string_view rel, std::string_view content, mode_t mode = 0644) {
    make_parent(rel);
    std::string p = host(rel);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    if (::chmod(p.c_str(), mode) != 0) std::abort();
  }
  void dir(std::string_view rel) { std::filesystem::create_directories(host(rel)); }
  void symlink(std::string_view rel, std::string_view target) {
    make_parent(rel);
    std::filesystem::remove(host(rel));
    std::filesystem::create_symlink(std::string(target), host(rel));
  }
  void fifo(std::string_view rel) {
    make_parent(rel);
    if (::mkfifo(host(rel).c_str(), 0644) != 0) std::abort();
  }
  void remove(std::string_view rel) { std::filesystem::remove_all(host(rel)); }

 private:
  void make_parent(std::string_view rel) {
    std::filesystem::create_directories(std::filesystem::path(host(rel)).parent_path());
  }
  kiln::testing::TempDir dir_{"kiln-ids"};
};

}  // namespace kiln::ids
