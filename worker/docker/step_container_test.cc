// run_step_container against a real, private dockerd: what a build step
// gets, how it fails, and that its container is left for the commit.
#include "worker/docker/step_container.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "worker/docker/testing/docker_fixture.h"

namespace kiln::docker {
namespace {

using ::testing::HasSubstr;
using testing::kBusybox;

class StepContainerTest : public testing::DockerFixture {
 protected:
  void SetUp() override {
    DockerFixture::SetUp();
    secrets_dir_ = tmp_.path() + "/secrets";
    std::filesystem::create_directories(secrets_dir_);
  }

  // Runs `script` under /bin/sh in container `name`; the output in `output_`.
  Status run(const std::string& name, const std::string& script, sandbox::RunSpec spec = {},
             CancelToken* cancel = nullptr) {
    spec.argv = {"/bin/sh", "-c", script};
    if (spec.env.empty()) spec.env = {"PATH=/usr/bin:/bin"};
    CancelToken own;
    StepContainer step{kBusybox, name, {{"kiln.store", "kiln-t"}}, secrets_dir_};
    return run_step_container(
        *client_, step, spec, [this](std::string_view bytes) { output_.append(bytes); },
        cancel != nullptr ? *cancel : own);
  }

  std::string secrets_dir_;
  std::string output_;
};

TEST_F(StepContainerTest, RunsWithTheSpecsUserEnvironmentAndDirectoryAndLeavesTheContainerForTheCommit) {
  sandbox::RunSpec spec;
  spec.uid = 1000;
  spec.gid = 100;
  spec.cwd = "/tmp";
  spec.hostname = "builder";
  spec.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
  ASSERT_TRUE(run("kiln-t-step-1",
                  "id -u; id -g; pwd; hostname; echo $GREETING; ls /sys/class/net; echo made > f", spec));
  EXPECT_EQ(output_, "1000\n100\n/tmp\nbuilder\nhi\nlo\n");
  auto info = client_->inspect_container("kiln-t-step-1");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->status, "exited");
  EXPECT_EQ(info->labels.at("kiln.store"), "kiln-t");
  ASSERT_TRUE(client_->commit("kiln-t-step-1", {.repo = "kiln-t", .tag = "one"}));
  ASSERT_TRUE(client_->remove_container("kiln-t-step-1"));
  // The change is in the committed image; the base is untouched.
  output_.clear();
  sandbox::RunSpec next;
  next.cwd = "/tmp";
  ASSERT_TRUE(run("kiln-t-step-2", "cat f 2>/dev/null || echo absent", next));
  EXPECT_EQ(output_, "absent\n");
  output_.clear();
  StepContainer from_commit{"kiln-t:one", "kiln-t-step-3", {}, secrets_dir_};
  next.argv = {"/bin/cat", "/tmp/f"};
  CancelToken cancel;
  ASSERT_TRUE(run_step_container(
      *client_, from_commit, next, [this](std::string_view b) { output_.append(b); }, cancel));
  EXPECT_EQ(output_, "made\n");
}

TEST_F(StepContainerTest, AFailingCommandReportsItsStatusAndItsOutputArrives) {
  auto s = run("kiln-t-fail", "echo out; echo err >&2; exit 3");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_EQ(s.error().message(), "command exited with status 3");
  EXPECT_THAT(output_, HasSubstr("out\n"));
  EXPECT_THAT(output_, HasSubstr("err\n"));

  // A child: the container's init (the outer shell, which must not exec it) ignores SIGKILL from inside.
  auto killed = run("kiln-t-killed", "sh -c 'kill -9 $$'; exit $?");
  ASSERT_FALSE(killed);
  EXPECT_EQ(killed.error().message(), "command exited with status 137 (128 + 9: killed by signal 9)");

  sandbox::RunSpec missing;
  missing.argv = {"/no/such/program"};
  StepContainer step{kBusybox, "kiln-t-nostart", {}, secrets_dir_};
  CancelToken cancel;
  auto not_started = run_step_container(
      *client_, step, missing, [](std::string_view) {}, cancel);
  ASSERT_FALSE(not_started);
  EXPECT_EQ(not_started.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(not_started.error().message(), HasSubstr("could not start the command /no/such/program: "));
  EXPECT_THAT(not_started.error().message(), HasSubstr("no such file or directory"));
}

TEST_F(StepContainerTest, TimeoutAndCancelKillTheContainer) {
  sandbox::RunSpec spec;
  spec.timeout = std::chrono::seconds(1);
  auto timed_out = run("kiln-t-slow", "echo started; sleep 100", spec);
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().kind(), ErrorKind::kTimeout);
  EXPECT_THAT(timed_out.error().message(), HasSubstr("timed out after 1 s"));
  EXPECT_FALSE(client_->inspect_container("kiln-t-slow")->running);
  EXPECT_EQ(output_, "started\n");

  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel.cancel();
  });
  auto cancelled = run("kiln-t-cancelled", "sleep 100", {}, &cancel);
  canceller.join();
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().kind(), ErrorKind::kCancelled);
  EXPECT_FALSE(client_->inspect_container("kiln-t-cancelled")->running);
}

TEST_F(StepContainerTest, TheMemoryLimitIsNamedWhenItKillsTheStep) {
  sandbox::RunSpec spec;
  spec.limits.memory_bytes = 16u << 20;
  spec.limits.pids = 20;
  auto s = run("kiln-t-oom", "cat /sys/fs/cgroup/pids/pids.max; dd if=/dev/zero of=/dev/null bs=64M count=1",
               spec);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(),
              HasSubstr("killed: memory limit of 16.0 MiB reached (command exited with status 137)"));
  EXPECT_THAT(output_, HasSubstr("20\n"));
}

TEST_F(StepContainerTest, SecretsAreReadableDuringTheStepAndNeverCommitted) {
  sandbox::RunSpec spec;
  spec.uid = 1000;
  spec.gid = 1000;
  spec.secrets = {{"/run/secrets/token", "s3cr3t-value"}};
  ASSERT_TRUE(run("kiln-t-secret",
                  "cat /run/secrets/token; echo; touch /run/secrets/token 2>/dev/null || echo ro", spec));
  EXPECT_EQ(output_, "s3cr3t-value\nro\n");
  EXPECT_TRUE(std::filesystem::is_empty(secrets_dir_));  // the host file is gone
  ASSERT_TRUE(client_->commit("kiln-t-secret", {.repo = "kiln-t", .tag = "secret"}));
  auto id = client_->create_container(
      {.image = "kiln-t:secret", .entrypoint = std::vector<std::string>{"/bin/true"}}, "");
  ASSERT_TRUE(id);
  std::string tar;
  auto got = client_->get_archive(
      *id, "/run/secrets",
      [&](std::string_view b) -> Status {
        tar.append(b);
        return {};
      },
      nullptr);
  // The value is not in the image; the mount points dockerd's runtime made
  // (the image has no /run) are: /run/secrets and an empty file (docs/store.md).
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(tar.find("s3cr3t-value"), std::string::npos);
  EXPECT_EQ(testing::read_tar(tar),
            (std::map<std::string, std::string>{{"secrets/", ""}, {"secrets/token", ""}}));
}

TEST_F(StepContainerTest, AThrowingSinkKillsTheStep) {
  sandbox::RunSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo boom; sleep 100"};
  StepContainer step{kBusybox, "kiln-t-sink", {}, secrets_dir_};
  CancelToken cancel;
  auto s = run_step_container(
      *client_, step, spec, [](std::string_view) { throw std::runtime_error("disk full"); }, cancel);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kInternal);
  EXPECT_THAT(s.error().message(), HasSubstr("disk full"));
  EXPECT_FALSE(client_->inspect_container("kiln-t-sink")->running);
}

}  // namespace
}  // namespace kiln::docker
