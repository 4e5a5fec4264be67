// DockerSandbox against a real, private dockerd: a step's processes are in
// the sandbox's own cgroup parent (what its watchdog sweeps), the cgroup goes
// with the sandbox, one state directory has one owner at a time, and secret
// values live on the sandbox's tmpfs; (network host) and the limits reach the
// step. The
// kill -9 tests are end to end: tests/builder/docker_build_e2e_test.cc and
// tests/worker/worker_process_e2e_test.cc.
#include "worker/docker/docker_sandbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "worker/docker/testing/docker_fixture.h"
#include "worker/sandbox/cgroup.h"
#include "worker/sandbox/private_tmpfs.h"

namespace kiln::docker {
namespace {

using ::testing::HasSubstr;
using testing::kBusybox;

constexpr long kTmpfsMagic = 0x01021994;

class DockerSandboxTest : public testing::DockerFixture {
 protected:
  Result<std::unique_ptr<DockerSandbox>> create() {
    return DockerSandbox::create(
        {.host = dockerd_.host(), .prefix = "kiln-sbx", .state_dir = tmp_.path() + "/sandbox"});
  }
};

TEST_F(DockerSandboxTest, AStepRunsInTheSandboxsCgroupParentWhichGoesWithTheSandbox) {
  auto sandbox = create();
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  const std::string parent = (*sandbox)->cgroup_parent();
  EXPECT_THAT(parent,
              ::testing::MatchesRegex("/kiln/docker-[0-9a-f]{12}"));  // the fixture's dockerd: cgroupfs
  sandbox::RunSpec spec;
  spec.argv = {"/bin/sh", "-c", "cat /proc/self/cgroup"};
  spec.env = {"PATH=/usr/bin:/bin"};
  std::string output;
  CancelToken cancel;
  store::Workspace ws{.dir = tmp_.path() + "/step-1", .base_image = kBusybox, .container = "kiln-sbx-step-1"};
  ASSERT_TRUE((*sandbox)->run_in(
      spec, ws, [&](std::string_view b) { output.append(b); }, cancel));
  EXPECT_THAT(output, HasSubstr(":memory:" + parent + "/"));
  EXPECT_THAT(output, HasSubstr(":pids:" + parent + "/"));
  ASSERT_TRUE(client_->remove_container("kiln-sbx-step-1"));

  sandbox->reset();
  auto mounts = sandbox::cgroup_mounts();
  ASSERT_TRUE(mounts);
  for (const auto& m : *mounts) EXPECT_FALSE(std::filesystem::exists(m.path + parent)) << m.path;
}

TEST_F(DockerSandboxTest, ASecondOwnerOfTheStateDirectoryIsRefusedUntilTheFirstIsGone) {
  auto first = create();
  ASSERT_TRUE(first) << first.error().to_string();
  auto second = create();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kBusy);
  EXPECT_THAT(second.error().message(), HasSubstr("is in use by another kiln process"));
  first->reset();
  auto third = create();
  EXPECT_TRUE(third) << third.error().to_string();
}

// Secret values live on a tmpfs of the sandbox's own while their step runs
// (never on a disk), reach the step read-only, and are not in its commit.
// What the commit keeps is the empty mount point dockerd's runtime made for
// a target the image lacks (docs/store.md, "Secrets and mount points").
TEST_F(DockerSandboxTest, SecretsLiveOnTheSandboxsTmpfsAndOnlyTheirEmptyMountPointIsCommitted) {
  const std::string secrets = tmp_.path() + "/secrets";
  auto sandbox = DockerSandbox::create({.host = dockerd_.host(),
                                        .prefix = "kiln-sbx",
                                        .secrets_dir = secrets,
                                        .state_dir = tmp_.path() + "/sandbox"});
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  struct statfs fs {};
  ASSERT_EQ(::statfs(secrets.c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, kTmpfsMagic);
  EXPECT_TRUE(sandbox::is_mount_point(secrets));
  struct stat st {};
  ASSERT_EQ(::stat(secrets.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  sandbox::RunSpec spec;
  spec.uid = 1000;
  spec.gid = 1000;
  spec.argv = {"/bin/sh", "-c",
               "cat /run/secrets/token; echo; touch /run/secrets/token 2>/dev/null || echo ro; "
               "grep ' /run/secrets/token ' /proc/self/mounts | cut -d' ' -f3"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.secrets = {{"/run/secrets/token", "s3cr3t-value"}};
  std::string output;
  CancelToken cancel;
  store::Workspace ws{.dir = tmp_.path() + "/step-s", .base_image = kBusybox, .container = "kiln-sbx-step-s"};
  ASSERT_TRUE((*sandbox)->run_in(
      spec, ws, [&](std::string_view b) { output.append(b); }, cancel));
  EXPECT_EQ(output, "s3cr3t-value\nro\ntmpfs\n");   // the bind's source is on the tmpfs
  EXPECT_TRUE(std::filesystem::is_empty(secrets));  // gone with the step

  ASSERT_TRUE(client_->commit("kiln-sbx-step-s", {.repo = "kiln-sbx", .tag = "secret"}));
  auto id = client_->create_container(
      {.image = "kiln-sbx:secret", .entrypoint = std::vector<std::string>{"/bin/true"}}, "");
  ASSERT_TRUE(id) << id.error().to_string();
  // The busybox image has no /run: dockerd's runtime made /run/secrets and an
  // empty file at the target, and the commit kept both.
  auto dir = client_->stat_path(*id, "/run/secrets");
  ASSERT_TRUE(dir) << dir.error().to_string();
  EXPECT_TRUE(dir->is_dir());
  auto target = client_->stat_path(*id, "/run/secrets/token");
  ASSERT_TRUE(target) << target.error().to_string();
  EXPECT_FALSE(target->is_dir());
  EXPECT_FALSE(target->is_symlink());
  EXPECT_EQ(target->size, 0);
  // Nowhere in the image's filesystem is the value.
  std::string tar;
  ASSERT_TRUE(client_->get_archive(
      *id, "/",
      [&](std::string_view b) -> Status {
        tar.append(b);
        return {};
      },
      nullptr));
  EXPECT_NE(tar.find("bin/busybox"), std::string::npos);  // the whole tree came
  EXPECT_EQ(tar.find("s3cr3t-value"), std::string::npos);

  // The tmpfs goes with the sandbox, and with it anything a step left there.
  sandbox->reset();
  EXPECT_FALSE(sandbox::is_mount_point(secrets));
}

// Runs `script` under /bin/sh as a step of `sandbox` in container `name`; its output.
Result<std::string> run_script(DockerSandbox& sandbox, const std::string& tmp, const std::string& name,
                               const std::string& script, sandbox::RunSpec spec = {}) {
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  std::string output;
  CancelToken cancel;
  store::Workspace ws{.dir = tmp + "/" + name, .base_image = kBusybox, .container = name};
  KILN_RETURN_IF_ERROR(sandbox.run_in(
      spec, ws, [&](std::string_view b) { output.append(b); }, cancel));
  return output;
}

// (network host) is the host's network namespace; without it a step has
// its own, with loopback only.
TEST_F(DockerSandboxTest, AStepHasNoNetworkUnlessItAsksForTheHostsOne) {
  auto sandbox = create();
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  std::error_code ec;
  const std::string host_ns = std::filesystem::read_symlink("/proc/self/ns/net", ec).string();
  ASSERT_FALSE(ec) << ec.message();
  std::string interfaces;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net")) {
    if (e.path().filename() != "lo") interfaces = e.path().filename();
  }
  ASSERT_FALSE(interfaces.empty()) << "the host has no interface but lo";
  const std::string script = "readlink /proc/self/ns/net; ls /sys/class/net | tr '\\n' ' '";

  auto none = run_script(**sandbox, tmp_.path(), "kiln-sbx-step-none", script);
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_THAT(*none, ::testing::StartsWith("net:["));
  EXPECT_THAT(*none, ::testing::Not(HasSubstr(host_ns)));
  EXPECT_THAT(*none, ::testing::EndsWith("\nlo "));

  sandbox::RunSpec host;
  host.network = {"host"};
  auto on_host = run_script(**sandbox, tmp_.path(), "kiln-sbx-step-host", script, host);
  ASSERT_TRUE(on_host) << on_host.error().to_string();
  EXPECT_THAT(*on_host, ::testing::StartsWith(host_ns + "\n"));
  EXPECT_THAT(*on_host, HasSubstr(interfaces + " "));
}

// The RunSpec's limits reach the step's cgroups (v1 hierarchies here,
// mounted in the container): memory, pids and cpu.
TEST_F(DockerSandboxTest, TheStepsMemoryPidsAndCpuLimitsAreItsCgroupsLimits) {
  auto sandbox = create();
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  auto unlimited = run_script(**sandbox, tmp_.path(), "kiln-sbx-step-free",
                              "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  ASSERT_TRUE(unlimited) << unlimited.error().to_string();
  EXPECT_EQ(*unlimited, "max\n-1\n");

  sandbox::RunSpec spec;
  spec.limits.memory_bytes = 48u << 20;
  spec.limits.pids = 24;
  spec.limits.cpu_millicores = 500;
  auto limited = run_script(**sandbox, tmp_.path(), "kiln-sbx-step-limited",
                            "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes pids/pids.max "
                            "cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us",
                            spec);
  ASSERT_TRUE(limited) << limited.error().to_string();
  EXPECT_EQ(*limited, fmt::format("{}\n24\n50000\n100000\n", 48u << 20));
}

}  // namespace
}  // namespace kiln::docker
