#include "scheduler/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "scheduler/internal/handler_support.h"

namespace kiln::scheduler {
namespace {

using internal::peer;
using internal::placement_job;

class SystemClock final : public Clock {
 public:
  std::int64_t steady_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::int64_t wall_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

std::string random_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

std::unique_ptr<Clock> make_system_clock() {
  return std::make_unique<SystemClock>();
}

Scheduler::Scheduler(SchedulerOptions options, std::unique_ptr<JobDb> db,
                     std::unique_ptr<placement::Policy> policy, Clock& clock)
    : options_(std::move(options)),
      db_(std::move(db)),
      policy_(std::move(policy)),
      clock_(clock),
      contexts_(options_.state_dir + "/contexts", options_.max_context_bytes),
      outputs_(options_.state_dir + "/outputs", options_.max_output_bytes,
               {.noun = "output",
                .limit_flag = "the scheduler's --max-output-bytes",
                .too_big_hint = "send a smaller part of the result with --output"}),
      planner_(contexts_),
      scheduler_id_(random_id()),
      jobs_(options_.recent_ended) {}

Scheduler::~Scheduler() = default;

double Scheduler::policy_now() const {
  return static_cast<double>(clock_.steady_ms()) / 1000.0;
}

// ---- recovery ----

Status Scheduler::recover() {
  KILN_RETURN_IF_ERROR(contexts_.init());
  KILN_RETURN_IF_ERROR(outputs_.init());
  KILN_ASSIGN_OR_RETURN(next_seq_, db_->next_seq());
  KILN_ASSIGN_OR_RETURN(auto states, db_->worker_states());
  for (auto& [name, admin_text] : states) {
    auto admin = parse_admin(admin_text);
    if (!admin) {
      spdlog::error("worker {}'s recorded state {:?} is unknown; it is active", name, admin_text);
      continue;
    }
    workers_.upsert(name).admin = *admin;
  }
  for (const auto& [pool, client, rate] : options_.client_rates) policy_->set_client_rate(pool, client, rate);
  const std::int64_t now = clock_.steady_ms();
  std::size_t queued = 0, active = 0, failed_bad = 0;
  std::vector<std::uint64_t> ended;
  auto load = db_->for_each_job([&](std::uint64_t seq, std::string_view record) {
    if (seq >= next_seq_) next_seq_ = seq + 1;
    auto info = proto::decode_job_record(record);
    std::optional<JobState> state;
    if (info) state = parse_state(info->state);
    if (!info || !state) {
      ++failed_bad;
      spdlog::error("job record {} is unreadable, skipped: {}", job_id_of(seq),
                    info ? fmt::format("unknown state {:?}", info->state) : info.error().message());
      return;
    }
    jobs_.count_recorded(*state, info->client);
    if (is_ended(*state)) {
      ended.push_back(seq);
      return;
    }
    auto job = std::make_unique<Job>();
    job->seq = seq;
    job->state = *state;
    job->info = std::move(*info);
    // The record's log size may lag the chunks written after it.
    if (auto size = db_->log_size(seq); size) job->info.log_bytes = *size;
    if (is_active(job->state)) {
      job->reclaim_by_ms = now + options_.lease_ms;
      job->assigned_steady_ms = now;
      if (job->info.timeout_seconds > 0)
        job->deadline_ms = now + std::int64_t{job->info.timeout_seconds} * 1000;
      ++active;
    } else {
      ++queued;
    }
    jobs_.add(std::move(job), /*counted=*/true);
  });
  KILN_RETURN_IF_ERROR(load);
  // Keep the newest ended jobs in memory for listings.
  std::size_t keep = std::min(ended.size(), options_.recent_ended);
  for (std::size_t i = ended.size() - keep; i < ended.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(auto info, db_->get_job(ended[i]));
    if (!info) continue;
    auto job = std::make_unique<Job>();
    job->seq = ended[i];
    job->state = *parse_state(info->state);
    info->spec.clear();
    job->info = std::move(*info);
    const std::string id = job->info.id;
    jobs_.add(std::move(job), /*counted=*/true);
    jobs_.remember_ended(id, [](const std::string&) { return false; });
  }
  // Queued jobs back into the policy, in submission order. A job that was
  // submitted with secrets cannot run any more: they were in memory only.
  std::vector<Job*> order;
  jobs_.for_each([&](Job& job) {
    if (job.state == JobState::kQueued) order.push_back(&job);
  });
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  const double now_s = static_cast<double>(now) / 1000.0;
  for (Job* job : order) {
    if (!job->info.secret_ids.empty()) {
      finish(*job, JobState::kFailed,
             "the job's secrets were held in memory only and were lost when the scheduler restarted; "
             "submit the job again");
      continue;
    }
    policy_->add_job(placement_job(job->info, now_s, clock_.wall_ms()), now_s);
  }
  spdlog::info(
      "recovered {} queued and {} running jobs ({} ended kept in memory, {} unreadable); next job j{}",
      queued, active, keep, failed_bad, next_seq_);
  return commit();
}

// ---- dispatch of received messages ----

void Scheduler::handle(Port port, const Incoming& m) {
  using proto::Type;
  if (!m.type) {
    spdlog::warn("unknown message type {:?} from {}", m.type_text, peer(m));
    reply_error(port, m.routing_id, 0,
                Error(ErrorKind::kInvalidArgument, fmt::format("unknown message type {:?}", m.type_text)));
    return;
  }
  if (port == Port::kClients) {
    switch (*m.type) {
      case Type::kHello: return on_hello(m);
      case Type::kSubmit: return on_submit(m);
      case Type::kPutContext: return on_put_context(m);
      case Type::kGetStatus: return on_status(m);
      case Type::kReadLog: return on_read_log(m);
      case Type::kCancelJob: return on_cancel(m);
      case Type::kListJobs: return on_list_jobs(m);
      case Type::kListWorkers: return on_list_workers(m);
      case Type::kWorkerAction: return on_worker_action(m);
      case Type::kGetContext: return on_get_context(port, m);
      case Type::kGetOutput: return on_get_output(m);
      default: break;
    }
  } else {
    switch (*m.type) {
      case Type::kRegister: return on_register(m);
      case Type::kHeartbeat: return on_heartbeat(m);
      case Type::kJobStarted:
      case Type::kJobLog:
      case Type::kJobStep:
      case Type::kJobDone: return on_job_event(m);
      case Type::kGetContext: return on_get_context(port, m);
      case Type::kInventory: return on_inventory(m);
      case Type::kPutOutput: return on_put_output(m);
      default: break;
    }
  }
  spdlog::warn("message {:?} from {} is not accepted on the {} port", m.type_text, peer(m),
               port == Port::kClients ? "client" : "worker");
  reply_error(port, m.routing_id, 0,
              Error(ErrorKind::kInvalidArgument,
                    fmt::format("message {:?} is not accepted on the {} port", m.type_text,
                                port == Port::kClients ? "client (7800)" : "worker (7801)")));
}

void Scheduler::revoke(Port port, const std::string& routing_id, const std::string& why) {
  held_.drop_route(routing_id);
  client_names_.erase(routing_id);
  if (port != Port::kWorkers) return;
  if (WorkerRecord* w = workers_.by_route(routing_id)) lose_worker(*w, why);
}

void Scheduler::handle_bad(Port port, const std::string& routing_id, const Error& error,
                           std::uint64_t request_id) {
  spdlog::warn("bad message on the {} port: {}", port == Port::kClients ? "client" : "worker",
               error.message());
  reply_error(port, routing_id, request_id, error);
}

void Scheduler::reply_error(Port port, const std::string& routing_id, std::uint64_t request_id,
                            const Error& error) {
  outbox_.push_back(
      {port, routing_id, proto::Type::kError, proto::encode(proto::error_reply(request_id, error))});
}

// ---- the loop's turn ----

void Scheduler::tick() {
  const std::int64_t now = clock_.steady_ms();
  // Held replies whose wait ran out.
  for (auto& [job_id, held] : held_.take_expired(now)) {
    if (held.kind == HeldReply::Kind::kLog) {
      pending_log_replies_.push_back({held.routing_id, held.request_id, job_id, held.offset, held.max_bytes});
      continue;
    }
    auto info = load_job(job_id, true);
    if (info) {
      reply(held.port, held.routing_id, proto::Job{.request_id = held.request_id, .job = std::move(*info)});
    } else {
      reply_error(held.port, held.routing_id, held.request_id, info.error());
    }
  }
  // Placement runs once per loop turn for everything that arrived in it
  // (submits, finished jobs, new workers), not once per message.
  if (now - last_lease_check_ms_ < 50) {
    if (dispatch_pending_) dispatch();
    return;
  }
  last_lease_check_ms_ = now;
  expire_outputs(now);
  // Silent workers lose their jobs.
  for (WorkerRecord* w : workers_.silent(now, options_.lease_ms)) {
    lose_worker(
        *w, fmt::format("sent nothing for {} ms (lease {} ms)", now - w->last_seen_ms, options_.lease_ms));
  }
  // Timeouts, and recovered jobs no worker reclaimed.
  std::vector<Job*> timed_out, unclaimed;
  jobs_.for_each([&](Job& job) {
    if (!is_active(job.state)) return;
    if (job.deadline_ms > 0 && now > job.deadline_ms) {
      timed_out.push_back(&job);
    } else if (job.reclaim_by_ms > 0 && now > job.reclaim_by_ms) {
      unclaimed.push_back(&job);
    }
  });
  for (Job* job : timed_out) {
    if (WorkerRecord* w = workers_.by_name(job->info.worker); w && w->connected) {
      reply(Port::kWorkers, w->routing_id,
            proto::CancelAssigned{.job_id = job->info.id, .attempt = job->info.attempt});
    }
    finish(*job, JobState::kFailed,
           fmt::format("timed out after {} s (the job's timeout)", job->info.timeout_seconds));
  }
  for (Job* job : unclaimed) {
    requeue(*job,
            fmt::format("worker {} did not reclaim it after the scheduler restarted", job->info.worker));
  }
  dispatch();
}

Status Scheduler::commit() {
  // Where each attempt's log has got to, in the same write as its chunks.
  for (const std::string& id : unsaved_log_progress_) {
    if (const Job* job = jobs_.find(id)) db_->put_job(job->seq, job->info);
  }
  unsaved_log_progress_.clear();
  if (auto written = db_->commit(); !written) {
    pending_acks_.clear();  // not durable: the workers keep the text and send it again
    return written;
  }
  // Only now may the workers forget what these acknowledge.
  for (auto& [routing_id, acks] : pending_acks_) {
    proto::JobAcks message;
    message.acks.reserve(acks.size());
    for (auto& [key, one] : acks) message.acks.push_back(std::move(one));
    reply(Port::kWorkers, routing_id, message);
  }
  pending_acks_.clear();
  // Log replies read committed data.
  for (const PendingLogReply& p : pending_log_replies_) {
    auto log = read_log_any_thread(p.job_id, p.offset, p.max_bytes);
    if (log) {
      log->request_id = p.request_id;
      reply(Port::kClients, p.routing_id, *log);
    } else {
      reply_error(Port::kClients, p.routing_id, p.request_id, log.error());
    }
  }
  pending_log_replies_.clear();
  return {};
}

std::vector<Outgoing> Scheduler::take_outbox() {
  return std::exchange(outbox_, {});
}

// ---- reading ----

std::size_t Scheduler::queued_jobs() const {
  return policy_->queued();
}

Snapshot Scheduler::snapshot(std::size_t max_queued, std::size_t max_ended) const {
  Snapshot s{.now_ms = clock_.wall_ms(), .scheduler_id = scheduler_id_, .placement = policy_->name()};
  workers_.for_each([&](const WorkerRecord& w) { s.workers.push_back(WorkerRegistry::info(w)); });
  s.jobs_by_state = jobs_.counts_by_state();
  s.pool_counters = pool_counters_;
  s.jobs_by_client = jobs_.counts_by_client();
  std::vector<const Job*> queued;
  jobs_.for_each([&](const Job& job) {
    if (job.state == JobState::kQueued) {
      queued.push_back(&job);
      return;
    }
    if (is_ended(job.state)) return;
    proto::JobInfo info = job.info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  });
  std::sort(queued.begin(), queued.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  if (queued.size() > max_queued) queued.resize(max_queued);
  for (const Job* job : queued) {
    proto::JobInfo info = job->info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  }
  for (const proto::JobInfo& info : s.jobs) {
    if (auto seconds = policy_->expected_seconds(info.id)) s.expected_seconds[info.id] = *seconds;
  }
  const auto& recent = jobs_.recent_ended();
  std::size_t from = recent.size() > max_ended ? recent.size() - max_ended : 0;
  for (std::size_t i = from; i < recent.size(); ++i) {
    const Job* job = jobs_.find(recent[i]);
    if (job == nullptr) continue;
    proto::JobInfo info = job->info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  }
  return s;
}

Result<proto::JobInfo> Scheduler::load_job(const std::string& id, bool with_spec) {
  if (Job* job = jobs_.find(id)) {
    proto::JobInfo info = job->info;
    if (!with_spec) info.spec.clear();
    return info;
  }
  auto seq = seq_of(id);
  std::optional<proto::JobInfo> info;
  if (seq) {
    KILN_ASSIGN_OR_RETURN(info, db_->get_job(*seq));
  }
  if (!info) {
    return make_error(ErrorKind::kNotFound,
                      fmt::format("no job {:?} on this scheduler (`kiln jobs` lists them)", id));
  }
  if (!with_spec) info->spec.clear();
  return std::move(*info);
}

Result<proto::Log> Scheduler::read_log_any_thread(const std::string& job_id, std::uint64_t offset,
                                                  std::size_t max_bytes) {
  auto seq = seq_of(job_id);
  if (!seq) return make_error(ErrorKind::kNotFound, fmt::format("no job {:?} on this scheduler", job_id));
  // The state is read before the data: if the job had ended, the data read
  // afterwards is the whole log.
  std::string state;
  std::uint64_t size = 0;
  if (Job* job = jobs_.find(job_id)) {
    state = job->info.state;
    size = job->info.log_bytes;
  } else {
    KILN_ASSIGN_OR_RETURN(auto info, db_->get_job(*seq));
    if (!info) return make_error(ErrorKind::kNotFound, fmt::format("no job {:?} on this scheduler", job_id));
    state = info->state;
    KILN_ASSIGN_OR_RETURN(size, db_->log_size(*seq));
  }
  proto::Log log{.job_id = job_id, .offset = offset, .state = state};
  if (offset < size) {
    KILN_ASSIGN_OR_RETURN(log.data,
                          db_->read_log(*seq, offset, std::min<std::uint64_t>(max_bytes, size - offset)));
  }
  auto parsed = parse_state(state);
  log.complete = parsed && is_ended(*parsed) && offset + log.data.size() >= size;
  return log;
}

Result<proto::JobInfo> Scheduler::job_committed(const std::string& job_id) {
  auto seq = seq_of(job_id);
  std::optional<proto::JobInfo> info;
  if (seq) {
    KILN_ASSIGN_OR_RETURN(info, db_->get_job(*seq));
  }
  if (!info) return make_error(ErrorKind::kNotFound, fmt::format("no job {:?} on this scheduler", job_id));
  return std::move(*info);
}

Result<proto::Log> Scheduler::read_log_committed(const std::string& job_id, std::uint64_t offset,
                                                 std::size_t max_bytes) {
  KILN_ASSIGN_OR_RETURN(proto::JobInfo info, job_committed(job_id));
  const std::uint64_t seq = *seq_of(job_id);
  KILN_ASSIGN_OR_RETURN(std::uint64_t size, db_->log_size(seq));
  proto::Log log{.job_id = job_id, .offset = offset, .state = info.state};
  if (offset < size) {
    KILN_ASSIGN_OR_RETURN(log.data,
                          db_->read_log(seq, offset, std::min<std::uint64_t>(max_bytes, size - offset)));
  }
  auto parsed = parse_state(info.state);
  log.complete = parsed && is_ended(*parsed) && offset + log.data.size() >= size;
  return log;
}

}  // namespace kiln::scheduler
