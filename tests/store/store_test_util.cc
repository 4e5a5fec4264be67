#include "tests/store/store_test_util.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "worker/store/fs_util.h"

namespace kiln::store::testing {

namespace {

constexpr const char* kBase = "/var/tmp/kiln-store-test";

void must(const Status& s, const std::string& what) {
  if (!s) throw std::runtime_error(what + ": " + s.error().to_string());
}

// Unmounts and removes what earlier test processes left behind if they died
// without tearing down (a crash, a kill): their pid directories.
void clean_dead_runs() {
  std::error_code ec;
  if (!std::filesystem::exists(kBase, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(kBase, ec)) {
    std::string name = entry.path().filename().string();
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (auto mounts = mounts_beneath(entry.path().string())) {
      for (const auto& m : *mounts) (void)unmount(m);
    }
    std::filesystem::remove_all(entry.path(), ec);
  }
}

class Environment : public ::testing::Environment {
 public:
  void TearDown() override { TestFilesystems::get().tear_down(); }
};

[[maybe_unused]] const bool registered = [] {
  ::testing::AddGlobalTestEnvironment(new Environment);
  return true;
}();

}  // namespace

TestFilesystems& TestFilesystems::get() {
  static TestFilesystems* instance = [] {
    auto* fs = new TestFilesystems;
    clean_dead_runs();
    fs->base_ = fmt::format("{}/{}", kBase, getpid());
    must(ensure_dir(kBase), "creating test base");
    must(ensure_dir(fs->base_), "creating test dir");
    return fs;
  }();
  return *instance;
}

std::string TestFilesystems::mount_point(const std::string& kind) {
  if (kind == "ext4") return base_;
  if (auto it = mounted_.find(kind); it != mounted_.end()) return it->second;
  std::string image = fmt::format("{}/{}.img", base_, kind);
  std::string dir = fmt::format("{}/{}", base_, kind);
  must(ensure_dir(dir), "creating mount point");
  must(run_command({"truncate", "-s", "1G", image}), "making image");
  if (kind == "btrfs") {
    must(run_command({"mkfs.btrfs", "-q", "-f", image}), "mkfs.btrfs");
  } else {
    must(run_command({"mkfs.xfs", "-q", "-f", "-m", "reflink=1", image}), "mkfs.xfs");
  }
  must(run_command({"mount", "-o", "loop", image, dir}), "mounting " + image);
  mounted_[kind] = dir;
  return dir;
}

std::string TestFilesystems::fresh_dir(const std::string& kind) {
  std::lock_guard lock(mu_);
  std::string dir = fmt::format("{}/{}-{}", mount_point(kind), kind, counter_++);
  must(ensure_dir(dir), "creating " + dir);
  return dir;
}

void TestFilesystems::tear_down() {
  std::lock_guard lock(mu_);
  if (auto mounts = mounts_beneath(base_)) {
    for (const auto& m : *mounts) {
      if (umount2(m.c_str(), 0) != 0) (void)unmount(m);
    }
  }
  mounted_.clear();
  std::error_code ec;
  std::filesystem::remove_all(base_, ec);
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kiln::store::testing
