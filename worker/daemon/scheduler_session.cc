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
// Sent and not acknowledged for this long: sent again (an ack, or what it
// acknowledges, was lost on the way).
constexpr std::chrono::milliseconds kUnackedResend{5000};
// An older scheduler does not say its cap: its default.
constexpr std::uint64_t kOlderSchedulerLogCap = 16u << 20;

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
  if (registered_ && scheduler_acks()) resend_stalled(now);
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
    case proto::Type::kJobAcks: {
      auto m = proto::decode<proto::JobAcks>(body);
      if (!m) return decode_failed(m.error());
      return on_job_acks(*m);
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
  m.log_offsets = true;
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
  log_cap_bytes_ = registered.log_cap_bytes;
  // A scheduler that restarted may have lost what it had not made durable:
  // everything not acknowledged goes again, each job's log before its outcome.
  std::vector<Outgoing> resend;
  for (auto& [key, log] : logs_) {
    log.sent = log.first_held();
    log.last_progress = now_();
    if (!log.chunks.empty()) unsent_logs_.insert(key);
    if (log.done && log.done_sent) {
      log.done_sent = false;
      resend.push_back(*log.done);
    }
  }
  for (auto& [when, out] : recent_done_) resend.push_back(std::move(out));
  recent_done_.clear();
  for (auto it = resend.rbegin(); it != resend.rend(); ++it) {
    buffered_bytes_ += it->body.size();
    buffered_.push_front(std::move(*it));
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
    for (const auto& [key, log] : logs_) {
      if (log.done) keys.insert(key);
    }
  }
  std::vector<proto::RunningJob> out;
  for (const auto& [id, attempt] : keys) out.push_back({id, attempt});
  return out;
}

std::size_t SchedulerSession::buffered_count() const {
  std::size_t count = buffered_.size();
  for (const auto& [key, log] : logs_) count += log.chunks.size() + (log.done && log.done_sent ? 1 : 0);
  return count;
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
  JobKey key(event.job_id, event.attempt);
  if (event.type == proto::Type::kJobLog) return add_log(key, std::move(event.log));
  std::uint64_t mark = 0;
  if (auto it = logs_.find(key); it != logs_.end()) mark = it->second.produced;
  // The log's length (the executor's, when it dropped unwanted text itself):
  // the scheduler marks what of it never arrived.
  if (event.type == proto::Type::kJobDone) event.log_end = std::max(event.log_end, mark);
  std::string body = proto::encode(event);
  emit({event.type, std::move(body), std::move(event.job_id), event.attempt, mark});
}

// ---- sending, buffering ----

void SchedulerSession::emit(Outgoing out) {
  if (registered_ && buffered_.empty()) {
    auto log = logs_.find(JobKey(out.job_id, out.attempt));
    if ((log == logs_.end() || send_log_until(log->first, log->second, out.log_mark)) && send(out)) {
      sent_event(std::move(out));
      return;
    }
  }
  buffer(std::move(out));
}

void SchedulerSession::buffer(Outgoing out) {
  buffered_bytes_ += out.body.size();
  buffered_.push_back(std::move(out));
  enforce_bound();
}

void SchedulerSession::sent_event(Outgoing out) {
  if (out.type != proto::Type::kJobDone) return;
  JobKey key(out.job_id, out.attempt);
  if (scheduler_acks()) {
    // Kept (and sent again) until the scheduler says it recorded it.
    JobLog& log = logs_[key];
    if (!(log.sent > log.first_held() || log.done_sent)) log.last_progress = now_();
    log.done_sent = true;
    if (!log.done) log.done = std::move(out);
    return;
  }
  recent_done_.emplace_back(now_(), std::move(out));
  // Every chunk of it before the job-done went out before it; text still
  // held (printed after the job-done, or from a scheduler that acknowledged
  // logs before this one registered) goes with the job.
  forget_log(key);
}

void SchedulerSession::flush() {
  while (registered_ && !buffered_.empty()) {
    Outgoing& out = buffered_.front();
    // A job's log before the job's later events (its job-done last of all).
    if (auto log = logs_.find(JobKey(out.job_id, out.attempt)); log != logs_.end()) {
      if (!send_log_until(log->first, log->second, out.log_mark)) return;
    }
    if (!send(out)) return;
    buffered_bytes_ -= out.body.size();
    Outgoing sent = std::move(out);
    buffered_.pop_front();
    sent_event(std::move(sent));
  }
  if (!registered_) return;
  for (auto it = unsent_logs_.begin(); it != unsent_logs_.end();) {
    if (auto log = logs_.find(*it); log != logs_.end()) {
      if (!send_log_until(log->first, log->second, log->second.produced)) return;
    }
    it = unsent_logs_.erase(it);
  }
  if (buffered_.empty() && dropped_log_bytes_ > 0) {
    spdlog::warn("kiln-worker {}: {} of job log text were dropped, over {} held for the scheduler",
                 options_.name, human_bytes(dropped_log_bytes_), human_bytes(options_.max_buffered_bytes));
    dropped_log_bytes_ = 0;
  }
}

// ---- job logs ----

void SchedulerSession::add_log(const JobKey& key, std::string text) {
  if (text.empty()) return;
  JobLog& log = logs_[key];
  const std::uint64_t offset = log.produced;
  log.produced += text.size();
  const std::uint64_t cap = scheduler_acks() ? log_cap_bytes_ : kOlderSchedulerLogCap;
  // Past the cap nothing more is stored: not worth holding or sending. The
  // chunk that crosses it still goes, so the scheduler marks the truncation
  // at once; job-done's log_end says how long the log really was.
  if (log.full || offset > cap) {
    if (!log.full && !scheduler_acks()) {
      proto::JobEvent note{.type = proto::Type::kJobLog, .job_id = key.first, .attempt = key.second};
      note.log = fmt::format("\n[kiln-worker {}: this job's log is over {}: the rest is not sent]\n",
                             options_.name, human_bytes(cap));
      emit({proto::Type::kJobLog, proto::encode(note), key.first, key.second, offset});
    }
    if (!log.full) executor_.log_unwanted(key);
    log.full = true;
    free_log(key, log, 0);  // nothing more held: the executor may forget it once what is held before goes
    return;
  }
  log.held_bytes += text.size();
  log_bytes_ += text.size();
  log.chunks.push_back({offset, std::move(text)});
  if (!(registered_ && buffered_.empty() && send_log_until(key, log, log.produced))) unsent_logs_.insert(key);
  enforce_bound();
}

bool SchedulerSession::send_log_until(const JobKey& key, JobLog& log, std::uint64_t mark) {
  // An older scheduler does not see holes: say so in the text, before
  // whatever follows the gap (the text after it or, when the job printed
  // nothing more, the event at `mark`: the dropped text was the oldest held,
  // so the gap ends where sending resumes).
  auto note_gap = [&] {
    if (log.dropped_unnoted == 0 || scheduler_acks()) return true;
    proto::JobEvent note{.type = proto::Type::kJobLog, .job_id = key.first, .attempt = key.second};
    note.log = fmt::format(
        "\n[kiln-worker {}: about {} of this job's log were dropped while the scheduler was "
        "unreachable]\n",
        options_.name, human_bytes(log.dropped_unnoted));
    if (!out_.send(proto::Type::kJobLog, proto::encode(note))) return false;
    log.dropped_unnoted = 0;
    return true;
  };
  for (const Chunk& chunk : log.chunks) {
    if (chunk.offset + chunk.text.size() <= log.sent) continue;  // went out already
    if (chunk.offset >= mark) break;
    if (!note_gap()) return false;
    proto::JobEvent event{
        .type = proto::Type::kJobLog, .job_id = key.first, .attempt = key.second, .log = chunk.text};
    event.log_offset = chunk.offset;
    if (!out_.send(proto::Type::kJobLog, proto::encode(event))) return false;
    if (!(log.sent > log.first_held() || log.done_sent)) log.last_progress = now_();
    log.sent = chunk.offset + chunk.text.size();
  }
  if (mark >= log.sent && !note_gap()) return false;
  // An older scheduler acknowledges nothing: sent is as far as it goes.
  if (!scheduler_acks()) free_log(key, log, log.sent);
  return true;
}

void SchedulerSession::free_log(const JobKey& key, JobLog& log, std::uint64_t offset, bool all) {
  while (!log.chunks.empty()) {
    Chunk& chunk = log.chunks.front();
    const std::uint64_t end = chunk.offset + chunk.text.size();
    if (!all && end > offset) {
      if (chunk.offset < offset) {
        const std::size_t cut = offset - chunk.offset;
        chunk.text = chunk.text.substr(cut);
        chunk.offset = offset;
        log.held_bytes -= cut;
        log_bytes_ -= cut;
      }
      break;
    }
    log.held_bytes -= chunk.text.size();
    log_bytes_ -= chunk.text.size();
    log.chunks.pop_front();
  }
  log.sent = std::max(log.sent, log.first_held());
  if (log.first_held() > log.released) {
    log.released = log.first_held();
    executor_.log_released(key, log.released);
  }
}

void SchedulerSession::forget_log(const JobKey& key) {
  // Its held text leaves the count of held bytes with it: enforce_bound trusts that count.
  if (auto it = logs_.find(key); it != logs_.end()) {
    free_log(key, it->second, 0, /*all=*/true);
    logs_.erase(it);
  }
  unsent_logs_.erase(key);
}

void SchedulerSession::on_job_acks(const proto::JobAcks& acks) {
  const SteadyTime now = now_();
  for (const proto::JobAck& ack : acks.acks) {
    JobKey key(ack.job_id, ack.attempt);
    auto it = logs_.find(key);
    if (it == logs_.end()) continue;
    JobLog& log = it->second;
    const std::uint64_t held_from = log.first_held();
    // Full: what is held past the offset would be dropped there too.
    if (ack.log_full && !log.full) {
      log.full = true;
      executor_.log_unwanted(key);
    }
    free_log(key, log, ack.log_offset, ack.log_full);
    if (log.first_held() > held_from || ack.done) log.last_progress = now;
    if (ack.done) {
      // Recorded, and its log complete or marked: nothing of the job is
      // needed any more, text still held past the offset included.
      forget_log(key);
    }
  }
}

void SchedulerSession::resend_stalled(SteadyTime now) {
  if (now - last_resend_check_ < std::chrono::seconds(1)) return;
  last_resend_check_ = now;
  std::vector<Outgoing> resend;
  for (auto& [key, log] : logs_) {
    const bool outstanding = log.sent > log.first_held() || log.done_sent;
    if (!outstanding || now - log.last_progress < kUnackedResend) continue;
    spdlog::debug("kiln-worker {}: job {} (attempt {}): no acknowledgement for {} s; sending it again",
                  options_.name, key.first, key.second, kUnackedResend.count() / 1000);
    log.sent = log.first_held();
    log.last_progress = now;
    if (!log.chunks.empty()) unsent_logs_.insert(key);
    if (log.done_sent) {
      log.done_sent = false;
      resend.push_back(*log.done);
    }
  }
  for (auto& out : resend) buffer(std::move(out));
}

void SchedulerSession::enforce_bound() {
  // Over the bound, log text goes first (oldest first, from the job holding
  // most); outcomes and steps stay. The executor's back-pressure keeps this
  // from happening but with a misbehaving executor.
  while (buffered_bytes_ + log_bytes_ > options_.max_buffered_bytes && log_bytes_ > 0) {
    auto most = std::max_element(logs_.begin(), logs_.end(), [](const auto& a, const auto& b) {
      return a.second.held_bytes < b.second.held_bytes;
    });
    JobLog& log = most->second;
    const std::size_t size = log.chunks.front().text.size();
    if (dropped_log_bytes_ == 0)
      spdlog::warn("kiln-worker {}: over {} held for the scheduler: dropping job log text", options_.name,
                   human_bytes(options_.max_buffered_bytes));
    dropped_log_bytes_ += size;
    log.dropped_unnoted += size;
    free_log(most->first, log, log.chunks.front().offset + size);
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
