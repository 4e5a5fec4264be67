// Test support for the store conformance suite: real filesystems for every
// backend (btrfs and xfs on loop devices made per test process, ext4
// directories for overlayfs and rsync), and small file helpers.
//
//   TestFilesystems& fs = TestFilesystems::get();
//   std::string dir = fs.fresh_dir("btrfs");   // an empty directory on btrfs
//
// Loop devices are mounted with `mount -o loop` (auto-clearing) and
// unmounted at exit; mounts left by crashed earlier runs (dead pids) are
// cleaned up at start. Thread safety: get() and fresh_dir() are thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace kiln::store::testing {

class TestFilesystems {
 public:
  static TestFilesystems& get();
  // A new empty directory on a filesystem of `kind` ("ext4", "btrfs", "xfs").
  std::string fresh_dir(const std::string& kind);
  // Unmounts and removes everything this process made.
  void tear_down();

 private:
  std::string mount_point(const std::string& kind);
  std::mutex mu_;
  std::string base_;
  std::map<std::string, std::string> mounted_;  // kind -> mount point
  int counter_ = 0;
};

void write_file(const std::string& path, const std::string& content);
std::optional<std::string> read_file(const std::string& path);

}  // namespace kiln::store::testing
