// Test support for the sandbox's tests and for tests that run real steps
// (tests/worker): a busybox root filesystem, the processes on the host, and
// numbers unique enough to mark a test's processes.
//
//   make_busybox_rootfs(dir / "rootfs");               // bin/busybox + applets, tmp/
//   std::string marker = "sleep " + unique_number();   // recognisable in ps
//   EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
//
// For tests only (GoogleTest assertions inside). Thread safety: any thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::sandbox::testing {

// Builds ROOT/bin/busybox plus a symlink per applet, as the base image does,
// and a world-writable ROOT/tmp. Also copies the seccomp probe
// (testing/seccomp_probe.cc) to ROOT/bin/seccomp_probe when `probe` is given.
void make_busybox_rootfs(const std::filesystem::path& root, const std::string& probe = "");

// "PID: command line" of every process on the host whose argv contains `needle`.
std::vector<std::string> host_processes_with(const std::string& needle);

// A number no other test (in this or a concurrent test process) uses.
std::string unique_number();

// The whole file ("" when it cannot be read); writing replaces it.
std::string read_text_file(const std::filesystem::path& path);
void write_text_file(const std::filesystem::path& path, std::string_view content);

}  // namespace kiln::sandbox::testing
