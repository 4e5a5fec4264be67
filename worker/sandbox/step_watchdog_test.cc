// StepWatchdog on its own, with a real cgroup and real processes: after its
// owner dies it kills what enters the watched cgroup for keep_sweeping (a
// daemon such as dockerd may still be starting a step for the dead owner),
// and without keep_sweeping it stops once a sweep finds nothing. The
// sandboxes' own tests (runc_sandbox_leftovers_test.cc, the docker e2e test)
// kill owners mid-step. Needs root (cgroups).
#include "worker/sandbox/step_watchdog.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "tests/support/child.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/testing/sandbox_test_util.h"

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StepWatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mounts = cgroup_mounts();
    ASSERT_TRUE(mounts) << mounts.error().to_string();
    // One hierarchy is enough: the pids controller's (v1), else the unified tree.
    for (const auto& m : *mounts)
      if (!m.v2 && std::find(m.controllers.begin(), m.controllers.end(), "pids") != m.controllers.end())
        cgroup_ = m.path + "/kiln-watchdog-test-" + testing::unique_number();
    for (const auto& m : *mounts)
      if (cgroup_.empty() && m.v2) cgroup_ = m.path + "/kiln-watchdog-test-" + testing::unique_number();
    ASSERT_FALSE(cgroup_.empty()) << "no cgroup hierarchy mounted";
    fs::create_directories(cgroup_);
  }

  void TearDown() override {
    if (step_ > 0) {
      ::kill(step_, SIGKILL);
      ::waitpid(step_, nullptr, 0);
    }
    // The watchdog holds the lock until it exits: wait for it before removing its cgroup.
    int lock = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock >= 0) {
      EXPECT_TRUE(kiln::testing::eventually([&] { return ::flock(lock, LOCK_EX | LOCK_NB) == 0; }, 30s));
      ::close(lock);
    }
    ::rmdir(cgroup_.c_str());
  }

  // Forks an owner that starts a watchdog over the cgroup and dies at once
  // (_exit: no orderly stop); returns when it is dead.
  void start_a_watchdog_whose_owner_dies(std::chrono::milliseconds keep_sweeping) {
    pid_t owner = ::fork();
    ASSERT_GE(owner, 0);
    if (owner == 0) {
      auto watchdog = StepWatchdog::start({.cgroup_dirs = {cgroup_},
                                           .runtime_root = "",
                                           .lock_path = lock_path_,
                                           .keep_sweeping = keep_sweeping});
      if (!watchdog) ::_exit(1);
      ::_exit(0);  // the watchdog's destructor does not run: as a kill -9
    }
    int status = 0;
    ASSERT_EQ(::waitpid(owner, &status, 0), owner);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the owner could not start its watchdog";
  }

  // A `sleep` moved into the watched cgroup, as a step a daemon starts late.
  void start_a_late_step() {
    step_ = ::fork();
    ASSERT_GE(step_, 0);
    if (step_ == 0) {
      ::execl("/bin/sleep", "sleep", "600", nullptr);
      ::_exit(127);
    }
    testing::write_text_file(cgroup_ + "/cgroup.procs", std::to_string(step_));
  }

  bool step_dies_within(std::chrono::milliseconds limit) {
    int status = 0;
    bool died = kiln::testing::eventually([&] { return ::waitpid(step_, &status, WNOHANG) == step_; }, limit);
    if (died) step_ = -1;
    return died;
  }

  kiln::testing::TempDir dir_{"kiln-watchdog-test"};
  std::string lock_path_ = dir_.path() + "/watchdog.lock";
  std::string cgroup_;
  pid_t step_ = -1;
};

TEST_F(StepWatchdogTest, AfterItsOwnerDiedItKillsAStepThatStartsLateWhileItKeepsSweeping) {
  start_a_watchdog_whose_owner_dies(5s);
  // Well after a sweep without keep_sweeping would have ended (two quiet rounds, ~20 ms).
  std::this_thread::sleep_for(300ms);
  start_a_late_step();
  EXPECT_TRUE(step_dies_within(4s)) << "a step that entered the cgroup 0.3 s after the owner died survived";
}

TEST_F(StepWatchdogTest, WithoutKeepSweepingALateStepIsLeftAlone) {
  // The other side of the same: what keep_sweeping is for (RuncSandbox's
  // case, whose late runtime processes are found by --root instead).
  start_a_watchdog_whose_owner_dies(0s);
  int lock = ::open(lock_path_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  EXPECT_TRUE(kiln::testing::eventually([&] { return ::flock(lock, LOCK_EX | LOCK_NB) == 0; }, 30s))
      << "the watchdog did not finish";
  ::close(lock);
  start_a_late_step();
  EXPECT_FALSE(step_dies_within(1s));
}

}  // namespace
}  // namespace kiln::sandbox
