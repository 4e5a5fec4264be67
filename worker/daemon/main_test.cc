// `kiln-worker` as a process against an in-test scheduler (FakeScheduler):
// exit statuses, SIGTERM with a running job, and flags reaching the register.
// The worker runs with --fake-build, so no root, store or runtime is needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "common/ids/temp_tree_for_test.h"
#include "tests/support/child.h"
#include "worker/daemon/testing/fake_scheduler.h"

namespace kiln::worker {
namespace {

using testing::FakeScheduler;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class KilnWorkerProcessTest : public ::testing::Test {
 protected:
  std::unique_ptr<kiln::testing::Child> start(std::vector<std::string> extra) {
    std::vector<std::string> argv = {KILN_WORKER_BINARY, "--name", "w1", "--scheduler", scheduler_.address()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<kiln::testing::Child>(argv, tree_.host("worker.log"));
  }

  ids::TempTree tree_;
  FakeScheduler scheduler_;
};

TEST_F(KilnWorkerProcessTest, SigtermCancelsTheRunningJobReportsItAndExitsZero) {
  auto worker = start({"--pool", "gpu", "--capacity", "3", "--label", "arch=x86_64", "--fake-build=600"});
  proto::Register reg = scheduler_.accept_registration(200);
  EXPECT_EQ(scheduler_.last_sender, "w1");
  EXPECT_EQ(reg.name, "w1");
  EXPECT_EQ(reg.pool, "gpu");
  EXPECT_EQ(reg.capacity, 3u);
  EXPECT_EQ(reg.labels, std::vector<std::string>{"arch=x86_64"});

  proto::Assign assign;
  assign.job_id = "j1";
  assign.attempt = 1;
  assign.job.spec = "((from busybox))";
  scheduler_.send(assign);
  scheduler_.expect_event(proto::Type::kJobStarted);
  worker->signal(SIGTERM);
  auto done = scheduler_.expect_event(proto::Type::kJobDone);
  EXPECT_EQ(done.job_id, "j1");
  EXPECT_EQ(done.outcome, "interrupted");
  EXPECT_THAT(done.error, HasSubstr("shutting down"));
  EXPECT_EQ(worker->wait(20s), 0) << worker->log();
}

TEST_F(KilnWorkerProcessTest, RefusedRegistrationExitsTwo) {
  auto worker = start({"--fake-build"});
  scheduler_.expect_message<proto::Register>();
  scheduler_.send(
      proto::ErrorReply{.kind = "failed precondition",
                        .message = "protocol version 1 is not supported: this scheduler speaks version 2"});
  EXPECT_EQ(worker->wait(20s), 2);
  EXPECT_THAT(worker->log(), HasSubstr("protocol version"));
}

TEST_F(KilnWorkerProcessTest, BadFlagsExitTwoSayingWhy) {
  auto bad_label = start({"--fake-build", "--label", "novalue"});
  EXPECT_EQ(bad_label->wait(20s), 2);
  EXPECT_THAT(bad_label->log(), HasSubstr("KEY=VALUE"));
  auto bad_size = start({"--fake-build", "--prune-below-bytes", "lots"});
  EXPECT_EQ(bad_size->wait(20s), 2);
  EXPECT_THAT(bad_size->log(), HasSubstr("--prune-below-bytes"));
}

}  // namespace
}  // namespace kiln::worker
