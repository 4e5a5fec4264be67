// The scheduler's client port: hello, submit and contexts, status and logs
// (answered now or held until something changes), cancel, listings, and the
// operators' worker actions. (Scheduler's members; see scheduler.h.)
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "scheduler/internal/handler_support.h"
#include "scheduler/scheduler.h"

namespace kiln::scheduler {
namespace {

constexpr std::uint32_t kDefaultLogChunk = 64 * 1024;
constexpr std::uint32_t kMaxLogChunk = 1 << 20;
constexpr std::uint32_t kMaxContextChunk = 1 << 20;
constexpr std::uint32_t kMaxWaitMs = 60'000;

constexpr std::size_t kMaxOutputs = 32;
constexpr std::size_t kMaxOutputPath = 4096;

// A submit's --output sources: a few paths of sane length.
std::optional<Error> check_output_paths(const std::vector<std::string>& outputs) {
  if (outputs.size() > kMaxOutputs)
    return Error(ErrorKind::kInvalidArgument,
                 fmt::format("{} outputs asked for; a job may have at most {} (--output)", outputs.size(),
                             kMaxOutputs));
  for (const std::string& src : outputs) {
    if (src.empty() || src.size() > kMaxOutputPath || src.find('\0') != std::string::npos)
      return Error(ErrorKind::kInvalidArgument,
                   fmt::format("--output source {:?} is not a path of at most {} bytes",
                               src.substr(0, 64), kMaxOutputPath));
  }
  return std::nullopt;
}

}  // namespace

using internal::placement_job;

std::optional<Error> Scheduler::require_admin(const Incoming& m, std::string_view what) const {
  if (!m.peer || m.peer->role == auth::Role::kAdmin) return std::nullopt;
  return Error(
      ErrorKind::kPermissionDenied,
      fmt::format("{} needs an admin key; {} is a {} key (keys in the scheduler's admins/ may do it)", what,
                  m.peer->name, auth::role_name(m.peer->role)));
}

std::optional<Error> Scheduler::require_owner(const Incoming& m, const std::string& job_id,
                                              const std::string& client) const {
  if (!m.peer || m.peer->role == auth::Role::kAdmin || m.peer->name == client) return std::nullopt;
  return Error(
      ErrorKind::kPermissionDenied,
      fmt::format("job {} is not yours: it was submitted by another client, and client {} may see and "
                  "cancel only its own jobs (an admin key may act on every job)",
                  job_id, m.peer->name));
}

void Scheduler::on_hello(const Incoming& m) {
  KILN_DECODE_OR_REPLY(hello, proto::Hello, Port::kClients, m);
  if (hello.protocol_version != proto::kProtocolVersion) {
    spdlog::warn("client {:?} speaks protocol version {}, this scheduler {}: refused", hello.client,
                 hello.protocol_version, proto::kProtocolVersion);
    reply_error(
        Port::kClients, m.routing_id, hello.request_id,
        Error(ErrorKind::kFailedPrecondition,
              fmt::format("protocol version {} is not supported: this scheduler speaks version {}; use a "
                          "kiln client of the same release as the scheduler",
                          hello.protocol_version, proto::kProtocolVersion)));
    return;
  }
  // Remembered so that jobs submitted without a client name get this one.
  // With authentication the key's name is the client's name, whatever it says.
  if (client_names_.size() > 100000) client_names_.clear();
  client_names_[m.routing_id] = m.peer ? m.peer->name : hello.client;
  reply(Port::kClients, m.routing_id,
        proto::Welcome{.request_id = hello.request_id, .scheduler_id = scheduler_id_});
}

void Scheduler::on_submit(const Incoming& m) {
  KILN_DECODE_OR_REPLY(submit, proto::Submit, Port::kClients, m);
  proto::JobSpec& spec = submit.job;
  if (spec.pool.empty()) spec.pool = options_.default_pool;
  if (m.peer) spec.client = m.peer->name;  // not self-declared when keys say who it is
  if (!spec.secrets.empty() && !options_.authenticate && !options_.secrets_in_clear) {
    return reply_error(
        Port::kClients, m.routing_id, submit.request_id,
        Error(ErrorKind::kFailedPrecondition,
              "this scheduler runs without authentication on a network address, so it takes no "
              "secrets (they would travel in clear); start it with --key and --auth-dir"));
  }
  if (spec.client.empty()) {
    auto it = client_names_.find(m.routing_id);
    spec.client = it != client_names_.end() && !it->second.empty() ? it->second : "anonymous";
  }
  if (!spec.pull.empty() && spec.pull != "always" && spec.pull != "missing" && spec.pull != "never")
    return reply_error(Port::kClients, m.routing_id, submit.request_id,
                       Error(ErrorKind::kInvalidArgument,
                             fmt::format("--pull {:?}: expected always, missing or never", spec.pull)));
  if (auto bad = check_output_paths(spec.outputs))
    return reply_error(Port::kClients, m.routing_id, submit.request_id, *bad);
  auto planned = planner_.plan(spec);
  if (!planned) return reply_error(Port::kClients, m.routing_id, submit.request_id, planned.error());

  auto job = std::make_unique<Job>();
  job->seq = next_seq_++;
  job->state = JobState::kQueued;
  proto::JobInfo& info = job->info;
  info.id = job_id_of(job->seq);
  info.pool = spec.pool;
  info.client = spec.client;
  info.urgent = spec.urgent;
  info.spec_name = spec.spec_name;
  info.context = spec.context;
  info.submitted_at_ms = clock_.wall_ms();
  info.spec = std::move(spec.spec);
  info.timeout_seconds = spec.timeout_seconds ? spec.timeout_seconds : options_.default_timeout_seconds;
  info.labels = spec.labels;
  info.push = spec.push;
  info.outputs = spec.outputs;
  info.planned_steps = std::move(*planned);
  info.estimate_seconds = spec.estimate_seconds > 0 ? spec.estimate_seconds : 0;
  info.pull = spec.pull;
  for (const proto::Secret& secret : spec.secrets) info.secret_ids.push_back(secret.id);
  job->secrets = std::move(spec.secrets);
  Job& added = jobs_.add(std::move(job));
  db_->put_job(added.seq, added.info);
  db_->put_next_seq(next_seq_);
  const double now_s = policy_now();
  policy_->add_job(placement_job(added.info, now_s, clock_.wall_ms()), now_s);
  spdlog::debug("job {} queued: {} from {} on pool {}", added.info.id, added.info.spec_name,
                added.info.client, added.info.pool);
  reply(Port::kClients, m.routing_id,
        proto::Submitted{.request_id = submit.request_id, .job_id = added.info.id});
  dispatch_pending_ = true;
}

void Scheduler::on_put_context(const Incoming& m) {
  KILN_DECODE_OR_REPLY(put, proto::PutContext, Port::kClients, m);
  if (put.data.size() > kMaxContextChunk) {
    return reply_error(
        Port::kClients, m.routing_id, put.request_id,
        Error(ErrorKind::kInvalidArgument,
              fmt::format("context chunk of {} bytes is over the 1 MiB limit", put.data.size())));
  }
  auto result = contexts_.put(put.digest, put.total_size, put.offset, put.data);
  if (!result) {
    spdlog::warn("context upload {} failed: {}", put.digest, result.error().message());
    return reply_error(Port::kClients, m.routing_id, put.request_id, result.error());
  }
  if (result->complete && put.offset + put.data.size() == put.total_size) {
    spdlog::info("context {} stored ({} bytes)", put.digest, put.total_size);
  }
  reply(Port::kClients, m.routing_id,
        proto::ContextAck{.request_id = put.request_id,
                          .digest = put.digest,
                          .received = result->received,
                          .complete = result->complete});
}

void Scheduler::on_get_context(Port port, const Incoming& m) {
  KILN_DECODE_OR_REPLY(get, proto::GetContext, port, m);
  if (port == Port::kClients) {
    if (auto denied = require_admin(m, "downloading a build context")) {
      return reply_error(port, m.routing_id, get.request_id, *denied);
    }
  } else {
    // A worker fetches only the context of an attempt assigned to it now
    // (named in the request: the fetch may come on a socket of its own).
    const Job* job = jobs_.find(get.job_id);
    const bool assigned = job != nullptr && is_active(job->state) && job->info.attempt == get.attempt &&
                          job->info.context.kind == proto::ContextRef::Kind::kTar &&
                          job->info.context.digest == get.digest &&
                          (!m.peer || m.peer->name == job->info.worker);
    if (!assigned) {
      spdlog::warn("{} asked for context {} for job {:?} attempt {}, which is not assigned to it: refused",
                   m.peer ? m.peer->user_id() : internal::peer(m), get.digest, get.job_id, get.attempt);
      return reply_error(
          port, m.routing_id, get.request_id,
          Error(ErrorKind::kPermissionDenied,
                fmt::format("context {} belongs to no job assigned to this worker (job {:?} attempt "
                            "{})",
                            get.digest, get.job_id, get.attempt)));
    }
  }
  std::size_t max = get.max_bytes == 0 ? kMaxContextChunk : std::min(get.max_bytes, kMaxContextChunk);
  auto chunk = contexts_.read(get.digest, get.offset, max);
  if (!chunk) return reply_error(port, m.routing_id, get.request_id, chunk.error());
  reply(port, m.routing_id,
        proto::ContextChunk{.request_id = get.request_id,
                            .digest = get.digest,
                            .total_size = chunk->total_size,
                            .offset = get.offset,
                            .data = std::move(chunk->data)});
}

void Scheduler::on_status(const Incoming& m) {
  KILN_DECODE_OR_REPLY(get, proto::GetStatus, Port::kClients, m);
  Job* job = jobs_.find(get.job_id);
  if (m.peer && m.peer->role != auth::Role::kAdmin) {
    auto owner = job ? Result<proto::JobInfo>(job->info) : load_job(get.job_id, false);
    if (owner) {
      if (auto denied = require_owner(m, get.job_id, owner->client)) {
        return reply_error(Port::kClients, m.routing_id, get.request_id, *denied);
      }
    }
  }
  if (job && get.wait_ms > 0 && !is_ended(job->state)) {
    held_.hold(get.job_id, {.kind = HeldReply::Kind::kStatus,
                            .port = Port::kClients,
                            .routing_id = m.routing_id,
                            .request_id = get.request_id,
                            .deadline_ms = clock_.steady_ms() + std::min(get.wait_ms, kMaxWaitMs)});
    return;
  }
  auto info = load_job(get.job_id, true);
  if (!info) return reply_error(Port::kClients, m.routing_id, get.request_id, info.error());
  reply(Port::kClients, m.routing_id, proto::Job{.request_id = get.request_id, .job = std::move(*info)});
}

void Scheduler::on_read_log(const Incoming& m) {
  KILN_DECODE_OR_REPLY(read, proto::ReadLog, Port::kClients, m);
  std::uint32_t max = read.max_bytes == 0 ? kDefaultLogChunk : std::min(read.max_bytes, kMaxLogChunk);
  Job* job = jobs_.find(read.job_id);
  if (m.peer && m.peer->role != auth::Role::kAdmin) {
    auto owner = job ? Result<proto::JobInfo>(job->info) : load_job(read.job_id, false);
    if (owner) {
      if (auto denied = require_owner(m, read.job_id, owner->client)) {
        return reply_error(Port::kClients, m.routing_id, read.request_id, *denied);
      }
    }
  }
  if (job && read.wait_ms > 0 && !is_ended(job->state) && read.offset >= job->info.log_bytes) {
    held_.hold(read.job_id, {.kind = HeldReply::Kind::kLog,
                             .port = Port::kClients,
                             .routing_id = m.routing_id,
                             .request_id = read.request_id,
                             .deadline_ms = clock_.steady_ms() + std::min(read.wait_ms, kMaxWaitMs),
                             .offset = read.offset,
                             .max_bytes = max});
    return;
  }
  auto log = read_log_any_thread(read.job_id, read.offset, max);
  if (!log) return reply_error(Port::kClients, m.routing_id, read.request_id, log.error());
  log->request_id = read.request_id;
  reply(Port::kClients, m.routing_id, *log);
}

void Scheduler::on_cancel(const Incoming& m) {
  KILN_DECODE_OR_REPLY(cancel, proto::CancelJob, Port::kClients, m);
  Job* job = jobs_.find(cancel.job_id);
  if (!job) {
    auto info = load_job(cancel.job_id, false);
    if (!info) return reply_error(Port::kClients, m.routing_id, cancel.request_id, info.error());
    if (auto denied = require_owner(m, cancel.job_id, info->client)) {
      return reply_error(Port::kClients, m.routing_id, cancel.request_id, *denied);
    }
    return reply_error(Port::kClients, m.routing_id, cancel.request_id,
                       Error(ErrorKind::kFailedPrecondition,
                             fmt::format("job {} has already ended ({})", cancel.job_id, info->state)));
  }
  if (auto denied = require_owner(m, cancel.job_id, job->info.client)) {
    return reply_error(Port::kClients, m.routing_id, cancel.request_id, *denied);
  }
  if (is_ended(job->state)) {
    return reply_error(Port::kClients, m.routing_id, cancel.request_id,
                       Error(ErrorKind::kFailedPrecondition,
                             fmt::format("job {} has already ended ({})", cancel.job_id, job->info.state)));
  }
  if (job->state == JobState::kQueued) {
    policy_->remove_job(job->info.id);
    finish(*job, JobState::kCancelled, "cancelled while queued");
  } else {
    job->info.cancel_requested = true;
    persist(*job);
    if (WorkerRecord* w = workers_.by_name(job->info.worker); w && w->connected) {
      reply(Port::kWorkers, w->routing_id,
            proto::CancelAssigned{.job_id = job->info.id, .attempt = job->info.attempt});
    }
  }
  reply(Port::kClients, m.routing_id, proto::Ok{.request_id = cancel.request_id});
}

void Scheduler::on_list_jobs(const Incoming& m) {
  KILN_DECODE_OR_REPLY(list, proto::ListJobs, Port::kClients, m);
  std::vector<const Job*> matched;
  const bool own_only = m.peer && m.peer->role != auth::Role::kAdmin;
  jobs_.for_each([&](const Job& job) {
    if (own_only && job.info.client != m.peer->name) return;
    if (!list.states.empty() &&
        std::find(list.states.begin(), list.states.end(), job.info.state) == list.states.end()) {
      return;
    }
    matched.push_back(&job);
  });
  std::sort(matched.begin(), matched.end(), [](auto* a, auto* b) { return a->seq > b->seq; });
  proto::Jobs out{.request_id = list.request_id, .total = matched.size()};
  std::size_t limit = list.limit == 0 ? 100 : list.limit;
  for (std::size_t i = 0; i < matched.size() && i < limit; ++i) {
    proto::JobInfo info = matched[i]->info;
    info.spec.clear();
    info.steps.clear();
    out.jobs.push_back(std::move(info));
  }
  reply(Port::kClients, m.routing_id, out);
}

void Scheduler::on_list_workers(const Incoming& m) {
  KILN_DECODE_OR_REPLY(list, proto::ListWorkers, Port::kClients, m);
  if (auto denied = require_admin(m, "listing workers")) {
    return reply_error(Port::kClients, m.routing_id, list.request_id, *denied);
  }
  proto::Workers out{.request_id = list.request_id};
  workers_.for_each([&](const WorkerRecord& w) { out.workers.push_back(WorkerRegistry::info(w)); });
  reply(Port::kClients, m.routing_id, out);
}

void Scheduler::on_worker_action(const Incoming& m) {
  KILN_DECODE_OR_REPLY(action, proto::WorkerAction, Port::kClients, m);
  if (auto denied = require_admin(m, fmt::format("{} of a worker", action.action))) {
    return reply_error(Port::kClients, m.routing_id, action.request_id, *denied);
  }
  WorkerRecord* found = workers_.by_name(action.worker);
  if (found == nullptr) {
    return reply_error(Port::kClients, m.routing_id, action.request_id,
                       Error(ErrorKind::kNotFound,
                             fmt::format("no worker {:?} (`kiln admin workers` lists them)", action.worker)));
  }
  WorkerRecord& w = *found;
  if (action.action == "pause" || action.action == "unpause" || action.action == "drain") {
    w.admin = action.action == "pause"   ? WorkerAdmin::kPaused
              : action.action == "drain" ? WorkerAdmin::kDraining
                                         : WorkerAdmin::kActive;
    const std::string admin(admin_name(w.admin));
    db_->put_worker_state(w.name, w.admin == WorkerAdmin::kActive ? "" : admin);
    spdlog::info("worker {} is now {}", w.name, admin);
    if (w.connected) reply(Port::kWorkers, w.routing_id, proto::WorkerState{.state = admin});
    update_policy_worker(w);
    if (w.admin == WorkerAdmin::kActive) dispatch_pending_ = true;
  } else if (action.action == "forget") {
    if (w.connected) {
      return reply_error(
          Port::kClients, m.routing_id, action.request_id,
          Error(ErrorKind::kFailedPrecondition,
                fmt::format("worker {} is connected; stop it (or drain it) first, then forget it", w.name)));
    }
    for (const std::string& job_id : std::vector<std::string>(w.running.begin(), w.running.end())) {
      if (Job* job = jobs_.find(job_id)) requeue(*job, "its worker was forgotten");
    }
    policy_->remove_worker(w.name);
    db_->put_worker_state(w.name, "");
    spdlog::info("worker {} forgotten", w.name);
    workers_.erase(w.name);
  } else {
    return reply_error(
        Port::kClients, m.routing_id, action.request_id,
        Error(ErrorKind::kInvalidArgument,
              fmt::format("unknown worker action {:?}; expected pause, unpause, drain or forget",
                          action.action)));
  }
  reply(Port::kClients, m.routing_id, proto::Ok{.request_id = action.request_id});
}

}  // namespace kiln::scheduler
