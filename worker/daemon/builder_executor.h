// The job runner of a real-build worker (docs/worker.md, "Jobs"): a
// JobExecutor that runs each assigned job on a thread of its own with the
// shared local Builder. For each job it makes a job directory
// (STATE/jobs/JOB-ATTEMPT, removed afterwards), prepares the build context
// there (a tar fetched from the scheduler into STATE/contexts and unpacked,
// or a git checkout from a clone under STATE/git), parses the spec, builds
// it with the job's secrets, and turns the build into job-log, job-step and
// job-done events and into additions to the store's inventory. A job's log
// text is held back (LogWindow): once log_window_bytes of it are in flight
// the thread writing it (the step's output reader) waits for
// log_released(), so the step's output pipe fills and the step waits. A job past
// its timeout_seconds is cancelled and fails saying so; cancel() kills its
// running container; interrupt_all() ends every job "interrupted". It also
// owns the store's Maintenance (prune when disk is low, context tars' age,
// store size, health).
//
//   builder::LocalBuilder& local = ...;
//   auto executor = std::make_unique<BuilderExecutor>(
//       BuilderExecutorOptions{.state_dir = "/var/lib/kiln/w1"}, local.builder());
//   Worker worker(options, std::move(executor));
//
// Contract: the Builder must outlive the executor. open() empties
// STATE/jobs (leftovers of a crash), creates STATE/{jobs,contexts,git},
// removes partial context downloads and starts maintenance; errors:
// kInvalidArgument without a state directory, kIo when it cannot create
// them. The destructor cancels running jobs and joins their threads.
// Thread safety: as JobExecutor (the loop's thread); job threads only queue
// events, which poll() hands to the sink.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/context/result_tar.h"
#include "common/spec/spec.h"
#include "worker/builder/builder.h"
#include "worker/daemon/git_context.h"
#include "worker/daemon/job_executor.h"
#include "worker/daemon/log_window.h"
#include "worker/daemon/maintenance.h"

namespace kiln::worker {

struct BuilderExecutorOptions {
  // Where contexts, git clones and job directories live; required.
  std::string state_dir;
  // Prune the store while its filesystem has less free space than this,
  // never a result used in the last prune_min_age (MaintenanceOptions).
  std::uint64_t prune_below_bytes = 2ull << 30;
  std::chrono::seconds prune_min_age{600};
  std::chrono::milliseconds maintenance_interval{30000};
  // Hand job logs to the session at least this often (and at 32 KiB).
  std::chrono::milliseconds log_flush_interval{50};
  // Cached context tars unused this long are removed (checked with the prune).
  std::chrono::hours context_max_age{24 * 7};
  // The registry blob cache ("" none), pruned to this size (MaintenanceOptions).
  std::string image_cache_dir;
  std::uint64_t image_cache_max_bytes = 10ull << 30;
  // Pushes a job's result as an image when the job names one (JobSpec.push):
  // kiln-worker sets it to worker/pusher with its registry flags. Gets the
  // result id, the parsed spec, the reference, the login ("USER:PASSWORD",
  // the job's kiln-push-login secret, or "") and a sink for progress lines;
  // returns REF@DIGEST. Empty: a job that asks for a push fails, saying so.
  std::function<Result<std::string>(const std::string& result_id, const spec::Spec& spec,
                                    const std::string& reference, const std::string& login,
                                    const std::function<void(std::string_view)>& note)>
      push;
  // Writes SRC of a result (its filesystem as the container sees it) as the
  // tar of `kiln submit --output` (common/context/result_tar.h) into the
  // sink, failing past `max_bytes`: kiln-worker sets it to the store's
  // result. Empty: a job that asks for outputs fails, saying so.
  std::function<Result<context::ResultTar>(const std::string& result_id, const std::string& src,
                                           const context::TarSink& sink, std::uint64_t max_bytes)>
      write_output;
};

class BuilderExecutor final : public JobExecutor {
 public:
  BuilderExecutor(BuilderExecutorOptions options, builder::Builder& builder);
  ~BuilderExecutor() override;
  BuilderExecutor(const BuilderExecutor&) = delete;
  BuilderExecutor& operator=(const BuilderExecutor&) = delete;

  Status open(const ExecutorHost& host) override;
  std::string_view mode() const override { return {}; }
  void start(proto::Assign assign, SteadyTime now) override;
  bool running(const JobKey& key) const override { return jobs_.contains(key); }
  std::vector<JobKey> running_jobs() const override;
  std::size_t running_count() const override { return jobs_.size(); }
  bool cancel(const JobKey& key) override;
  void interrupt_all(const std::string& reason) override;
  bool idle() const override;
  void log_released(const JobKey& key, std::uint64_t offset) override;
  void log_unwanted(const JobKey& key) override;
  void poll(SteadyTime now) override;
  std::optional<std::chrono::milliseconds> poll_timeout(SteadyTime now) const override;
  void fill_stats(proto::WorkerStats& stats) override;
  bool reports_inventory() const override { return true; }
  Result<std::vector<std::string>> list_results() override { return builder_.list_results(); }
  void close() override;

 private:
  struct Job;
  // Job threads -> loop: a job event, or else a change of the store's ids.
  struct Pending {
    std::optional<proto::JobEvent> event;
    std::vector<std::string> added_hex, removed_hex;
  };

  // Loop thread.
  void drain_events();
  void check_timeouts(SteadyTime now);

  // Job threads.
  void run_job(std::shared_ptr<Job> job);
  // Builds the job (and pushes it when asked: `pushed` gets REF@DIGEST).
  // What a finished build reports besides its result id.
  struct Reported {
    std::vector<proto::StepInfo> steps;
    std::string pushed;
    std::vector<proto::Output> outputs;
  };
  Result<std::string> build_job(Job& job, Reported& reported);
  Status prepare_context(Job& job, const std::string& dir);
  // Pushes result `id` as the job's JobSpec.push; returns REF@DIGEST.
  Result<std::string> push_result(Job& job, const spec::Spec& spec, const std::string& id);
  // Writes each of the job's outputs of result `id` as a tar and sends it to
  // the scheduler (put-output), in order.
  Result<std::vector<proto::Output>> send_outputs(Job& job, const std::string& id);
  void push_event(proto::JobEvent event);
  void push_log(const Job& job, std::string_view text);
  void push_inventory(std::vector<std::string> added_hex, std::vector<std::string> removed_hex);

  BuilderExecutorOptions options_;
  builder::Builder& builder_;
  ExecutorHost host_;
  zmq::context_t zmq_;  // the sockets that fetch contexts (one per fetch)
  std::unique_ptr<GitContexts> git_;
  std::unique_ptr<Maintenance> maintenance_;
  std::map<JobKey, std::shared_ptr<Job>> jobs_;
  std::string interrupt_reason_;           // written before any job's shutting_down is set
  std::unique_ptr<LogWindow> log_window_;  // made by open()

  mutable std::mutex events_mu_;
  std::deque<Pending> events_;
};

}  // namespace kiln::worker
