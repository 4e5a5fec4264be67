// `kiln-worker --fake-build[=SECONDS]`: a JobExecutor that runs no builds,
// for benchmarks of the scheduler and farm tests (docs/worker.md, "Fake
// builds"). Each job waits SECONDS (a timer of the event loop; with 0 it
// completes within start(), so a fake worker keeps up with thousands of
// jobs a second), logging a line when it starts (SECONDS > 0) and one when
// it ends, and reports the steps a real build of the spec would (their step
// ids, each costing an equal share of SECONDS; when the ids need a context,
// one step named by the SHA-256 of the spec text), succeeding with the last
// step's id. It opens no store, so no cache inventory is sent; the stats
// report the disk of the state directory (or of the current one).
//
//   auto executor = std::make_unique<FakeBuildExecutor>(FakeBuildOptions{.seconds = 0});
//   Worker worker(options, std::move(executor));
//
// Contract: as JobExecutor; events reach the sink from within start(),
// cancel(), interrupt_all() and poll(). open() never fails.
// Thread safety: the event loop's thread only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/daemon/job_executor.h"

namespace kiln::worker {

struct FakeBuildOptions {
  double seconds = 0;     // how long each job "runs"
  std::string state_dir;  // whose filesystem the disk figures describe; "" = the current directory
};

class FakeBuildExecutor final : public JobExecutor {
 public:
  explicit FakeBuildExecutor(FakeBuildOptions options) : options_(std::move(options)) {}

  Status open(const ExecutorHost& host) override;
  std::string_view mode() const override { return "fake builds"; }
  void start(proto::Assign assign, SteadyTime now) override;
  bool running(const JobKey& key) const override { return jobs_.contains(key); }
  std::vector<JobKey> running_jobs() const override;
  std::size_t running_count() const override { return jobs_.size(); }
  bool cancel(const JobKey& key) override;
  void interrupt_all(const std::string& reason) override;
  bool idle() const override { return jobs_.empty(); }
  // Two short lines per job: nothing to hold back.
  void log_released(const JobKey&, std::uint64_t) override {}
  void log_unwanted(const JobKey&) override {}
  void poll(SteadyTime now) override;
  std::optional<std::chrono::milliseconds> poll_timeout(SteadyTime now) const override;
  void fill_stats(proto::WorkerStats& stats) override;
  bool reports_inventory() const override { return false; }
  Result<std::vector<std::string>> list_results() override { return std::vector<std::string>{}; }
  void close() override {}

 private:
  struct Job {
    std::string job_id;
    std::uint32_t attempt = 0;
    std::string spec_text;
    SteadyTime due;
  };

  void finish(const Job& job, const std::string& outcome, const std::string& error);

  FakeBuildOptions options_;
  ExecutorHost host_;
  std::map<JobKey, Job> jobs_;
};

}  // namespace kiln::worker
