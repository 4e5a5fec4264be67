// Job logs through the whole farm, with the real kiln-scheduler and a real
// kiln-worker running steps with runc (needs root): a scheduler killed with
// SIGKILL in the middle of a job that prints several MiB loses none of the
// log, and a step that prints 4 GiB leaves the worker small and the stored
// log capped and marked (docs/worker.md, "Job logs and memory").
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "tests/farm/raw_peers.h"
#include "tests/support/process.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// The peak resident memory of a process (VmHWM, bytes); 0 if unreadable.
std::uint64_t peak_rss_bytes(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  }
  return 0;
}

class FarmLogs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    image_dir_ = new TempDir();
    auto r = run_process({source_dir() + "/scripts/make-base-image", image_dir_->path() + "/busybox"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete image_dir_;
    image_dir_ = nullptr;
  }

  void start_scheduler(std::vector<std::string> args = {}) {
    scheduler_ = std::make_unique<SchedulerProcess>(dir_.path() + "/scheduler", std::move(args));
    client_ = scheduler_->client();
  }
  Child& start_worker(const std::string& name) {
    worker_ = std::make_unique<Child>(
        std::vector<std::string>{KILN_WORKER_BINARY, "--scheduler", scheduler_->worker_endpoint(), "--name",
                                 name, "--capacity", "1", "--state-dir", dir_.path() + "/" + name,
                                 "--image-alias", "busybox=oci:" + image_dir_->path() + "/busybox:latest"},
        dir_.path() + "/" + name + ".log");
    EXPECT_TRUE(eventually([&] {
      auto list = client_->call<proto::Workers>(proto::ListWorkers{}, 2s);
      if (!list) return false;
      for (const auto& w : list->workers)
        if (w.name == name && w.connected) return true;
      return false;
    })) << name
        << " did not register:\n"
        << worker_->log();
    return *worker_;
  }
  std::string submit(const std::string& spec) {
    auto r = client_->call<proto::Submitted>(
        proto::Submit{.job = {.spec = spec, .spec_name = "logs.spec", .timeout_seconds = 3600}});
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? r->job_id : "";
  }
  proto::JobInfo wait_for(const std::string& id, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = client_->call<proto::Job>(proto::GetStatus{.job_id = id, .wait_ms = 5000}, 10s);
      if (r && (r->job.state == "succeeded" || r->job.state == "failed" || r->job.state == "cancelled"))
        return r->job;
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return {};
  }
  // The whole stored log, read 1 MiB at a time.
  std::string stored_log(const std::string& id) {
    std::string log;
    for (;;) {
      auto r = client_->call<proto::Log>(
          proto::ReadLog{.job_id = id, .offset = log.size(), .max_bytes = 1 << 20}, 10s);
      EXPECT_TRUE(r) << r.error().to_string();
      if (!r || r->data.empty()) return log;
      log += r->data;
    }
  }
  void TearDown() override {
    if (worker_ && worker_->running()) worker_->stop(10s);
  }

  static TempDir* image_dir_;
  TempDir dir_;
  std::unique_ptr<SchedulerProcess> scheduler_;
  std::unique_ptr<proto::Client> client_;
  std::unique_ptr<Child> worker_;
};

TempDir* FarmLogs::image_dir_ = nullptr;

TEST_F(FarmLogs, AKillNineOfTheSchedulerMidJobLosesNoneOfItsLog) {
  start_scheduler({"--lease-ms", "3000", "--heartbeat-ms", "200"});
  start_worker("w1");
  // About 4.3 MB over 8 s or more: 80 blocks of 1,200 numbered lines, 0.1 s apart.
  constexpr int kBlocks = 80;
  constexpr int kLines = 1200;
  std::string expected;
  for (int i = 0; i < kBlocks; ++i) {
    const std::string line = fmt::format("line-{}-abcdefghijklmnopqrstuvwxyz0123456789\n", i);
    for (int n = 0; n < kLines; ++n) expected += line;
  }
  const std::string id =
      submit(fmt::format("((from busybox) (run (shell \"i=0; while [ $i -lt {} ]; do yes "
                         "line-$i-abcdefghijklmnopqrstuvwxyz0123456789 "
                         "| head -n {}; i=$((i+1)); sleep 0.1; done\")))",
                         kBlocks, kLines));

  // Once a quarter of it is stored, kill the scheduler, leave it dead for a
  // while (the step goes on printing, then waits), and start it again.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = client_->call<proto::Job>(proto::GetStatus{.job_id = id}, 2s);
        return r && r->job.log_bytes > expected.size() / 4;
      },
      120s))
      << worker_->log();
  scheduler_->child().kill_now();
  std::this_thread::sleep_for(1500ms);
  scheduler_->restart();
  client_ = scheduler_->client();

  auto job = wait_for(id, 300s);
  ASSERT_EQ(job.state, "succeeded") << job.error << "\n" << worker_->log();
  EXPECT_EQ(job.attempts.size(), 1u);  // reclaimed, not run again
  const std::string log = stored_log(id);
  // Every byte the step printed, once, in order, and nothing marked missing.
  const std::size_t at = log.find(expected);
  EXPECT_NE(at, std::string::npos) << "the step's output is not in the stored log whole (" << log.size()
                                   << " bytes stored, " << expected.size() << " printed)";
  if (at != std::string::npos) {
    EXPECT_EQ(log.find(expected, at + 1), std::string::npos);
  }
  EXPECT_THAT(log, Not(HasSubstr("[kiln")));
}

TEST_F(FarmLogs, AStepPrintingFourGiBLeavesTheWorkerSmallAndTheLogCappedAndMarked) {
  start_scheduler();
  Child& worker = start_worker("w1");
  const std::string id = submit("((from busybox) (run (shell \"yes | head -c 4294967296\")))");
  // Minutes on a slow disk (the step's log file in the store is written
  // whole); no bound on the speed is asserted.
  auto job = wait_for(id, 1800s);
  const std::uint64_t peak = peak_rss_bytes(worker.pid());
  EXPECT_EQ(job.state, "succeeded") << job.error << "\n" << worker.log();
  ASSERT_GT(peak, 0u);
  EXPECT_LT(peak, 100u << 20) << "the worker's peak RSS";
  RecordProperty("worker_peak_rss_bytes", std::to_string(peak));
  std::cout << "worker peak RSS (VmHWM): " << peak / (1 << 20) << " MiB\n";
  const std::string log = stored_log(id);
  EXPECT_LE(log.size(), (16u << 20) + 200);
  EXPECT_GE(log.size(), 16u << 20);
  EXPECT_THAT(log.substr(log.size() - 200), HasSubstr("[kiln: log truncated: over 16777216 bytes]"));
}

}  // namespace
}  // namespace kiln::testing
