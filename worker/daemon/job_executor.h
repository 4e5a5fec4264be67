// How a worker runs the jobs the scheduler assigns: the seam between the
// protocol (SchedulerSession) and the builds. Two implementations:
// BuilderExecutor (builder_executor.h: real builds with the local Builder,
// a thread per job) and FakeBuildExecutor (fake_build_executor.h:
// `--fake-build`, no builds, for benchmarks and tests). kiln-worker's main.cc
// picks one from its flags; the Worker owns it.
//
//   auto executor = std::make_unique<FakeBuildExecutor>(FakeBuildOptions{.seconds = 0});
//   KILN_RETURN_IF_ERROR(executor->open({.worker_name = "w1", .events = &sink, .wake = wake}));
//   executor->start(assign, now);          // events reach `sink`
//   executor->poll(now);                    // on each turn of the event loop
//
// Contract: every method is called on the event loop's thread, after a
// successful open(). The executor reports a job's job-log, job-step and
// job-done events, and changes of the results its store holds, to the
// JobEventSink, always on the loop's thread: from within start(), cancel(),
// interrupt_all() or poll(), never from a thread of its own (an executor
// with threads queues their events and calls `wake` so that the loop polls
// it soon). job-started is the session's, sent before start(). Each started
// job ends with exactly one job-done. Log text is bounded per job: the
// session says with log_released() what of a job's log it no longer holds,
// and an executor whose jobs print a lot keeps its jobs' text in flight
// under ExecutorHost::log_window_bytes (a job thread waits for room, see
// log_window.h); log_unwanted() says when the rest may be dropped at once. Errors: only open() fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/curve.h"
#include "common/proto/messages.h"

namespace kiln::worker {

using SteadyTime = std::chrono::steady_clock::time_point;
// A job attempt: (job id, attempt).
using JobKey = std::pair<std::string, std::uint32_t>;

// Receives what executors report (see the contract above).
class JobEventSink {
 public:
  virtual ~JobEventSink() = default;
  // A job-log, job-step or job-done event.
  virtual void job_event(proto::JobEvent event) = 0;
  // Results (64-hex step ids) that appeared in or left the store.
  virtual void store_changed(const std::vector<std::string>& added_hex,
                             const std::vector<std::string>& removed_hex) = 0;
};

// What an executor learns from the worker in open().
struct ExecutorHost {
  std::string worker_name;       // for log lines and job logs
  std::string scheduler;         // the scheduler's worker address (get-context)
  proto::CurveClientKeys curve;  // the worker's CurveZMQ keys for its own connections (empty: plaintext)
  JobEventSink* events = nullptr;
  std::function<void()> wake;  // thread-safe: the loop calls poll() soon
  // Log bytes of one job that may be held (queued, in the session, on the
  // socket) before the job waits for log_released(); 0: no bound.
  std::size_t log_window_bytes = 1u << 20;
};

class JobExecutor {
 public:
  virtual ~JobExecutor() = default;  // stops and joins whatever still runs

  // Prepares to run jobs (directories, threads). kInvalidArgument for
  // options it cannot work with, kIo when its state cannot be set up.
  virtual Status open(const ExecutorHost& host) = 0;
  // For the worker's start-up log line: "fake builds", or empty.
  virtual std::string_view mode() const = 0;

  // Starts the assigned attempt (not already running here).
  virtual void start(proto::Assign assign, SteadyTime now) = 0;
  virtual bool running(const JobKey& key) const = 0;
  virtual std::vector<JobKey> running_jobs() const = 0;
  virtual std::size_t running_count() const = 0;
  // Cancels a running attempt: its job-done says "cancelled" (now or, for a
  // build on a thread, once it has stopped). False if it is not running.
  virtual bool cancel(const JobKey& key) = 0;
  // The worker is stopping: every running job ends "interrupted" with
  // `reason` as its error (so that the scheduler runs it again).
  virtual void interrupt_all(const std::string& reason) = 0;
  // Nothing runs and nothing is left to report.
  virtual bool idle() const = 0;
  // The session holds none of the attempt's log text below byte `offset` any
  // more (the scheduler acknowledged it, or it was dropped): the job may hand
  // on that much more. Offsets count the bytes of the attempt's job-log
  // events in the order they reached the sink. Unknown or ended jobs: ignored.
  virtual void log_released(const JobKey& key, std::uint64_t offset) = 0;
  // Nothing more of the attempt's log will be sent or stored (it is over the
  // scheduler's cap): the executor may drop it where it is produced. Its
  // job-done's log_end then says the log's whole length (0: the length of
  // the job-log text reported).
  virtual void log_unwanted(const JobKey& key) = 0;

  // Reports what happened since the last call, ends jobs that are due or
  // past their timeout.
  virtual void poll(SteadyTime now) = 0;
  // How long the loop may sleep before it must poll again; nullopt: no limit.
  virtual std::optional<std::chrono::milliseconds> poll_timeout(SteadyTime now) const = 0;

  // Disk, store and health figures for register and heartbeat messages
  // (everything but running_jobs, which the session counts).
  virtual void fill_stats(proto::WorkerStats& stats) = 0;
  // Whether there is a store whose results the scheduler should know
  // (false for fake builds: no inventory is sent).
  virtual bool reports_inventory() const = 0;
  // Every result id (64 hex) the store holds, for a full inventory.
  virtual Result<std::vector<std::string>> list_results() = 0;

  // After the loop ended: stops background work (maintenance). Jobs still
  // running are left to the destructor.
  virtual void close() = 0;
};

}  // namespace kiln::worker
