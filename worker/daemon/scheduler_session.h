// The worker's side of the scheduler protocol (docs/protocol.md, "Workers"),
// without a socket: it takes the scheduler's messages and the time, and
// produces the messages to send through a MessageOut. The Worker's event
// loop owns the socket and feeds it; tests drive it with plain messages and
// a fake clock (scheduler_session_test.cc).
//
//   SchedulerSession session(options, out, executor, [] { return std::chrono::steady_clock::now(); });
//   session.start();                                  // the first register
//   session.receive(frame.type, frame.type_text, frame.body);
//   executor.poll(now);                               // job events reach the session (a JobEventSink)
//   session.tick();                                   // retries, heartbeats, buffered events
//   sleep(session.timeout());
//
// What it does:
// - Registering: `register` (listing running jobs and the recent outcomes,
//   below) until `registered` arrives: every `register_retry` while sends
//   succeed; while a send fails (not connected yet) after 20 ms, doubling up
//   to `register_retry`. `reregister` registers again (once: a register sent
//   less than 500 ms ago answers it). An `error` of kind failed precondition
//   or permission denied while unregistered is the scheduler refusing this
//   worker: fatal(). Busy (another live worker holds the name) is retried.
// - Registered: heartbeats every `heartbeat_ms` with the executor's stats,
//   the running jobs and (once the full inventory went out) its digest; the
//   full inventory right after each registration (InventoryReporter).
// - Job events: `assign` starts a job on the executor after sending
//   job-started (not after refuse_new_jobs(), nor twice); `cancel-job`
//   cancels that attempt only if it runs here (a superseded attempt's cancel
//   does nothing else). Events are sent at once when registered and nothing
//   is waiting before them, else kept in order and sent once registered.
// - Job logs (docs/worker.md, "Job logs and memory"): the session numbers
//   each attempt's log text (job-log log_offset) and keeps it until a
//   scheduler that acknowledges (registered.log_cap_bytes > 0) says in
//   job-acks that it holds it; then it tells the executor (log_released), whose
//   job thread waits while a job holds log_window_bytes. After each
//   registration (and when acks stall for 5 s) everything unacknowledged is
//   sent again: chunks, then the job-done (with log_end, the log's length),
//   which is kept until acknowledged too. Text past the scheduler's cap, or
//   after it said the log is full, is dropped at once (the scheduler marks
//   the truncation). An older scheduler (no acks): text is freed once sent,
//   and not sent past 16 MiB per attempt (with a note).
// - Bound: past `max_buffered_bytes` held in all (events not sent, log text
//   not acknowledged), log text is dropped, oldest first from the job holding
//   most; steps and outcomes never are. The scheduler marks the hole (an older
//   one: a job-log note saying how much, where the gap is). With the
//   executor's back-pressure this is a safety net, not the normal path.
// - job-done sent to an older scheduler in the last min(lease, 5 s) (at most
//   10,000) are listed as running in the next register and sent again after
//   registering, since a scheduler that restarted may have lost them; so are
//   job-done not yet acknowledged by one that acknowledges.
// - `worker-state` changes are logged.
// Thread safety: none; the event loop's thread only (as the executor).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/curve.h"
#include "common/proto/messages.h"
#include "worker/daemon/inventory_reporter.h"
#include "worker/daemon/job_executor.h"
#include "worker/daemon/message_out.h"

namespace kiln::worker {

struct SessionOptions {
  std::string scheduler = "tcp://127.0.0.1:7801";  // for messages
  std::string name;                                // routing id and registration name; required
  std::string pool = "linux-x86_64";
  std::uint32_t capacity = 2;
  std::vector<std::string> labels;  // "key=value"

  std::chrono::milliseconds register_retry{2000};
  // Bound on everything held for the scheduler: events not sent yet, log
  // text not acknowledged yet (past it, log text is dropped).
  std::size_t max_buffered_bytes = 16u << 20;
  // Log bytes of one job the worker may hold (the executor's queue, this
  // session, the socket) before the job's thread waits (ExecutorHost).
  std::size_t log_window_bytes = 1u << 20;
  // Ids per inventory message (100,000 x 32 bytes stays well under proto::kMaxBodyBytes).
  std::size_t inventory_chunk_ids = 100000;

  // For the Worker's sockets, not the session: CurveZMQ keys (empty:
  // plaintext) and the key file they came from (for messages).
  proto::CurveClientKeys curve;
  std::string key_file;
};

class SchedulerSession final : public JobEventSink {
 public:
  using Now = std::function<SteadyTime()>;

  // `out` and `executor` must outlive the session.
  SchedulerSession(SessionOptions options, MessageOut& out, JobExecutor& executor, Now now);

  // Sends the first register.
  void start();
  // A message from the scheduler; `type` nullopt: a type this worker does not
  // know, named `type_text`. Bad bodies are logged and ignored.
  void receive(std::optional<proto::Type> type, std::string_view type_text, std::string_view body);
  // Timers: register again when due, heartbeat when due; then sends what is
  // buffered and forgets old outcomes.
  void tick();
  // Sends what is buffered, if registered.
  void flush();
  // Until the next register or heartbeat is due (+1 ms), never negative.
  std::chrono::milliseconds timeout() const;
  // The worker is stopping: later assigns are not started.
  void refuse_new_jobs() { refusing_ = true; }

  bool registered() const { return registered_; }
  // Set when the scheduler refused the registration (run() then ends with it).
  const std::optional<Error>& fatal() const { return fatal_; }
  // Events and log chunks held: not sent yet, or (log text, outcomes) not
  // acknowledged yet by a scheduler that acknowledges. After a run: those the
  // scheduler may not have.
  std::size_t buffered_count() const;
  // Their bytes (log text, encoded events).
  std::size_t buffered_bytes() const { return buffered_bytes_ + log_bytes_; }
  // Whether the scheduler acknowledges what it stores (it said so in `registered`).
  bool scheduler_acks() const { return log_cap_bytes_ > 0; }
  // What the scheduler last said this worker is: active, paused, draining (empty: not told yet).
  const std::string& scheduler_state() const { return scheduler_state_; }

  // JobEventSink: the executor's reports.
  void job_event(proto::JobEvent event) override;
  void store_changed(const std::vector<std::string>& added_hex,
                     const std::vector<std::string>& removed_hex) override;

 private:
  struct Outgoing {
    proto::Type type;
    std::string body;
    std::string job_id;  // job events: whose
    std::uint32_t attempt = 0;
    std::uint64_t log_mark = 0;  // job events: the job's log length when it happened (sent before it)
  };
  struct Chunk {
    std::uint64_t offset;
    std::string text;
  };
  // One attempt's log on its way to the scheduler.
  struct JobLog {
    std::deque<Chunk> chunks;    // held: not acknowledged (or, older scheduler, not sent)
    std::uint64_t produced = 0;  // the log's length: every byte the executor reported
    std::uint64_t sent = 0;      // below this, held chunks went out since the last (re)registration
    std::uint64_t released = 0;  // what the executor was told it may forget
    std::uint64_t held_bytes = 0;
    std::uint64_t dropped_unnoted = 0;  // older scheduler: bytes dropped since the last note
    bool full = false;                  // nothing more is stored: later text is dropped at once
    std::optional<Outgoing> done;       // acknowledging scheduler: the job-done, until acknowledged
    bool done_sent = false;
    SteadyTime last_progress{};  // last ack (or first send with nothing outstanding)
    std::uint64_t first_held() const { return chunks.empty() ? produced : chunks.front().offset; }
  };

  void on_registered(const proto::Registered& registered);
  void on_reregister(const proto::Reregister& reregister);
  void on_assign(proto::Assign assign);
  void on_cancel(const proto::CancelAssigned& cancel);
  void on_worker_state(const proto::WorkerState& state);
  void on_error(const proto::ErrorReply& reply);
  void on_job_acks(const proto::JobAcks& acks);
  void send_register();
  void send_heartbeat();
  void send_full_inventory();
  void emit(Outgoing out);
  void buffer(Outgoing out);
  bool send(const Outgoing& out) { return out_.send(out.type, out.body); }
  void sent_event(Outgoing out);
  void forget_old_done(SteadyTime now);
  proto::WorkerStats stats();
  std::vector<proto::RunningJob> running_jobs(bool with_recent_done) const;

  // Logs.
  void add_log(const JobKey& key, std::string text);
  // Sends `key`'s held chunks that have not gone out, up to offset `mark`; false when a send failed.
  bool send_log_until(const JobKey& key, JobLog& log, std::uint64_t mark);
  // Drops held text below `offset` (acknowledged) or all of it (`all`), and
  // tells the executor what it may forget.
  void free_log(const JobKey& key, JobLog& log, std::uint64_t offset, bool all = false);
  // Drops a job's log and everything it still holds (its job-done is recorded or sent for good).
  void forget_log(const JobKey& key);
  // Everything held but not acknowledged for 5 s goes out again.
  void resend_stalled(SteadyTime now);
  // Drops log text while over max_buffered_bytes.
  void enforce_bound();

  SessionOptions options_;
  MessageOut& out_;
  JobExecutor& executor_;
  Now now_;
  InventoryReporter inventory_;

  bool registered_ = false;
  bool ever_registered_ = false;
  bool refusing_ = false;
  std::optional<Error> fatal_;
  std::uint32_t heartbeat_ms_ = 1000;
  std::uint32_t lease_ms_ = 10000;
  SteadyTime last_register_{};
  SteadyTime next_register_{};
  std::chrono::milliseconds register_backoff_;
  SteadyTime last_heartbeat_{};
  std::string scheduler_state_;
  // From `registered`: the scheduler's log cap (0: it does not acknowledge).
  std::uint64_t log_cap_bytes_ = 0;
  SteadyTime last_resend_check_{};

  std::deque<Outgoing> buffered_;
  std::size_t buffered_bytes_ = 0;
  std::map<JobKey, JobLog> logs_;
  std::set<JobKey> unsent_logs_;  // jobs with held chunks not sent yet
  std::size_t log_bytes_ = 0;     // held log text, all jobs
  std::uint64_t dropped_log_bytes_ = 0;
  // job-done messages sent recently to an older scheduler, resent after a re-registration.
  std::deque<std::pair<SteadyTime, Outgoing>> recent_done_;
};

}  // namespace kiln::worker
