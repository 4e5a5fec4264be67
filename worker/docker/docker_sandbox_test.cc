// DockerSandbox against a real, private dockerd: a step's processes are in
// the sandbox's own cgroup parent (what its watchdog sweeps), the cgroup goes
// with the sandbox, and one state directory has one owner at a time. The
// kill -9 tests are end to end: tests/builder/docker_build_e2e_test.cc and
// tests/worker/worker_process_e2e_test.cc.
#include "worker/docker/docker_sandbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "worker/docker/testing/docker_fixture.h"
#include "worker/sandbox/cgroup.h"

namespace kiln::docker {
namespace {

using ::testing::HasSubstr;
using testing::kBusybox;

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

}  // namespace
}  // namespace kiln::docker
