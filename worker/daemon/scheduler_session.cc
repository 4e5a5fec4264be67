#include "worker/daemon/scheduler_session.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/format.h"

namespace kiln::worker {
namespace {

using kiln::human_bytes;

constexpr std::size_t kMaxRecentDone = 10000;
constexpr std::chrono::milliseconds kFirstRegisterBackoff{20};
// A reregister this soon after a register is answered by that register.
constexpr std::chrono::milliseconds kReregisterGrace{500};
// Outcomes older than this are not sent again after a re-registration.
constexpr std::chrono::milliseconds kRecentDoneWindow{5000};

}  // namespace

SchedulerSession::SchedulerSession(SessionOptions options, MessageOut& out, JobExecutor& executor, Now now)
    : options_(std::move(options)),
      out_(out),
      executor_(executor),
      now_(std::move(now)),
      inventory_(options_.inventory_chunk_ids, out),
      register_backoff_(kFirstRegisterBackoff) {}

void SchedulerSession::start() {
  send_register();
}

std::chrono::milliseconds SchedulerSession::timeout() const {
  using std::chrono::milliseconds;
  const SteadyTime due = registered_ ? last_heartbeat_ + milliseconds(heartbeat_ms_) : next_register_;
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(due - now_()) + milliseconds(1));
}

void SchedulerSession::tick() {
  const SteadyTime now = now_();
  if (!registered_ && now >= next_register_) send_register();
  if (registered_ && now - last_heartbeat_ >= std::chrono::milliseconds(heartbeat_ms_)) send_heartbeat();
  flush();
  forget_old_done(now);
}

void SchedulerSession::receive(std::optional<proto::Type> type, std::string_view type_text,
                               std::string_view body) {
  if (!type) {
    spdlog::warn("kiln-worker: ignoring a message of unknown type {:?} from the scheduler", type_text);
    return;
  }
  auto decode_failed = [&](const Error& e) {
    spdlog::warn("kiln-worker: ignoring a malformed {} from the scheduler: {}", type_text, e.to_string());
  };
  switch (*type) {
    case proto::Type::kRegistered: {
      auto m = proto::decode<proto::Registered>(body);
      if (!m) return decode_failed(m.error());
      return on_registered(*m);
    }
    case proto::Type::kReregister: {
      auto m = proto::decode<proto::Reregister>(body);
      if (!m) return decode_failed(m.error());
      return on_reregister(*m);
    }
    case proto::Type::kAssign: {
      auto m = proto::decode<proto::Assign>(body);
      if (!m) return decode_failed(m.error());
      return on_assign(std::move(*m));
    }
    case proto::Type::kCancelAssigned: {
      auto m = proto::decode<proto::CancelAssigned>(body);
      if (!m) return decode_failed(m.error());
      return on_cancel(*m);
    }
    case proto::Type::kWorkerState: {
      auto m = proto::decode<proto::WorkerState>(body);
      if (!m) return decode_failed(m.error());
      return on_worker_state(*m);
    }
    case proto::Type::kError: {
      auto m = proto::decode<proto::ErrorReply>(body);
      if (!m) return decode_failed(m.error());
      return on_error(*m);
    }
    default: spdlog::warn("kiln-worker: ignoring an unexpected {} from the scheduler", type_text); return;
  }
}

// ---- registration ----

void SchedulerSession::send_register() {
  proto::Register m;
  m.name = options_.name;
  m.pool = options_.pool;
  m.capacity = options_.capacity;
  m.labels = options_.labels;
  m.running = running_jobs(/*with_recent_done=*/true);
  m.stats = stats();
  last_register_ = now_();
  if (out_.send_message(m)) {
    register_backoff_ = kFirstRegisterBackoff;
    next_register_ = last_register_ + options_.register_retry;
  } else {
    // Not connected (yet): try again soon after a start, backing off to
    // register_retry while the scheduler stays down.
    next_register_ = last_register_ + register_backoff_;
    register_backoff_ = std::min(register_backoff_ * 2, options_.register_retry);
  }
}

void SchedulerSession::on_registered(const proto::Registered& registered) {
  const bool again = ever_registered_;
  registered_ = true;
  ever_registered_ = true;
  if (registered.heartbeat_ms > 0) heartbeat_ms_ = registered.heartbeat_ms;
  if (registered.lease_ms > 0) lease_ms_ = registered.lease_ms;
  last_heartbeat_ = now_();
  spdlog::info("kiln-worker {}: {} with scheduler {} (state {}, heartbeat {} ms, lease {} ms)", options_.name,
               again ? "registered again" : "registered", registered.scheduler_id,
               registered.state.empty() ? "active" : registered.state, heartbeat_ms_, lease_ms_);
  if (!registered.state.empty() && registered.state != scheduler_state_ && again)
    spdlog::info("kiln-worker {}: the scheduler has this worker {}", options_.name, registered.state);
  scheduler_state_ = registered.state;
  // A scheduler that restarted may have lost the last outcomes sent to it.
  std::deque<Outgoing> resend;
  for (auto& [when, out] : recent_done_) resend.push_back(out);
  recent_done_.clear();
  for (auto& out : resend) {
    if (send(out)) {
      recent_done_.emplace_back(now_(), std::move(out));
    } else {
      buffer(std::move(out));
    }
  }
  flush();
  inventory_.reset();
  if (executor_.reports_inventory()) send_full_inventory();
}

void SchedulerSession::on_reregister(const proto::Reregister& reregister) {
  spdlog::info("kiln-worker {}: the scheduler asks to register again ({}); {} job(s) still running",
               options_.name, reregister.reason, executor_.running_count());
  // Every event a restarted scheduler did not recognise is answered so:
  // one register answers them all.
  const bool just_sent = !registered_ && now_() - last_register_ < kReregisterGrace;
  registered_ = false;
  if (!just_sent) send_register();
}

void SchedulerSession::on_error(const proto::ErrorReply& reply) {
  Error e = proto::to_error(reply);
  // Only a register goes unanswered by anything but `registered`: an
  // error then is the scheduler refusing this worker.
  if (!registered_ && e.kind() == ErrorKind::kFailedPrecondition) {
    spdlog::error("kiln-worker {}: the scheduler refused the registration: {}", options_.name, e.to_string());
    fatal_ = Error(ErrorKind::kFailedPrecondition,
                   fmt::format("the scheduler at {} refused to register this worker: {}; run a kiln-worker "
                               "of the scheduler's version",
                               options_.scheduler, e.message()));
    return;
  }
  if (!registered_ && e.kind() == ErrorKind::kPermissionDenied) {
    spdlog::error("kiln-worker {}: the scheduler refused the registration: {}", options_.name, e.to_string());
    fatal_ = Error(ErrorKind::kPermissionDenied,
                   fmt::format("the scheduler at {} refused to register this worker: {}", options_.scheduler,
                               e.message()));
    return;
  }
  if (!registered_ && e.kind() == ErrorKind::kBusy) {
    spdlog::warn("kiln-worker {}: {}; trying again", options_.name, e.message());
    return;
  }
  spdlog::warn("kiln-worker {}: the scheduler answered with an error: {}", options_.name, e.to_string());
}

void SchedulerSession::on_worker_state(const proto::WorkerState& state) {
  if (state.state != scheduler_state_)
    spdlog::info("kiln-worker {}: the scheduler set this worker {} (was {})", options_.name, state.state,
                 scheduler_state_.empty() ? "unknown" : scheduler_state_);
  scheduler_state_ = state.state;
}

// ---- heartbeats and inventory ----

void SchedulerSession::send_heartbeat() {
  proto::Heartbeat m;
  m.stats = stats();
  m.running = running_jobs(/*with_recent_done=*/false);
  // The periodic drift check: what the scheduler was told the store holds.
  // (Sent on the same socket after every inventory message so far, so the
  // scheduler has applied them all when it compares.)
  m.inventory_digest = inventory_.heartbeat_digest();
  out_.send_message(m);
  last_heartbeat_ = now_();
}

void SchedulerSession::send_full_inventory() {
  auto ids = executor_.list_results();
  if (!ids) {
    spdlog::warn("kiln-worker {}: cannot list the store for the scheduler's inventory: {}", options_.name,
                 ids.error().to_string());
    return;
  }
  // Register again (and so send it all again) rather than stay silent.
  if (!inventory_.send_full(*ids)) registered_ = false;
}

void SchedulerSession::store_changed(const std::vector<std::string>& added_hex,
                                     const std::vector<std::string>& removed_hex) {
  // Unregistered, changes are part of the next full inventory.
  if (registered_) inventory_.send_delta(added_hex, removed_hex);
}

proto::WorkerStats SchedulerSession::stats() {
  proto::WorkerStats s;
  executor_.fill_stats(s);
  s.running_jobs = static_cast<std::uint32_t>(executor_.running_count());
  return s;
}

std::vector<proto::RunningJob> SchedulerSession::running_jobs(bool with_recent_done) const {
  std::vector<JobKey> running = executor_.running_jobs();
  std::set<JobKey> keys(running.begin(), running.end());
  // Listed so that the scheduler keeps them until their job-done arrives.
  for (const auto& out : buffered_) {
    if (out.type == proto::Type::kJobDone) keys.emplace(out.job_id, out.attempt);
  }
  if (with_recent_done) {
    for (const auto& [when, out] : recent_done_) keys.emplace(out.job_id, out.attempt);
  }
  std::vector<proto::RunningJob> out;
  for (const auto& [id, attempt] : keys) out.push_back({id, attempt});
  return out;
}

// ---- jobs ----

void SchedulerSession::on_assign(proto::Assign assign) {
  JobKey key(assign.job_id, assign.attempt);
  if (refusing_) {
    spdlog::info("kiln-worker {}: not starting job {} (attempt {}): shutting down", options_.name,
                 assign.job_id, assign.attempt);
    return;
  }
  if (executor_.running(key)) {
    spdlog::debug("kiln-worker: job {} attempt {} is already running", assign.job_id, assign.attempt);
    return;
  }
  spdlog::debug("kiln-worker {}: job {} (attempt {}) assigned", options_.name, assign.job_id, assign.attempt);
  proto::JobEvent started{
      .type = proto::Type::kJobStarted, .job_id = assign.job_id, .attempt = assign.attempt};
  emit({proto::Type::kJobStarted, proto::encode(started), assign.job_id, assign.attempt});
  executor_.start(std::move(assign), now_());
}

void SchedulerSession::on_cancel(const proto::CancelAssigned& cancel) {
  JobKey key(cancel.job_id, cancel.attempt);
  if (executor_.running(key)) {
    spdlog::info("kiln-worker {}: cancelling job {} (attempt {})", options_.name, cancel.job_id,
                 cancel.attempt);
    executor_.cancel(key);
    return;
  }
  spdlog::debug("kiln-worker: cancel-job for job {} attempt {}, which is not running here", cancel.job_id,
                cancel.attempt);
}

void SchedulerSession::job_event(proto::JobEvent event) {
  std::string body = proto::encode(event);
  emit({event.type, std::move(body), std::move(event.job_id), event.attempt});
}

// ---- sending, buffering ----

void SchedulerSession::emit(Outgoing out) {
  if (registered_ && buffered_.empty() && send(out)) {
    if (out.type == proto::Type::kJobDone) recent_done_.emplace_back(now_(), std::move(out));
    return;
  }
  buffer(std::move(out));
}

void SchedulerSession::buffer(Outgoing out) {
  buffered_bytes_ += out.body.size();
  buffered_.push_back(std::move(out));
  // Over the bound, log text goes first (oldest first); outcomes and steps stay.
  for (auto it = buffered_.begin(); buffered_bytes_ > options_.max_buffered_bytes && it != buffered_.end();) {
    if (it->type != proto::Type::kJobLog) {
      ++it;
      continue;
    }
    if (dropped_log_bytes_ == 0)
      spdlog::warn("kiln-worker {}: not connected and over {} of buffered reports: dropping job log text",
                   options_.name, human_bytes(options_.max_buffered_bytes));
    dropped_log_bytes_ += it->body.size();
    dropped_by_job_[JobKey(it->job_id, it->attempt)] += it->body.size();
    buffered_bytes_ -= it->body.size();
    it = buffered_.erase(it);
  }
}

void SchedulerSession::flush() {
  while (registered_ && !buffered_.empty()) {
    Outgoing& out = buffered_.front();
    // Where a job's log has a gap, say so in the log itself.
    if (auto gap = dropped_by_job_.find(JobKey(out.job_id, out.attempt)); gap != dropped_by_job_.end()) {
      proto::JobEvent marker{.type = proto::Type::kJobLog, .job_id = out.job_id, .attempt = out.attempt};
      marker.log = fmt::format(
          "\n[kiln-worker {}: about {} of this job's log were dropped while the scheduler was "
          "unreachable]\n",
          options_.name, human_bytes(gap->second));
      if (!out_.send(proto::Type::kJobLog, proto::encode(marker))) return;
      dropped_by_job_.erase(gap);
    }
    if (!send(out)) return;
    buffered_bytes_ -= out.body.size();
    if (out.type == proto::Type::kJobDone) recent_done_.emplace_back(now_(), std::move(out));
    buffered_.pop_front();
  }
  if (buffered_.empty()) dropped_by_job_.clear();  // jobs whose every later event was dropped too
  if (buffered_.empty() && dropped_log_bytes_ > 0) {
    spdlog::warn("kiln-worker {}: {} of job log text were dropped while disconnected", options_.name,
                 human_bytes(dropped_log_bytes_));
    dropped_log_bytes_ = 0;
  }
}

void SchedulerSession::forget_old_done(SteadyTime now) {
  // A scheduler that dies loses what it had not processed yet: the last few
  // seconds are enough (a fake-build benchmark completes thousands a second).
  const auto window = std::min(std::chrono::milliseconds(lease_ms_), kRecentDoneWindow);
  while (!recent_done_.empty() &&
         (now - recent_done_.front().first > window || recent_done_.size() > kMaxRecentDone))
    recent_done_.pop_front();
}

}  // namespace kiln::worker
