// The scheduler's core: jobs, workers, leases, logs and placement, as a state
// machine driven by messages and a clock (DESIGN.md, "The farm";
// docs/protocol.md). It owns no sockets: the daemon (daemon.h) feeds it
// received frames and sends what it leaves in the outbox, so tests can drive
// it with a fake clock.
//
//   Scheduler core(options, std::move(db), clock);
//   KILN_RETURN_IF_ERROR(core.recover());             // load jobs after a restart
//   core.handle(Port::kClients, frame);               // for each received message
//   core.tick();                                      // every ~50 ms: leases, waits, timeouts
//   KILN_RETURN_IF_ERROR(core.commit());              // group commit, then:
//   for (auto& out : core.take_outbox()) send(out);
//
// Guarantees: a reply that reports a change (submitted, ok) is in the outbox
// only after the change is staged in the database, and the daemon commits
// before sending; job-acks (what a worker may forget of a job's log and
// outcome) are put in the outbox by commit() itself, after the write
// succeeded. A worker's job-log chunks are placed by their offset in the
// attempt's log (a resent chunk is not stored twice; a hole is marked), and
// a job-done is recorded only after its log is complete or marked. Each job has exactly one recorded result:
// events from a superseded attempt are ignored (and that attempt is cancelled). Secrets live only in memory
// and in the assign message to the chosen worker.
//
// The parts, each in its own file: JobTable (jobs and their states),
// WorkerRegistry (workers and leases), HeldReplies (waiting status and log
// requests), SubmitPlanner (validation and step ids at submit), JobDb (the
// durable records: RocksDB or memory). The handlers of the client port are
// in client_handlers.cc, those of the worker port in worker_handlers.cc, the
// job lifecycle (dispatch, assign, finish, requeue) in job_lifecycle.cc.
// Thread safety: one thread (the event loop); snapshot() results may be
// shared with other threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/messages.h"
#include "scheduler/context_store.h"
#include "scheduler/held_replies.h"
#include "scheduler/http/farm_view.h"
#include "scheduler/job_db.h"
#include "scheduler/job_table.h"
#include "scheduler/placement/policy.h"
#include "scheduler/submit_planner.h"
#include "scheduler/wire.h"
#include "scheduler/worker_registry.h"

namespace kiln::scheduler {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t steady_ms() = 0;  // for leases and waits
  virtual std::int64_t wall_ms() = 0;    // for timestamps users see
};
std::unique_ptr<Clock> make_system_clock();

struct SchedulerOptions {
  std::string state_dir;
  std::uint32_t heartbeat_ms = 1000;
  std::uint32_t lease_ms = 10000;
  std::uint32_t default_timeout_seconds = 3600;
  std::uint64_t log_cap_bytes = 16u << 20;
  std::uint64_t max_context_bytes = 1ull << 30;
  // Jobs' output tars (`kiln submit --output`): the largest one, all of them
  // together (the oldest go first), and how long one is kept.
  std::uint64_t max_output_bytes = 256ull << 20;
  std::uint64_t output_store_bytes = 4ull << 30;
  std::int64_t output_retention_ms = 24ll * 3600 * 1000;
  std::string default_pool = "linux-x86_64";
  std::string placement = "kiln";
  // Workers with less free disk than this get no new jobs.
  std::uint64_t low_disk_bytes = 1ull << 30;
  // The queue wait each pool should meet; the stats say how many workers
  // would bring the expected wait under it ("workers wanted").
  double target_wait_seconds = 300;
  // Fair-share weights: (pool, client, rate); a client with rate 2 gets
  // twice the share of one with rate 1 when the pool is full.
  std::vector<std::tuple<std::string, std::string, double>> client_rates;
  // Ended jobs kept in memory for `kiln jobs` (older ones are read from the database).
  std::size_t recent_ended = 1000;
  // Identities are enforced (every message carries Incoming::peer): clients
  // see and cancel only their own jobs, admin requests need an admin key, a
  // worker registers only under its key's name. Off: a trusted network.
  bool authenticate = false;
  // Whether jobs with secrets are accepted although connections are not
  // encrypted (the daemon allows it only when it listens on loopback).
  bool secrets_in_clear = true;
};

// What the HTTP side and `kiln admin` read: a consistent copy.
struct Snapshot {
  std::int64_t now_ms = 0;
  std::string scheduler_id;
  std::string placement;
  std::vector<proto::WorkerInfo> workers;
  // Active jobs, the oldest `max_queued` queued ones and the recent ended
  // ones (no spec).
  std::vector<proto::JobInfo> jobs;
  std::map<std::string, std::uint64_t> jobs_by_state;   // over every job in the database
  std::map<std::string, std::uint64_t> jobs_by_client;  // submitted, over every job in the database
  std::map<std::string, double> expected_seconds;       // job id -> placement's estimate
  std::map<std::string, http::PoolCounters> pool_counters;  // since this process started
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, std::unique_ptr<JobDb> db, std::unique_ptr<placement::Policy> policy,
            Clock& clock);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads jobs and worker admin states from the database: queued jobs are
  // queued again; assigned and running ones wait for their worker to
  // reconnect and reclaim them, or return to the queue after a lease.
  Status recover();

  const std::string& scheduler_id() const { return scheduler_id_; }

  void handle(Port port, const Incoming& message);
  // The peer behind `routing_id` lost its right to talk to this scheduler
  // (its key was revoked): a worker there is lost (its jobs run again
  // elsewhere), replies held for it are dropped.
  void revoke(Port port, const std::string& routing_id, const std::string& why);
  // A message that could not be taken apart (answered with an error).
  void handle_bad(Port port, const std::string& routing_id, const Error& error, std::uint64_t request_id = 0);
  // Placement for what changed, leases, held replies, timeouts. Call after
  // each batch of handle() calls and at least every ~50 ms.
  void tick();
  // Writes what handle()/tick() staged. Must succeed before take_outbox() is
  // sent. On success it adds the job-acks of what it made durable to the
  // outbox; on failure they are dropped (the worker keeps the text and
  // sends it again).
  Status commit();
  std::vector<Outgoing> take_outbox();

  Snapshot snapshot(std::size_t max_queued = 5000, std::size_t max_ended = 200) const;
  // Reads a job's log on the event loop (sees jobs in memory).
  Result<proto::Log> read_log_any_thread(const std::string& job_id, std::uint64_t offset,
                                         std::size_t max_bytes);
  // The same from committed data only, safe on any thread (the HTTP side).
  Result<proto::Log> read_log_committed(const std::string& job_id, std::uint64_t offset,
                                        std::size_t max_bytes);
  Result<proto::JobInfo> job_committed(const std::string& job_id);

  std::size_t queued_jobs() const;
  std::size_t jobs_in_memory() const { return jobs_.size(); }

 private:
  // Client port (client_handlers.cc).
  void on_hello(const Incoming& m);
  void on_submit(const Incoming& m);
  void on_put_context(const Incoming& m);
  void on_status(const Incoming& m);
  void on_read_log(const Incoming& m);
  void on_cancel(const Incoming& m);
  void on_list_jobs(const Incoming& m);
  void on_list_workers(const Incoming& m);
  void on_worker_action(const Incoming& m);
  void on_get_context(Port port, const Incoming& m);
  void on_get_output(const Incoming& m);
  // Worker port (worker_handlers.cc).
  void on_register(const Incoming& m);
  void on_heartbeat(const Incoming& m);
  void on_job_event(const Incoming& m);
  void on_inventory(const Incoming& m);
  void on_put_output(const Incoming& m);
  void check_inventory_digest(WorkerRecord& w, const std::string& digest, const std::string& routing_id);
  // Outputs (output_handlers.cc): what is wrong with a job-done's outputs
  // (nullopt: one stored tar per output the job asked for, in order), and
  // the periodic removal of old tars.
  std::optional<std::string> check_outputs(const Job& job, const std::vector<proto::Output>& outputs);
  void expire_outputs(std::int64_t now_steady_ms);

  // Job lifecycle (job_lifecycle.cc).
  // Moves queued jobs onto free workers as the policy decides.
  void dispatch();
  void assign(Job& job, WorkerRecord& worker);
  // Ends a job (succeeded, failed, cancelled) and answers its held replies.
  void finish(Job& job, JobState state, const std::string& error);
  // Puts an assigned/running job back in the queue (worker lost).
  void requeue(Job& job, const std::string& why);
  void lose_worker(WorkerRecord& worker, const std::string& why);
  void persist(const Job& job);
  // The log (job_lifecycle.cc). append_log stores text at the log's end, up
  // to the cap (then the truncation marker, once).
  void append_log(Job& job, std::string_view data);
  void mark_log_truncated(Job& job);
  // A numbered chunk of the current attempt's log: what is new of it is
  // stored where it belongs; a hole before it is marked.
  void place_log_chunk(Job& job, const proto::JobEvent& event);
  // The current attempt's log ends at `log_end`: bytes that never arrived
  // are marked (or the truncation, when the log is at its cap).
  void end_attempt_log(Job& job, std::uint64_t log_end);
  // A job-ack for the worker at `routing_id`, merged with others of the same
  // attempt and sent by commit() once durable.
  void ack(const std::string& routing_id, proto::JobAck ack);
  bool log_full(const Job& job) const { return job.info.log_bytes >= options_.log_cap_bytes; }
  void answer_held(Job& job);
  void update_policy_worker(const WorkerRecord& worker);
  double policy_now() const;

  Result<proto::JobInfo> load_job(const std::string& id, bool with_spec);
  // Authorisation (client port): nullopt when `m`'s sender may do it, else the refusal.
  std::optional<Error> require_admin(const Incoming& m, std::string_view what) const;
  std::optional<Error> require_owner(const Incoming& m, const std::string& job_id,
                                     const std::string& client) const;

  template <class T>
  void reply(Port port, const std::string& routing_id, const T& message);
  void reply_error(Port port, const std::string& routing_id, std::uint64_t request_id, const Error& error);

  SchedulerOptions options_;
  std::unique_ptr<JobDb> db_;
  std::unique_ptr<placement::Policy> policy_;
  Clock& clock_;
  ContextStore contexts_;
  ContextStore outputs_;
  std::int64_t last_output_expiry_ms_ = 0;
  SubmitPlanner planner_;
  std::string scheduler_id_;
  std::uint64_t next_seq_ = 1;

  JobTable jobs_;
  WorkerRegistry workers_;
  std::map<std::string, http::PoolCounters> pool_counters_;  // by pool
  HeldReplies held_;
  std::unordered_map<std::string, std::string> client_names_;  // routing id -> hello's client
  std::vector<Outgoing> outbox_;
  // Log replies are read after commit() so they see the chunks just staged.
  struct PendingLogReply {
    std::string routing_id;
    std::uint64_t request_id;
    std::string job_id;
    std::uint64_t offset;
    std::uint32_t max_bytes;
  };
  std::vector<PendingLogReply> pending_log_replies_;
  // Jobs whose attempt_log_bytes moved since their record was last staged:
  // commit() stages them with the chunks, so a restart places resent chunks right.
  std::unordered_set<std::string> unsaved_log_progress_;
  // job-acks by worker route, then by (job id, attempt); sent after commit.
  std::map<std::string, std::map<std::pair<std::string, std::uint32_t>, proto::JobAck>> pending_acks_;
  std::int64_t last_lease_check_ms_ = 0;
  bool dispatch_pending_ = false;  // something changed since the last placement round
};

template <class T>
void Scheduler::reply(Port port, const std::string& routing_id, const T& message) {
  outbox_.push_back({port, routing_id, T::kType, proto::encode(message)});
}

}  // namespace kiln::scheduler
