// RuncSandbox's end and cleanup, against runc: a worker killed mid-step
// (played by a child process) takes its steps along (the watchdog), the next
// owner of the state directory removes what a crashed one left, a second
// owner is refused, and destroying the sandbox removes its cgroups and
// unmounts its tmpfs mounts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/subprocess.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/oci_config.h"
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

TEST_F(SandboxTest, SecondOwnerOfAStateDirectoryIsRefused) {
  auto second = RuncSandbox::create({.state_dir = state_.string()});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kBusy);
  // The refused one must not have touched the owner's secrets tmpfs.
  RunSpec spec = sh("cat /s");
  spec.secrets = {{"/s", "still here"}};
  EXPECT_EQ(run_ok(spec), "still here");
}

TEST_F(SandboxTest, LeftoversOfACrashedWorkerAreRemovedAtStart) {
  // A worker that dies mid-step, played by a child process: it owns the
  // state directory, has a `kiln-` container running `sleep` (detached, with
  // its cgroup), a bundle and a secret, and exits without cleaning up.
  const std::string marker = "sleep " + unique_number();
  const std::string id = "kiln-leftover" + unique_number();
  fs::path bundle = state_ / "bundles" / id;
  std::string group = sandbox_->cgroup_group();
  std::vector<std::string> start_command;
  sandbox_.reset();
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    auto crashed = RuncSandbox::create({.state_dir = state_.string()});
    if (!crashed) ::_exit(10);
    fs::create_directories(bundle);
    write_file(bundle / "hosts", hosts_file_content("builder"));
    OciPaths paths{.rootfs = fs::canonical(rootfs_).string(),
                   .hosts_file = (bundle / "hosts").string(),
                   .secret_files = {},
                   .cgroups_path = "/" + group + "/" + id + "/ctr"};
    auto config = make_oci_config(sh(marker), paths, {});
    if (!config) ::_exit(11);
    write_file(bundle / "config.json", config->dump());
    fs::create_directories(state_ / "secrets" / id);
    write_file(state_ / "secrets" / id / "0", "stale secret");
    auto started =
        Subprocess::spawn((*crashed)->runtime_command({"run", "--detach", "--bundle", bundle.string(), id}),
                          {.group = ProcessGroup::kNew});
    if (!started || started->wait() != 0) ::_exit(12);
    // Its watchdog dies first (as when both are killed at once), so the
    // container is left running for the next owner to find.
    ::kill((*crashed)->watchdog_pid(), SIGKILL);
    ::_exit(0);  // no destructors: the tmpfs stays mounted, the container runs
  }
  int status = 0;
  ASSERT_EQ(::waitpid(worker, &status, 0), worker);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // `run --detach` returns once the container started, maybe before its exec.
  ASSERT_TRUE(eventually([&] { return host_processes_with(marker).size() == 1; }));

  auto again = RuncSandbox::create({.state_dir = state_.string()});
  ASSERT_TRUE(again) << again.error().to_string();
  sandbox_ = std::move(*again);
  const LeftoverReport& report = sandbox_->leftovers();
  EXPECT_EQ(report.containers, std::vector<std::string>{id});
  EXPECT_EQ(report.bundles, 1);
  EXPECT_EQ(report.secret_dirs, 1);
  EXPECT_NE(report.to_string().find(id), std::string::npos) << report.to_string();
  EXPECT_EQ(host_processes_with(marker), std::vector<std::string>{});
  EXPECT_TRUE(runtime_containers().empty());
  EXPECT_EQ(step_cgroups(), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(bundle));
  // And the sandbox works afterwards.
  EXPECT_EQ(run_ok(sh("echo ok")), "ok\n");
}

TEST_F(SandboxTest, StepsDieWithTheProcessThatOwnsTheSandbox) {
  kill_the_owner_mid_step_then_start_again();
}

TEST_F(SandboxTest, DestroyingTheSandboxRemovesItsCgroupGroup) {
  run_ok(sh("true"));
  auto mounts = cgroup_mounts();
  ASSERT_TRUE(mounts);
  std::string group = sandbox_->cgroup_group();
  sandbox_.reset();
  for (const auto& m : *mounts) EXPECT_FALSE(fs::exists(fs::path(m.path) / group)) << m.path;
}

TEST_F(SandboxTest, BundlesAndTheRuntimesStateLiveOnATmpfsWhileTheSandboxDoes) {
  auto is_tmpfs = [](const fs::path& p) {
    struct statfs st;
    return ::statfs(p.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
  };
  for (const char* dir : {"bundles", "runtime", "secrets"}) EXPECT_TRUE(is_tmpfs(state_ / dir)) << dir;
  EXPECT_EQ(run_ok(sh("echo ok")), "ok\n");
  EXPECT_TRUE(fs::is_empty(state_ / "bundles"));
  EXPECT_TRUE(fs::is_empty(state_ / "runtime"));
  sandbox_.reset();
  for (const char* dir : {"bundles", "runtime", "secrets"}) EXPECT_FALSE(is_tmpfs(state_ / dir)) << dir;
}

TEST_F(SandboxTest, UnknownRuntimeNameIsRejected) {
  auto r = parse_oci_runtime("kata");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("use \"runc\""), std::string::npos);
  EXPECT_EQ(*parse_oci_runtime("crun"), OciRuntime::kCrun);
}

}  // namespace
}  // namespace kiln::sandbox
