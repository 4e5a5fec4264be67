// RuncSandbox with --userns (OciOptions::user_namespace): the step's root is
// an unprivileged host uid, files keep their owners on disk through idmapped
// mounts, the rest of the sandbox still applies (the fixture:
// testing/runc_sandbox_fixture.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>
#include <string>

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

// --userns: steps in a user namespace, their root an unprivileged host uid.
class UsernsSandboxTest : public SandboxTest {
 protected:
  void SetUp() override { set_up(OciRuntime::kRunc, {.user_namespace = kDefaultUserNamespace}); }
};

// The host's view of a process: "Uid:\treal\teffective\t...".
std::string host_uid_line(const std::string& process_line) {
  std::string pid = process_line.substr(0, process_line.find(':'));
  std::istringstream status(read_file("/proc/" + pid + "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("Uid:")) return line;
  return "";
}

TEST_F(UsernsSandboxTest, TheStepsRootIsAnUnprivilegedHostUid) {
  const std::string marker = "sleep " + unique_number();
  CancelToken cancel;
  std::string out, uid_on_host;
  Status s = sandbox_->run(
      sh("cat /proc/self/uid_map; id -u; echo ready; exec " + marker), rootfs_.string(),
      [&](std::string_view chunk) {
        out += chunk;
        if (out.find("ready\n") == std::string::npos || !uid_on_host.empty()) return;
        std::vector<std::string> found;
        eventually([&] { return !(found = host_processes_with(marker)).empty(); });
        uid_on_host = found.empty() ? "not found" : host_uid_line(found[0]);
        cancel.cancel();
      },
      cancel);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCancelled) << s.error().to_string();
  std::istringstream lines(out);
  std::string inside, outside, count, id;
  lines >> inside >> outside >> count >> id;
  EXPECT_EQ(inside + " " + outside + " " + count, "0 1000000000 65536") << out;
  EXPECT_EQ(id, "0");                                                              // root inside...
  EXPECT_EQ(uid_on_host, "Uid:\t1000000000\t1000000000\t1000000000\t1000000000");  // ...nobody outside
}

TEST_F(UsernsSandboxTest, FilesKeepTheirOwnOwnersOnDiskThroughIdmappedMounts) {
  fs::path cache = dir_ / "cache";
  fs::create_directories(cache);
  write_file(rootfs_ / "owned-by-1000", "");
  RunSpec spec =
      sh("stat -c '%u %n' /bin/busybox /cache; touch /made; mkdir /cache/d && echo hi > /cache/d/f; "
         "chown 1000:1000 /owned-by-1000; cat /run/secret; id -u");
  spec.mounts = {{cache.string(), "/cache"}};
  spec.secrets = {{"/run/secret", "sesame\n"}};
  spec.uid = 0;
  EXPECT_EQ(run_ok(spec), "0 /bin/busybox\n0 /cache\nsesame\n0\n");
  auto owner = [](const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
  };
  EXPECT_EQ(owner(rootfs_ / "made"), "0:0");
  EXPECT_EQ(owner(cache / "d/f"), "0:0");
  EXPECT_EQ(owner(rootfs_ / "owned-by-1000"), "1000:1000");

  // A non-root step user, and its secret, map the same way.
  RunSpec user = sh("id -u; cat /run/secret; touch /tmp/mine");
  user.uid = 1000;
  user.gid = 1000;
  user.secrets = {{"/run/secret", "for 1000\n"}};
  EXPECT_EQ(run_ok(user), "1000\nfor 1000\n");
  EXPECT_EQ(owner(rootfs_ / "tmp/mine"), "1000:1000");
  // Nothing of the steps' views is left mounted.
  auto mounts = read_file("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(rootfs_.string() + " "), std::string::npos);
  EXPECT_TRUE(fs::is_empty(fs::path("/run/kiln") / sandbox_->cgroup_group().substr(5)));
}

TEST_F(UsernsSandboxTest, NetworkLimitsAndTheSeccompProfileStillApply) {
  EXPECT_EQ(run_ok(sh("ls /sys/class/net")), "lo\n");
  RunSpec host = sh("ls /sys/class/net | grep -c .");
  host.network = {"host"};
  EXPECT_NE(run_ok(host), "1\n");
  RunSpec hog = sh("head -c 200m /dev/zero | tail");
  hog.limits.memory_bytes = 32ull << 20;
  Status s = run(hog);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(), ::testing::StartsWith("killed: memory limit of 32.0 MiB reached"));
  Status nested = run(sh("unshare -U true"));
  EXPECT_FALSE(nested);
}

TEST_F(UsernsSandboxTest, StepsDieWithTheProcessThatOwnsTheSandboxInAUserNamespaceToo) {
  kill_the_owner_mid_step_then_start_again();
  EXPECT_EQ(sandbox_->leftovers().mounts, 1);  // the killed step's idmapped root filesystem
}

TEST_F(UsernsSandboxTest, AnOverlayfsRootIsRefusedSayingWhichStoresWork) {
  for (const char* d : {"lower", "upper", "work", "merged"}) fs::create_directories(dir_ / d);
  std::string options = "lowerdir=" + rootfs_.string() + ",upperdir=" + (dir_ / "upper").string() +
                        ",workdir=" + (dir_ / "work").string();
  auto mounted = run_command({"mount", "-t", "overlay", "overlay", "-o", options, (dir_ / "merged").string()},
                             {.timeout = 30s});
  ASSERT_TRUE(mounted && mounted->ok()) << (mounted ? mounted->output : mounted.error().to_string());
  rootfs_ = dir_ / "merged";
  Status s = run(sh("true"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kUnsupported);
  EXPECT_THAT(s.error().message(), ::testing::HasSubstr("cannot idmap overlayfs"));
  EXPECT_THAT(s.error().message(), ::testing::HasSubstr("use a btrfs:, xfs: or rsync: store"));
  (void)run_command({"umount", (dir_ / "merged").string()}, {.timeout = 30s});
}

TEST_F(UsernsSandboxTest, CrunRunsUserNamespacedStepsToo) {
  sandbox_.reset();
  set_up(OciRuntime::kCrun, {.user_namespace = kDefaultUserNamespace});
  EXPECT_EQ(run_ok(sh("cat /proc/self/uid_map | tr -s ' '; touch /by-crun")), " 0 1000000000 65536\n");
  struct stat st {};
  ASSERT_EQ(::stat((rootfs_ / "by-crun").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

}  // namespace
}  // namespace kiln::sandbox
