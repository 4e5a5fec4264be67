// The worker daemon's core (`kiln-worker`, docs/worker.md): connects out to
// the scheduler's worker port, registers, heartbeats with its stats, runs the
// jobs it is assigned with the local builder and reports their logs, steps
// and outcomes, following the protocol in docs/protocol.md.
//
//   WorkerOptions options;
//   options.name = "w1";
//   options.state_dir = "/var/lib/kiln/w1";
//   Worker worker(options, &builder, store.get());  // (options, nullptr, nullptr) with fake builds
//   std::thread signals([&] { wait_for_sigterm(); worker.stop(); });
//   KILN_RETURN_IF_ERROR(worker.run());                  // until stop()
//
// Threads: run() is the event loop and the only user of the scheduler
// socket. Each real job runs on a thread of its own (at most `capacity` are
// expected; the scheduler decides) sharing the one Builder; job threads hand
// their events to the loop through a locked queue and an eventfd wake-up.
// Fake builds (--fake-build) need no builder: with 0 seconds they complete
// inside the loop, otherwise they are timers of the loop. A maintenance
// thread prunes the store when free space falls below the threshold (after
// each job and every `maintenance_interval`).
//
// Reconnection: until `registered` arrives, `register` is resent every
// `register_retry`. `reregister` (a restarted scheduler) makes the worker
// register again, listing the jobs it still runs; events produced meanwhile
// are kept (job-log events are dropped oldest first past `max_buffered_bytes`)
// and sent once registered. A job-done sent in the last few seconds (up to
// 10,000 of them) is sent again after a re-registration, and its job listed as
// running in the register, since a scheduler that restarted may have lost it.
//
// stop(): no new work; running jobs are cancelled and reported cancelled;
// run() returns once their reports are sent (best effort, 2 s linger).
// Errors from run(): kFailedPrecondition when the scheduler refuses the
// registration (an incompatible protocol version: `kiln-worker` exits 2);
// kInvalidArgument for bad options.
// Thread safety: stop() may be called from any thread; everything else from
// the thread that calls run().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "common/error.h"
#include "common/id_set_digest.h"
#include "common/proto/messages.h"
#include "common/proto/transport.h"
#include "worker/builder/builder.h"
#include "worker/daemon/git_context.h"
#include "worker/store/store.h"

namespace kiln::worker {

struct WorkerOptions {
  std::string scheduler = "tcp://127.0.0.1:7801";
  std::string name;  // routing id and registration name; required
  std::string pool = "linux-x86_64";
  std::uint32_t capacity = 2;
  std::vector<std::string> labels;  // "key=value"
  // Where contexts, git clones and job directories live; required for real builds.
  std::string state_dir;
  // Prune the store while its filesystem has less free space than this.
  std::uint64_t prune_below_bytes = 2ull << 30;
  // Set: fake builds of this many seconds (no builder, store or sandbox).
  std::optional<double> fake_build_seconds;

  std::chrono::milliseconds register_retry{2000};
  std::chrono::milliseconds maintenance_interval{30000};
  // Flush job logs at least this often (and at 32 KiB).
  std::chrono::milliseconds log_flush_interval{50};
  // Bound on events kept while not registered.
  std::size_t max_buffered_bytes = 16u << 20;
  // Cached context tars unused this long are removed (checked with the prune).
  std::chrono::hours context_max_age{24 * 7};
  // Ids per inventory message (100,000 x 32 bytes stays well under proto::kMaxBodyBytes).
  std::size_t inventory_chunk_ids = 100000;
};

class Worker {
 public:
  // `builder` and `store` must outlive the Worker; both may be null only with
  // options.fake_build_seconds set.
  Worker(WorkerOptions options, builder::Builder* builder, store::Store* store);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Status run();
  void stop();

 private:
  struct Job;
  struct FakeJob;
  struct Outgoing {
    proto::Type type;
    std::string body;
    std::string job_id;  // job events: whose
    std::uint32_t attempt = 0;
  };

  // Event loop (run()'s thread).
  void handle(const proto::Frame& frame);
  void on_registered(const proto::Registered& registered);
  void on_assign(proto::Assign assign);
  void on_cancel(const proto::CancelAssigned& cancel);
  void send_register();
  void send_heartbeat();
  void emit(Outgoing out);
  void forget_old_done(std::chrono::steady_clock::time_point now);
  void buffer(Outgoing out);
  void flush_buffered();
  void drain_job_events();
  void finish_fake(FakeJob& job, const std::string& outcome, const std::string& error);
  void fire_fake_timers();
  void check_job_timeouts();
  void send_full_inventory();
  void send_inventory_delta(const std::vector<std::string>& added_hex,
                            const std::vector<std::string>& removed_hex);
  proto::WorkerStats stats();
  std::vector<proto::RunningJob> running_jobs(bool with_recent_done) const;
  std::chrono::milliseconds next_timeout() const;

  // Job threads.
  void run_job(std::shared_ptr<Job> job);
  Result<std::string> build_job(Job& job, std::vector<proto::StepInfo>& steps);
  void push_event(proto::JobEvent event);
  void push_log(const Job& job, std::string_view text);
  void push_inventory(std::vector<std::string> added_hex, std::vector<std::string> removed_hex);
  void wake();

  // Maintenance thread.
  void maintenance_loop();
  void prune_if_low();

  WorkerOptions options_;
  builder::Builder* builder_;
  store::Store* store_;
  std::unique_ptr<GitContexts> git_;
  zmq::context_t context_;
  std::unique_ptr<zmq::socket_t> socket_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};

  // Loop state.
  bool registered_ = false;
  bool ever_registered_ = false;
  std::optional<Error> fatal_;
  std::uint32_t heartbeat_ms_ = 1000;
  std::uint32_t lease_ms_ = 10000;
  std::chrono::steady_clock::time_point last_register_{};
  std::chrono::steady_clock::time_point next_register_{};
  std::chrono::milliseconds register_backoff_{20};
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::string scheduler_state_;
  std::map<std::pair<std::string, std::uint32_t>, std::shared_ptr<Job>> jobs_;
  std::map<std::pair<std::string, std::uint32_t>, std::unique_ptr<FakeJob>> fake_jobs_;
  std::deque<Outgoing> buffered_;
  std::size_t buffered_bytes_ = 0;
  std::uint64_t dropped_log_bytes_ = 0;
  std::map<std::pair<std::string, std::uint32_t>, std::uint64_t>
      dropped_by_job_;  // log bytes, for the gap note
  // job-done messages sent recently, resent after a re-registration.
  std::deque<std::pair<std::chrono::steady_clock::time_point, Outgoing>> recent_done_;
  std::set<std::string> held_ids_;  // binary step ids the scheduler was told about
  IdSetDigest held_digest_;         // of held_ids_: sent with inventories and heartbeats
  bool inventory_sent_ = false;

  // Job threads -> loop: a job event, or else a change of the store's ids.
  struct Pending {
    std::optional<proto::JobEvent> event;
    std::vector<std::string> added_hex, removed_hex;
  };
  std::mutex events_mu_;
  std::deque<Pending> events_;

  // Maintenance.
  std::thread maintenance_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool maintenance_now_ = false;
  bool maintenance_stop_ = false;
  std::atomic<std::uint64_t> store_bytes_{0};
};

}  // namespace kiln::worker
