// The scheduler's worker port: registration (and reclaiming running jobs
// after either side restarted), heartbeats (leases, stats, jobs the worker
// should or should not be running), job events and cache inventories.
// (Scheduler's members; see scheduler.h.)
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <set>

#include "common/sha256.h"
#include "scheduler/internal/handler_support.h"
#include "scheduler/scheduler.h"

namespace kiln::scheduler {
namespace {

// A worker whose inventory drifted is asked to register again at most this often.
constexpr std::int64_t kDriftRepairMs = 10'000;

}  // namespace

using internal::placement_job;

void Scheduler::on_register(const Incoming& m) {
  KILN_DECODE_OR_REPLY(reg, proto::Register, Port::kWorkers, m);
  if (reg.protocol_version != proto::kProtocolVersion) {
    spdlog::warn("worker {:?} speaks protocol version {}, this scheduler {}: refused", reg.name,
                 reg.protocol_version, proto::kProtocolVersion);
    return reply_error(
        Port::kWorkers, m.routing_id, 0,
        Error(ErrorKind::kFailedPrecondition,
              fmt::format("protocol version {} is not supported: this scheduler speaks version {}; "
                          "run kiln-worker of the same release as kiln-scheduler",
                          reg.protocol_version, proto::kProtocolVersion)));
  }
  if (reg.name.empty() || reg.capacity == 0 || reg.pool.empty()) {
    return reply_error(
        Port::kWorkers, m.routing_id, 0,
        Error(ErrorKind::kInvalidArgument,
              fmt::format("register needs a name, a pool and a capacity of at least 1 (got name "
                          "{:?}, pool {:?}, capacity {})",
                          reg.name, reg.pool, reg.capacity)));
  }
  if (m.peer && m.peer->name != reg.name) {
    spdlog::warn("worker key {} tried to register as {:?}: refused", m.peer->name, reg.name);
    return reply_error(
        Port::kWorkers, m.routing_id, 0,
        Error(ErrorKind::kPermissionDenied,
              fmt::format("this worker key is {}'s: it may register only as {:?}, not {:?} (the "
                          "file name of a key in the scheduler's workers/ is the worker's name)",
                          m.peer->name, m.peer->name, reg.name)));
  }
  const std::int64_t now_ms = clock_.steady_ms();
  if (WorkerRecord* holder = workers_.by_name(reg.name);
      holder && holder->connected && holder->routing_id != m.routing_id &&
      now_ms - holder->last_seen_ms < 2 * std::int64_t{options_.heartbeat_ms} + 500) {
    // Another connection that is alive holds the name: a second worker
    // started with the same name (or key). It does not take over; a worker
    // that restarted gets in once its old connection has gone quiet.
    spdlog::warn("a second worker tried to register as {} while the connected one is alive: refused",
                 reg.name);
    return reply_error(
        Port::kWorkers, m.routing_id, 0,
        Error(ErrorKind::kBusy,
              fmt::format("worker {} is already connected and alive; a second worker with the same "
                          "name is refused (a restarted worker is let in once its old connection "
                          "has been silent for {} ms)",
                          reg.name, 2 * options_.heartbeat_ms + 500)));
  }
  WorkerRecord& w = workers_.upsert(reg.name);
  const bool same_connection = w.connected && w.routing_id == m.routing_id;
  const bool was_connected = w.connected;
  w.pool = reg.pool;
  w.labels = reg.labels;
  w.capacity = reg.capacity;
  w.log_offsets = reg.log_offsets;
  workers_.connect(w, m.routing_id, clock_.steady_ms());
  w.last_heartbeat_wall = clock_.wall_ms();
  w.stats = reg.stats;
  update_policy_worker(w);

  // Reconcile what the worker runs with what the records say.
  const double now_s = policy_now();
  std::set<std::string> claimed;
  std::vector<proto::CancelAssigned> stale;  // sent after "registered"
  for (const proto::RunningJob& r : reg.running) {
    Job* job = jobs_.find(r.job_id);
    if (job && is_active(job->state) && job->info.worker == w.name && job->info.attempt == r.attempt) {
      claimed.insert(r.job_id);
      if (!w.running.contains(r.job_id)) {
        w.running.insert(r.job_id);
        policy_->adopt(placement_job(job->info, now_s, clock_.wall_ms()), w.name, now_s);
      }
      job->reclaim_by_ms = 0;
      if (job->state == JobState::kAssigned) {
        jobs_.set_state(*job, JobState::kRunning);
        if (job->info.started_at_ms == 0) job->info.started_at_ms = clock_.wall_ms();
        persist(*job);
      }
      spdlog::info("worker {} reclaimed job {} (attempt {})", w.name, r.job_id, r.attempt);
    } else {
      stale.push_back({.job_id = r.job_id, .attempt = r.attempt});
    }
  }
  // Jobs recorded on this worker that it no longer runs were lost with it.
  // On the same connection, an assign sent just now may still be on its way
  // (the worker registered again before reading it, e.g. after a drift
  // check): the heartbeats catch it after a lease if it never arrives.
  std::vector<Job*> lost;
  jobs_.for_each([&](Job& job) {
    if (!is_active(job.state) || job.info.worker != w.name || claimed.contains(job.info.id)) return;
    if (same_connection && job.state == JobState::kAssigned &&
        now_ms - job.assigned_steady_ms <= options_.lease_ms)
      return;
    lost.push_back(&job);
  });
  for (Job* job : lost) requeue(*job, fmt::format("worker {} restarted without it", w.name));

  spdlog::info("worker {} {} (pool {}, capacity {}, {} running)", w.name,
               was_connected ? "re-registered" : "registered", w.pool, w.capacity, claimed.size());
  reply(Port::kWorkers, m.routing_id,
        proto::Registered{.scheduler_id = scheduler_id_,
                          .heartbeat_ms = options_.heartbeat_ms,
                          .lease_ms = options_.lease_ms,
                          .state = std::string(admin_name(w.admin)),
                          .log_cap_bytes = options_.log_cap_bytes});
  for (const proto::CancelAssigned& cancel : stale) reply(Port::kWorkers, m.routing_id, cancel);
  dispatch_pending_ = true;
}

void Scheduler::on_heartbeat(const Incoming& m) {
  WorkerRecord* w = workers_.by_route(m.routing_id);
  if (!w) {
    reply(Port::kWorkers, m.routing_id,
          proto::Reregister{.reason = fmt::format("scheduler {} does not know this worker; register again",
                                                  scheduler_id_)});
    return;
  }
  KILN_DECODE_OR_REPLY(beat, proto::Heartbeat, Port::kWorkers, m);
  const std::int64_t now = clock_.steady_ms();
  w->last_seen_ms = now;
  w->last_heartbeat_wall = clock_.wall_ms();
  const bool was_fit = WorkerRegistry::fit(w->stats, options_.low_disk_bytes);
  w->stats = beat.stats;
  const bool fit = WorkerRegistry::fit(w->stats, options_.low_disk_bytes);
  if (fit != was_fit) update_policy_worker(*w);

  std::set<std::string> listed;
  for (const proto::RunningJob& r : beat.running) {
    Job* job = jobs_.find(r.job_id);
    if (job && is_active(job->state) && job->info.worker == w->name && job->info.attempt == r.attempt) {
      listed.insert(r.job_id);
    } else {
      reply(Port::kWorkers, m.routing_id, proto::CancelAssigned{.job_id = r.job_id, .attempt = r.attempt});
    }
  }
  // An assign that never arrived (dropped) shows as a job the worker does
  // not list long after it was sent.
  std::vector<Job*> missing;
  for (const std::string& id : w->running) {
    Job* job = jobs_.find(id);
    if (job && !listed.contains(id) && now - job->assigned_steady_ms > options_.lease_ms)
      missing.push_back(job);
  }
  for (Job* job : missing) requeue(*job, fmt::format("worker {} does not run it", w->name));
  if (fit && !was_fit) dispatch_pending_ = true;
  check_inventory_digest(*w, beat.inventory_digest, m.routing_id);
}

// The drift check, with each inventory message and each heartbeat: the
// worker says what its whole set digests to (everything it sent before on
// the same socket applied); if the index disagrees (a lost message, a
// restart in between), the worker registers again and resends its full
// inventory. Both digests are kept up to date per change (IdSetDigest), so
// the check costs O(1). At most once per kDriftRepairMs per worker, so a
// heartbeat sent before the worker saw the request does not ask again.
void Scheduler::check_inventory_digest(WorkerRecord& w, const std::string& digest,
                                       const std::string& routing_id) {
  if (digest.size() != 32) return;  // not sent: no full inventory yet, or an older worker
  auto ours = policy_->inventory_digest(w.name);
  if (!ours || std::memcmp(ours->data(), digest.data(), 32) == 0) return;
  const std::int64_t now = clock_.steady_ms();
  if (w.drift_reregister_ms && now - *w.drift_reregister_ms < kDriftRepairMs) return;
  w.drift_reregister_ms = now;
  spdlog::warn("worker {}: cache inventory drifted from the scheduler's index; asking for it again", w.name);
  reply(Port::kWorkers, routing_id,
        proto::Reregister{.reason = "cache inventory out of step; register again and send it in full"});
}

void Scheduler::on_job_event(const Incoming& m) {
  WorkerRecord* w = workers_.by_route(m.routing_id);
  if (!w) {
    reply(Port::kWorkers, m.routing_id,
          proto::Reregister{.reason = "job event from an unregistered worker; register again"});
    return;
  }
  KILN_DECODE_OR_REPLY(event, proto::JobEvent, Port::kWorkers, m);
  event.type = *m.type;
  w->last_seen_ms = clock_.steady_ms();
  Job* job = jobs_.find(event.job_id);
  if (!job || !is_active(job->state) || job->info.worker != w->name || job->info.attempt != event.attempt) {
    spdlog::debug("ignoring {} for {} attempt {} from {}: superseded", m.type_text, event.job_id,
                  event.attempt, w->name);
    // Dropped, but acknowledged: the worker may forget the text and the outcome.
    if (w->log_offsets && event.type == proto::Type::kJobLog) {
      ack(m.routing_id, {.job_id = event.job_id,
                         .attempt = event.attempt,
                         .log_offset = event.log_offset + event.log.size(),
                         .log_full = true});
    } else if (w->log_offsets && event.type == proto::Type::kJobDone) {
      ack(m.routing_id, {.job_id = event.job_id,
                         .attempt = event.attempt,
                         .log_offset = event.log_end,
                         .log_full = true,
                         .done = true});
    }
    if (event.type != proto::Type::kJobDone) {
      reply(Port::kWorkers, m.routing_id,
            proto::CancelAssigned{.job_id = event.job_id, .attempt = event.attempt});
    }
    return;
  }
  switch (event.type) {
    case proto::Type::kJobStarted:
      jobs_.set_state(*job, JobState::kRunning);
      job->info.started_at_ms = clock_.wall_ms();
      persist(*job);
      break;
    case proto::Type::kJobLog:
      if (!w->log_offsets) {
        append_log(*job, event.log);  // an older worker: in the order it comes
        break;
      }
      place_log_chunk(*job, event);
      ack(m.routing_id, {.job_id = event.job_id,
                         .attempt = event.attempt,
                         .log_offset = job->info.attempt_log_bytes,
                         .log_full = log_full(*job)});
      break;
    case proto::Type::kJobStep: job->info.steps.push_back(std::move(event.step)); break;
    case proto::Type::kJobDone: {
      if (w->log_offsets) {
        // The log first: complete, or marked where it is not.
        end_attempt_log(*job, event.log_end);
        ack(m.routing_id, {.job_id = event.job_id,
                           .attempt = event.attempt,
                           .log_offset = job->info.attempt_log_bytes,
                           .log_full = true,
                           .done = true});
      }
      if (event.outcome == "interrupted") {
        // The worker stopped (shutdown) while running it: not the job's fault.
        requeue(*job, fmt::format("worker {} stopped while running it", w->name));
        break;
      }
      if (!event.steps.empty()) job->info.steps = std::move(event.steps);
      job->info.result = event.result;
      job->info.pushed = event.pushed;
      JobState state = event.outcome == "succeeded"   ? JobState::kSucceeded
                       : event.outcome == "cancelled" ? JobState::kCancelled
                                                      : JobState::kFailed;
      if (state == JobState::kSucceeded) {
        if (auto wrong = check_outputs(*job, event.outputs)) {
          state = JobState::kFailed;
          event.error = *wrong;
        } else {
          job->info.output_files = std::move(event.outputs);
        }
      }
      if (state == JobState::kFailed && event.outcome != "failed") {
        event.error = fmt::format("worker reported outcome {:?}: {}", event.outcome, event.error);
      }
      finish(*job, state, event.error);
      break;
    }
    default: break;
  }
}

void Scheduler::on_inventory(const Incoming& m) {
  WorkerRecord* w = workers_.by_route(m.routing_id);
  if (!w) {
    reply(Port::kWorkers, m.routing_id, proto::Reregister{.reason = "inventory from an unregistered worker"});
    return;
  }
  KILN_DECODE_OR_REPLY(inv, proto::Inventory, Port::kWorkers, m);
  auto hex_all = [](const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (const std::string& id : ids) {
      out.push_back(
          to_hex(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(id.data()), id.size())));
    }
    return out;
  };
  policy_->inventory(w->name, inv.full, hex_all(inv.added), hex_all(inv.removed));
  check_inventory_digest(*w, inv.set_digest, m.routing_id);
}

}  // namespace kiln::scheduler
