// The fixture of RuncSandbox's tests against the real runtimes (runc, crun),
// as root: a busybox root filesystem and a sandbox of its own per test, and
// what the tests check afterwards (the runtime's containers, the step
// cgroups left, a worker killed mid-step played by a child process).
//
//   TEST_F(SandboxTest, Something) { EXPECT_EQ(run_ok(sh("echo ok")), "ok\n"); }
//
// For tests only (GoogleTest assertions inside); header-only so that each
// test file of worker/sandbox/ includes it. Thread safety: the test's thread.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/runc_sandbox.h"
#include "worker/sandbox/testing/sandbox_test_util.h"

namespace kiln::sandbox::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string read_file(const fs::path& p) {
  return read_text_file(p);
}
inline void write_file(const fs::path& p, std::string_view content) {
  write_text_file(p, content);
}

// Waits up to 10 s for `condition`; true if it came true.
inline bool eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { set_up(OciRuntime::kRunc); }

  void set_up(OciRuntime runtime, OciOptions oci = {}) {
    runtime_ = runtime;
    oci_ = oci;
    temp_.emplace("kiln-sandbox-test");
    dir_ = temp_->path();
    rootfs_ = dir_ / "rootfs";
    state_ = dir_ / "state";
    make_busybox_rootfs(rootfs_);
    auto sandbox = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
    ASSERT_TRUE(sandbox) << sandbox.error().to_string();
    sandbox_ = std::move(*sandbox);
  }

  void TearDown() override {
    // Whatever a failed test left running goes (it would outlive the test).
    if (sandbox_) {
      for (const auto& id : runtime_containers())
        (void)run_command(sandbox_->runtime_command({"delete", "--force", id}), {.timeout = 30s});
      (void)StepCgroup::remove_group_leftovers(sandbox_->cgroup_group());
    }
    sandbox_.reset();
    temp_.reset();
  }

  static RunSpec sh(const std::string& command) {
    RunSpec spec;
    spec.argv = {"/bin/sh", "-c", command};
    spec.env = {"PATH=/bin"};
    return spec;
  }

  Status run(const RunSpec& spec, std::string* output = nullptr) {
    CancelToken cancel;
    std::string out;
    Status s = sandbox_->run(
        spec, rootfs_.string(), [&](std::string_view c) { out += c; }, cancel);
    if (output) *output = out;
    return s;
  }

  std::string run_ok(const RunSpec& spec) {
    std::string out;
    Status s = run(spec, &out);
    EXPECT_TRUE(s) << s.error().to_string() << "\noutput: " << out;
    return out;
  }

  std::vector<std::string> runtime_containers() {
    auto out = run_command(sandbox_->runtime_command({"list", "-q"}), {.timeout = 30s});
    EXPECT_TRUE(out && out->ok()) << (out ? out->output : out.error().to_string());
    std::vector<std::string> ids;
    std::istringstream in(out ? out->output : "");
    std::string id;
    while (in >> id) ids.push_back(id);
    return ids;
  }

  // What is left in the runtime's state directory (the sandbox's own, not
  // only what the runtime lists: kiln removes an ended container's state).
  std::vector<std::string> runtime_state_entries() {
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(state_ / "runtime")) left.push_back(e.path().string());
    return left;
  }

  // Directories of this sandbox's step cgroups still present on the host.
  std::vector<std::string> step_cgroups() {
    std::vector<std::string> left;
    auto mounts = cgroup_mounts();
    EXPECT_TRUE(mounts);
    for (const auto& m : *mounts) {
      fs::path group = fs::path(m.path) / sandbox_->cgroup_group();
      if (!fs::exists(group)) continue;
      for (const auto& e : fs::directory_iterator(group))
        if (e.is_directory()) left.push_back(e.path().string());
    }
    return left;
  }

  // A worker killed with kill -9 in the middle of a long step, played by a
  // child process that owns the sandbox and runs the step: within 3 s of its
  // death no process of the step may be left, and the next owner of the
  // state directory removes what the step left on disk.
  void kill_the_owner_mid_step_then_start_again() {
    const OciRuntime runtime = runtime_;
    const OciOptions oci = oci_;
    const std::string marker = "sleep " + unique_number();
    sandbox_.reset();
    pid_t owner = ::fork();
    ASSERT_GE(owner, 0);
    if (owner == 0) {
      auto sandbox = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
      if (!sandbox) ::_exit(10);
      CancelToken cancel;
      (void)(*sandbox)->run(sh(marker), rootfs_.string(), nullptr, cancel);
      ::_exit(11);  // not reached: the test kills this process first
    }
    bool started = eventually([&] { return host_processes_with(marker).size() == 1; });
    ::kill(owner, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(owner, &status, 0), owner);
    ASSERT_TRUE(started) << "the step never started; the owner exited with " << describe_wait_status(status);
    ASSERT_TRUE(WIFSIGNALED(status)) << describe_wait_status(status);

    auto killed = std::chrono::steady_clock::now();
    while (!host_processes_with(marker).empty() && std::chrono::steady_clock::now() < killed + 3s)
      std::this_thread::sleep_for(5ms);
    RecordProperty("ms_until_the_step_was_gone",
                   static_cast<int>((std::chrono::steady_clock::now() - killed) / 1ms));
    EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{})
        << "the step outlived its owner by 3 s";

    auto again = RuncSandbox::create({.state_dir = state_.string(), .runtime = runtime, .oci = oci});
    ASSERT_TRUE(again) << again.error().to_string();
    sandbox_ = std::move(*again);
    EXPECT_EQ(sandbox_->leftovers().containers.size(), 1u) << sandbox_->leftovers().to_string();
    EXPECT_EQ(sandbox_->leftovers().bundles, 1) << sandbox_->leftovers().to_string();
    EXPECT_TRUE(runtime_containers().empty());
    EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
    EXPECT_TRUE(fs::is_empty(state_ / "bundles"));
    EXPECT_EQ(run_ok(sh("echo ok")), "ok\n");
  }

  std::optional<kiln::testing::TempDir> temp_;
  fs::path dir_, rootfs_, state_;
  OciRuntime runtime_ = OciRuntime::kRunc;
  OciOptions oci_;
  std::unique_ptr<RuncSandbox> sandbox_;
};

}  // namespace kiln::sandbox::testing
