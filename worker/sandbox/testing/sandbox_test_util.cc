#include "worker/sandbox/testing/sandbox_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <sstream>

#include "common/subprocess.h"

namespace kiln::sandbox::testing {

namespace fs = std::filesystem;

void make_busybox_rootfs(const fs::path& root, const std::string& probe) {
  fs::create_directories(root / "bin");
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  auto list = run_command({"/bin/busybox", "--list"}, {.timeout = std::chrono::seconds(30)});
  ASSERT_TRUE(list && list->ok());
  std::istringstream applets(list->output);
  std::string name;
  while (applets >> name)
    if (name != "busybox") fs::create_symlink("busybox", root / "bin" / name);
  fs::create_directories(root / "tmp");
  fs::permissions(root / "tmp", fs::perms::all | fs::perms::sticky_bit);
  if (!probe.empty()) fs::copy_file(probe, root / "bin/seccomp_probe");
}

std::vector<std::string> host_processes_with(const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text_file(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) found.push_back(name + ": " + cmdline);
  }
  return found;
}

std::string unique_number() {
  static std::atomic<unsigned> counter{0};
  static const unsigned base = [] {
    std::random_device rd;
    return rd() % 500000;
  }();
  return std::to_string(100000 + base + counter++);
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_file(const fs::path& path, std::string_view content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

}  // namespace kiln::sandbox::testing
