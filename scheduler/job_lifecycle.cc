// The scheduler's job lifecycle: placement rounds, assignment, the end of a
// job (exactly one recorded result), requeueing after a lost worker, and the
// log. (Scheduler's members; see scheduler.h.)
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "scheduler/internal/handler_support.h"
#include "scheduler/scheduler.h"

namespace kiln::scheduler {

using internal::placement_job;

void Scheduler::dispatch() {
  dispatch_pending_ = false;
  const double now_s = policy_now();
  for (const placement::Assignment& a : policy_->assign(now_s)) {
    Job* job = jobs_.find(a.job_id);
    WorkerRecord* w = workers_.by_name(a.worker);
    if (!job || job->state != JobState::kQueued || !w || !w->connected) {
      // The policy is out of step with the records: undo its decision.
      spdlog::error("placement chose job {} for worker {}, which cannot take it; requeued", a.job_id,
                    a.worker);
      policy_->job_released(a.worker, a.job_id, now_s);
      if (job && job->state == JobState::kQueued) {
        policy_->add_job(placement_job(job->info, now_s, clock_.wall_ms()), now_s);
      }
      continue;
    }
    assign(*job, *w);
  }
}

void Scheduler::assign(Job& job, WorkerRecord& worker) {
  proto::JobInfo& info = job.info;
  jobs_.set_state(job, JobState::kAssigned);
  info.worker = worker.name;
  info.attempt += 1;
  info.attempts.push_back(
      {.number = info.attempt, .worker = worker.name, .assigned_at_ms = clock_.wall_ms()});
  job.assigned_steady_ms = clock_.steady_ms();
  job.deadline_ms =
      info.timeout_seconds ? job.assigned_steady_ms + std::int64_t{info.timeout_seconds} * 1000 : 0;
  job.reclaim_by_ms = 0;
  info.attempt_log_bytes = 0;  // the new attempt's log starts at its offset 0
  worker.running.insert(info.id);
  // The end of a queue wait (again for a job that was requeued: it waited again).
  http::PoolCounters& counters = pool_counters_[info.pool];
  ++counters.jobs_started;
  const std::int64_t waited_ms = clock_.wall_ms() - info.submitted_at_ms;
  counters.add_wait(info.submitted_at_ms > 0 && waited_ms > 0 ? static_cast<double>(waited_ms) / 1000.0 : 0.0);
  persist(job);
  proto::Assign message{.job_id = info.id, .attempt = info.attempt};
  message.job = {.spec = info.spec,
                 .spec_name = info.spec_name,
                 .pool = info.pool,
                 .client = info.client,
                 .urgent = info.urgent,
                 .context = info.context,
                 .secrets = job.secrets,
                 .timeout_seconds = info.timeout_seconds,
                 .labels = info.labels,
                 .push = info.push,
                 .pull = info.pull,
                 .outputs = info.outputs};
  message.max_output_bytes = options_.max_output_bytes;
  reply(Port::kWorkers, worker.routing_id, message);
  spdlog::debug("job {} attempt {} -> {}", info.id, info.attempt, worker.name);
}

void Scheduler::persist(const Job& job) {
  db_->put_job(job.seq, job.info);
  unsaved_log_progress_.erase(job.info.id);
}

void Scheduler::append_log(Job& job, std::string_view data) {
  std::uint64_t& size = job.info.log_bytes;
  // Past the cap the marker is there already; at it exactly, new text only marks it.
  if (size > options_.log_cap_bytes || data.empty()) return;
  if (size + data.size() > options_.log_cap_bytes) {
    if (size < options_.log_cap_bytes)
      db_->append_log(job.seq, size, data.substr(0, options_.log_cap_bytes - size));
    size = options_.log_cap_bytes;
    mark_log_truncated(job);
    return;
  }
  db_->append_log(job.seq, size, data);
  size += data.size();
  answer_held(job);
}

void Scheduler::mark_log_truncated(Job& job) {
  std::uint64_t& size = job.info.log_bytes;
  if (size > options_.log_cap_bytes) return;
  const std::string marker = fmt::format("\n[kiln: log truncated: over {} bytes]\n", options_.log_cap_bytes);
  db_->append_log(job.seq, size, marker);
  size += marker.size();  // now past the cap: nothing more is accepted
  answer_held(job);
}

void Scheduler::place_log_chunk(Job& job, const proto::JobEvent& event) {
  std::uint64_t& received = job.info.attempt_log_bytes;
  const std::uint64_t start = event.log_offset;
  const std::uint64_t end = start + event.log.size();
  if (end <= received) return;  // a resent chunk this scheduler already has
  std::string_view text = event.log;
  if (start > received) {
    // Chunks between were lost on the way (not held by the worker any more, or
    // dropped in transit): say so where they belong.
    append_log(job, fmt::format("\n[kiln: {} bytes of attempt {}'s log are missing here: they never reached "
                                "the scheduler]\n",
                                start - received, job.info.attempt));
  } else {
    text.remove_prefix(received - start);
  }
  append_log(job, text);
  received = end;
  unsaved_log_progress_.insert(job.info.id);
}

void Scheduler::end_attempt_log(Job& job, std::uint64_t log_end) {
  std::uint64_t& received = job.info.attempt_log_bytes;
  if (log_end <= received) return;
  if (log_full(job)) {
    mark_log_truncated(job);  // the rest was over the cap, not lost
  } else {
    append_log(job, fmt::format("\n[kiln: the last {} bytes of attempt {}'s log are missing: they never "
                                "reached the scheduler]\n",
                                log_end - received, job.info.attempt));
  }
  received = log_end;
  unsaved_log_progress_.insert(job.info.id);
}

void Scheduler::ack(const std::string& routing_id, proto::JobAck ack) {
  auto& acks = pending_acks_[routing_id];
  auto [it, added] = acks.try_emplace({ack.job_id, ack.attempt}, ack);
  if (added) return;
  proto::JobAck& merged = it->second;
  merged.log_offset = std::max(merged.log_offset, ack.log_offset);
  merged.log_full = merged.log_full || ack.log_full;
  merged.done = merged.done || ack.done;
}

void Scheduler::answer_held(Job& job) {
  const bool ended = is_ended(job.state);
  for (HeldReply& held : held_.take_ready(job.info.id, ended, job.info.log_bytes)) {
    if (held.kind == HeldReply::Kind::kLog) {
      // Staged log chunks are readable only after commit(): answer then.
      pending_log_replies_.push_back(
          {held.routing_id, held.request_id, job.info.id, held.offset, held.max_bytes});
    } else {
      proto::JobInfo info = job.info;
      reply(held.port, held.routing_id, proto::Job{.request_id = held.request_id, .job = std::move(info)});
    }
  }
}

void Scheduler::finish(Job& job, JobState state, const std::string& error) {
  proto::JobInfo& info = job.info;
  const double now_s = policy_now();
  if (is_active(job.state)) {
    if (WorkerRecord* w = workers_.by_name(info.worker)) w->running.erase(info.id);
    std::vector<placement::StepReport> steps;
    for (const proto::StepInfo& s : info.steps) steps.push_back({s.id, s.cached, s.seconds});
    if (state == JobState::kSucceeded) {
      policy_->job_finished(info.worker, info.id, steps, now_s);
    } else {
      policy_->job_released(info.worker, info.id, now_s);
    }
    if (!info.attempts.empty()) {
      info.attempts.back().ended_at_ms = clock_.wall_ms();
      info.attempts.back().outcome = std::string(state_name(state));
    }
  }
  jobs_.set_state(job, state);
  ++pool_counters_[info.pool].jobs_finished;
  info.error = state == JobState::kSucceeded ? std::string() : error;
  info.finished_at_ms = clock_.wall_ms();
  job.secrets.clear();
  persist(job);
  spdlog::debug("job {} {}{}{}", info.id, state_name(state), error.empty() ? "" : ": ", error);
  answer_held(job);
  info.spec.clear();  // kept in the database; not needed in memory any more
  dispatch_pending_ = true;
  jobs_.remember_ended(info.id, [this](const std::string& id) { return held_.holds(id); });
}

void Scheduler::requeue(Job& job, const std::string& why) {
  proto::JobInfo& info = job.info;
  const double now_s = policy_now();
  if (WorkerRecord* w = workers_.by_name(info.worker)) {
    w->running.erase(info.id);
    policy_->job_released(info.worker, info.id, now_s);
  }
  if (!info.attempts.empty() && info.attempts.back().outcome.empty()) {
    info.attempts.back().ended_at_ms = clock_.wall_ms();
    info.attempts.back().outcome = "lost";
  }
  if (info.cancel_requested) {
    jobs_.set_state(job, JobState::kRunning);  // so finish() records the attempt as ended
    finish(job, JobState::kCancelled, fmt::format("cancelled ({})", why));
    return;
  }
  if (!info.secret_ids.empty() && job.secrets.empty()) {
    finish(job, JobState::kFailed,
           fmt::format("{}, and the job's secrets were lost when the scheduler restarted; submit it again",
                       why));
    return;
  }
  spdlog::warn("job {} attempt {} back in the queue: {}", info.id, info.attempt, why);
  jobs_.set_state(job, JobState::kQueued);
  info.worker.clear();
  info.steps.clear();
  info.started_at_ms = 0;
  job.reclaim_by_ms = 0;
  job.deadline_ms = 0;
  if (job.info.log_bytes > 0) {
    append_log(job, fmt::format("\n[kiln: attempt {} lost: {}; the job runs again]\n", info.attempt, why));
  }
  persist(job);
  policy_->add_job(placement_job(info, now_s, clock_.wall_ms()), now_s);
  dispatch_pending_ = true;
}

void Scheduler::lose_worker(WorkerRecord& w, const std::string& why) {
  spdlog::warn("worker {} lost: {}", w.name, why);
  workers_.disconnect(w);
  for (const std::string& id : std::vector<std::string>(w.running.begin(), w.running.end())) {
    if (Job* job = jobs_.find(id)) requeue(*job, fmt::format("worker {} {}", w.name, why));
  }
  w.running.clear();
  update_policy_worker(w);
}

void Scheduler::update_policy_worker(const WorkerRecord& w) {
  policy_->update_worker({.name = w.name,
                          .pool = w.pool,
                          .labels = w.labels,
                          .capacity = w.capacity,
                          .accepting = WorkerRegistry::accepting(w, options_.low_disk_bytes),
                          .disk_free_bytes = w.stats.disk_free_bytes},
                         policy_now());
}

}  // namespace kiln::scheduler
