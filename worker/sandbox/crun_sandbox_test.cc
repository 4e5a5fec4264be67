// RuncSandbox with crun instead of runc: the basics, the watchdog, cancel
// and limits (the fixture: testing/runc_sandbox_fixture.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "worker/sandbox/runc_sandbox.h"
#include "worker/sandbox/testing/runc_sandbox_fixture.h"

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::eventually;
using testing::host_processes_with;
using testing::read_file;
using testing::SandboxTest;
using testing::unique_number;
using testing::write_file;

class CrunSandboxTest : public SandboxTest {
 protected:
  void SetUp() override { set_up(OciRuntime::kCrun); }
};

TEST_F(CrunSandboxTest, BasicRunWorksWithCrun) {
  fs::create_directories(rootfs_ / "work");
  RunSpec spec =
      sh("echo hello from $(hostname); pwd; id -u; ls /sys/class/net; grep CapEff /proc/self/status");
  spec.cwd = "/work";
  spec.uid = 0;
  std::string out = run_ok(spec);
  EXPECT_EQ(out.substr(0, out.find("CapEff")), "hello from builder\n/work\n0\nlo\n");
  Status s = run(sh("exit 7"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "command exited with status 7");
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_THAT(runtime_state_entries(), ::testing::IsEmpty());
  EXPECT_THAT(step_cgroups(), ::testing::IsEmpty());
}

TEST_F(CrunSandboxTest, StepsDieWithTheProcessThatOwnsTheSandboxWithCrunToo) {
  kill_the_owner_mid_step_then_start_again();
}

TEST_F(CrunSandboxTest, CancelAndLimitsWorkWithCrun) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(500ms);
    cancel.cancel();
  });
  Status s = sandbox_->run(sh(marker), rootfs_.string(), nullptr, cancel);
  canceller.join();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled);
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});

  RunSpec spec = sh("head -c 200m /dev/zero | tail");
  spec.limits.memory_bytes = 32ull << 20;
  Status m = run(spec);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message(), "killed: memory limit of 32.0 MiB reached (command exited with status 137)");
}

}  // namespace
}  // namespace kiln::sandbox
