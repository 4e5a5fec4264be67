#include "scheduler/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "common/ids/step_id.h"
#include "common/sha256.h"
#include "common/spec/spec.h"
#include "scheduler/tar_manifest.h"

namespace kiln::scheduler {
namespace {

constexpr std::uint32_t kDefaultLogChunk = 64 * 1024;
constexpr std::uint32_t kMaxLogChunk = 1 << 20;
constexpr std::uint32_t kMaxContextChunk = 1 << 20;
constexpr std::uint32_t kMaxWaitMs = 60'000;
// A worker whose inventory drifted is asked to register again at most this often.
constexpr std::int64_t kDriftRepairMs = 10'000;

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

bool is_ended(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}
bool is_active(const std::string& state) {
  return state == "assigned" || state == "running";
}

std::string job_id_of(std::uint64_t seq) {
  return fmt::format("j{}", seq);
}

std::optional<std::uint64_t> seq_of(const std::string& id) {
  if (id.size() < 2 || id[0] != 'j') return std::nullopt;
  std::uint64_t seq = 0;
  for (std::size_t i = 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9' || i > 19) return std::nullopt;
    seq = seq * 10 + static_cast<std::uint64_t>(id[i] - '0');
  }
  return seq;
}

std::string random_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

Error bad_body(const Incoming& m, const Error& e) {
  return Error(ErrorKind::kInvalidArgument, fmt::format("{}: {}", m.type_text, e.message()));
}

// An "error" reply may only name a request id the requester can match; a
// malformed body has none, so 0.
#define KILN_DECODE_OR_REPLY(var, T, port, m)                                                      \
  auto var##_decoded = proto::decode<T>((m).body);                                                 \
  if (!var##_decoded) {                                                                            \
    spdlog::warn("bad {} from {}: {}", (m).type_text, peer((m)), var##_decoded.error().message()); \
    reply_error(port, (m).routing_id, 0, bad_body(m, var##_decoded.error()));                      \
    return;                                                                                        \
  }                                                                                                \
  T& var = *var##_decoded;

std::string peer(const Incoming& m) {
  std::string out;
  for (unsigned char c : m.routing_id.substr(0, 32)) {
    if (c >= 0x21 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

// `now_s` is the policy's (steady) clock; `wall_now_ms` the wall clock, to
// place the job's recorded submit time on the policy's clock.
placement::PlacementJob placement_job(const proto::JobInfo& info, double now_s, std::int64_t wall_now_ms) {
  double age_s = info.submitted_at_ms > 0 && wall_now_ms > info.submitted_at_ms
                     ? static_cast<double>(wall_now_ms - info.submitted_at_ms) / 1000.0
                     : 0.0;
  return {.id = info.id,
          .pool = info.pool,
          .client = info.client,
          .urgent = info.urgent,
          .labels = info.labels,
          .steps = info.planned_steps,
          .submitted_at = now_s - age_s,
          .estimate_seconds = info.estimate_seconds};
}

}  // namespace

std::unique_ptr<Clock> make_system_clock() {
  return std::make_unique<SystemClock>();
}

struct Scheduler::JobState {
  std::uint64_t seq = 0;
  proto::JobInfo info;
  std::vector<proto::Secret> secrets;  // memory only
  std::int64_t assigned_steady_ms = 0;
  std::int64_t deadline_ms = 0;    // timeout (steady); 0: none
  std::int64_t reclaim_by_ms = 0;  // recovered active job: requeue if no worker claims it by then
};

struct Scheduler::WorkerState {
  std::string name;
  std::string pool;
  std::vector<std::string> labels;
  std::uint32_t capacity = 0;
  std::string admin = "active";  // active paused draining
  bool connected = false;
  std::string routing_id;
  std::int64_t last_seen_ms = 0;  // steady
  std::int64_t last_heartbeat_wall = 0;
  proto::WorkerStats stats;
  std::set<std::string> running;
  std::optional<std::int64_t> drift_reregister_ms;  // steady; when drift last asked it to register again
};

Scheduler::Scheduler(SchedulerOptions options, std::unique_ptr<JobDb> db,
                     std::unique_ptr<placement::Policy> policy, Clock& clock)
    : options_(std::move(options)),
      db_(std::move(db)),
      policy_(std::move(policy)),
      clock_(clock),
      contexts_(options_.state_dir + "/contexts", options_.max_context_bytes),
      scheduler_id_(random_id()) {}

Scheduler::~Scheduler() = default;

// ---- recovery ----

Status Scheduler::recover() {
  KILN_RETURN_IF_ERROR(contexts_.init());
  KILN_ASSIGN_OR_RETURN(next_seq_, db_->next_seq());
  KILN_ASSIGN_OR_RETURN(auto states, db_->worker_states());
  for (auto& [name, admin] : states) {
    auto w = std::make_unique<WorkerState>();
    w->name = name;
    w->admin = admin;
    workers_[name] = std::move(w);
  }
  for (const auto& [pool, client, rate] : options_.client_rates) policy_->set_client_rate(pool, client, rate);
  const std::int64_t now = clock_.steady_ms();
  std::size_t queued = 0, active = 0, failed_bad = 0;
  std::vector<std::uint64_t> ended;
  Status status;
  auto load = db_->for_each_job([&](std::uint64_t seq, std::string_view record) {
    if (seq >= next_seq_) next_seq_ = seq + 1;
    auto info = proto::decode_job_record(record);
    if (!info) {
      ++failed_bad;
      spdlog::error("job record {} is unreadable, skipped: {}", job_id_of(seq), info.error().message());
      return;
    }
    state_counts_[info->state]++;
    client_counts_[info->client]++;
    if (is_ended(info->state)) {
      ended.push_back(seq);
      return;
    }
    auto job = std::make_unique<JobState>();
    job->seq = seq;
    job->info = std::move(*info);
    // The record's log size may lag the chunks written after it.
    if (auto size = db_->log_size(seq); size) job->info.log_bytes = *size;
    if (is_active(job->info.state)) {
      job->reclaim_by_ms = now + options_.lease_ms;
      job->assigned_steady_ms = now;
      if (job->info.timeout_seconds > 0)
        job->deadline_ms = now + std::int64_t{job->info.timeout_seconds} * 1000;
      ++active;
    } else {
      ++queued;
    }
    jobs_.emplace(job->info.id, std::move(job));
  });
  KILN_RETURN_IF_ERROR(load);
  // Keep the newest ended jobs in memory for listings.
  std::size_t keep = std::min(ended.size(), options_.recent_ended);
  for (std::size_t i = ended.size() - keep; i < ended.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(auto info, db_->get_job(ended[i]));
    if (!info) continue;
    auto job = std::make_unique<JobState>();
    job->seq = ended[i];
    info->spec.clear();
    job->info = std::move(*info);
    recent_ended_.push_back(job->info.id);
    jobs_.emplace(job->info.id, std::move(job));
  }
  // Queued jobs back into the policy, in submission order. A job that was
  // submitted with secrets cannot run any more: they were in memory only.
  std::vector<JobState*> order;
  for (auto& [id, job] : jobs_) {
    if (job->info.state == "queued") order.push_back(job.get());
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  const double now_s = static_cast<double>(now) / 1000.0;
  for (JobState* job : order) {
    if (!job->info.secret_ids.empty()) {
      finish(*job, "failed",
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

void Scheduler::handle_bad(Port port, const std::string& routing_id, const Error& error) {
  spdlog::warn("bad message on the {} port: {}", port == Port::kClients ? "client" : "worker",
               error.message());
  reply_error(port, routing_id, 0, error);
}

template <class T>
void Scheduler::reply(Port port, const std::string& routing_id, const T& message) {
  outbox_.push_back({port, routing_id, T::kType, proto::encode(message)});
}

void Scheduler::reply_error(Port port, const std::string& routing_id, std::uint64_t request_id,
                            const Error& error) {
  outbox_.push_back(
      {port, routing_id, proto::Type::kError, proto::encode(proto::error_reply(request_id, error))});
}

// ---- clients ----

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
  if (client_names_.size() > 100000) client_names_.clear();
  client_names_[m.routing_id] = hello.client;
  reply(Port::kClients, m.routing_id,
        proto::Welcome{.request_id = hello.request_id, .scheduler_id = scheduler_id_});
}

void Scheduler::on_submit(const Incoming& m) {
  KILN_DECODE_OR_REPLY(submit, proto::Submit, Port::kClients, m);
  proto::JobSpec& spec = submit.job;
  auto fail = [&](ErrorKind kind, std::string message) {
    reply_error(Port::kClients, m.routing_id, submit.request_id, Error(kind, std::move(message)));
  };
  if (spec.pool.empty()) spec.pool = options_.default_pool;
  if (spec.client.empty()) {
    auto it = client_names_.find(m.routing_id);
    spec.client = it != client_names_.end() && !it->second.empty() ? it->second : "anonymous";
  }
  auto parsed = spec::parse_spec(spec.spec, spec.spec_name.empty() ? "spec" : spec.spec_name);
  if (!parsed) return fail(ErrorKind::kInvalidArgument, parsed.error().to_string());
  switch (spec.context.kind) {
    case proto::ContextRef::Kind::kNone: break;
    case proto::ContextRef::Kind::kTar:
      if (auto hex = ContextStore::hex_of(spec.context.digest); !hex) {
        return fail(ErrorKind::kInvalidArgument, hex.error().message());
      }
      if (!contexts_.has(spec.context.digest)) {
        return fail(ErrorKind::kNotFound, fmt::format("context {} has not been uploaded (send it with "
                                                      "put-context first; `kiln submit` does this)",
                                                      spec.context.digest));
      }
      break;
    case proto::ContextRef::Kind::kGit: {
      bool commit_ok = spec.context.git_commit.size() == 40 &&
                       is_sha256_hex(std::string(24, '0') + spec.context.git_commit);
      if (spec.context.git_repo.empty() || !commit_ok) {
        return fail(
            ErrorKind::kInvalidArgument,
            fmt::format("a git context needs a repository and a full 40-hex commit (got repository {:?}, "
                        "commit {:?})",
                        spec.context.git_repo, spec.context.git_commit));
      }
      break;
    }
  }
  for (const proto::Secret& secret : spec.secrets) {
    if (secret.id.empty()) return fail(ErrorKind::kInvalidArgument, "a secret has an empty id");
  }
  // The step ids, for placement by cache. A tar context is read here (its
  // manifest is cached per digest); a git context is not on this machine,
  // so a spec that copies from one is placed without them.
  std::vector<std::string> planned;
  {
    std::shared_ptr<ids::ContextManifest> manifest;
    if (spec.context.kind == proto::ContextRef::Kind::kTar) {
      auto loaded = context_manifest(spec.context.digest);
      if (!loaded) return fail(loaded.error().kind(), loaded.error().to_string());
      manifest = *loaded;
    }
    auto steps =
        ids::compute_step_ids(*parsed, manifest.get(), spec.spec_name.empty() ? "spec" : spec.spec_name);
    if (steps) {
      for (const ids::Step& step : *steps) {
        if (step.stage.empty()) planned.push_back(step.id);
      }
    } else if (spec.context.kind != proto::ContextRef::Kind::kGit) {
      return fail(ErrorKind::kInvalidArgument, steps.error().to_string());
    }
  }

  auto job = std::make_unique<JobState>();
  job->seq = next_seq_++;
  proto::JobInfo& info = job->info;
  info.id = job_id_of(job->seq);
  info.state = "queued";
  state_counts_["queued"]++;
  client_counts_[spec.client]++;
  info.pool = spec.pool;
  info.client = spec.client;
  info.urgent = spec.urgent;
  info.spec_name = spec.spec_name;
  info.context = spec.context;
  info.submitted_at_ms = clock_.wall_ms();
  info.spec = std::move(spec.spec);
  info.timeout_seconds = spec.timeout_seconds ? spec.timeout_seconds : options_.default_timeout_seconds;
  info.labels = spec.labels;
  info.planned_steps = std::move(planned);
  info.estimate_seconds = spec.estimate_seconds > 0 ? spec.estimate_seconds : 0;
  for (const proto::Secret& secret : spec.secrets) info.secret_ids.push_back(secret.id);
  job->secrets = std::move(spec.secrets);
  db_->put_job(job->seq, info);
  db_->put_next_seq(next_seq_);
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  policy_->add_job(placement_job(info, now_s, clock_.wall_ms()), now_s);
  spdlog::debug("job {} queued: {} from {} on pool {}", info.id, info.spec_name, info.client, info.pool);
  reply(Port::kClients, m.routing_id, proto::Submitted{.request_id = submit.request_id, .job_id = info.id});
  jobs_.emplace(info.id, std::move(job));
  dispatch_pending_ = true;
}

Result<std::shared_ptr<ids::ContextManifest>> Scheduler::context_manifest(const std::string& digest) {
  if (auto it = manifests_.find(digest); it != manifests_.end()) return it->second;
  KILN_ASSIGN_OR_RETURN(std::string hex, ContextStore::hex_of(digest));
  KILN_ASSIGN_OR_RETURN(auto manifest, tar_manifest(contexts_.path_of(hex)));
  auto shared = std::make_shared<ids::ContextManifest>(std::move(manifest));
  // CI resubmits the same few contexts: a small cache, dropped whole when full.
  if (manifests_.size() >= 256) manifests_.clear();
  manifests_[digest] = shared;
  return shared;
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

Scheduler::JobState* Scheduler::find_job(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

Result<proto::JobInfo> Scheduler::load_job(const std::string& id, bool with_spec) {
  if (JobState* job = find_job(id)) {
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

void Scheduler::on_status(const Incoming& m) {
  KILN_DECODE_OR_REPLY(get, proto::GetStatus, Port::kClients, m);
  JobState* job = find_job(get.job_id);
  if (job && get.wait_ms > 0 && !is_ended(job->info.state)) {
    waiters_.emplace(get.job_id, Waiter{Port::kClients, m.routing_id, get.request_id,
                                        clock_.steady_ms() + std::min(get.wait_ms, kMaxWaitMs), false, 0, 0});
    return;
  }
  auto info = load_job(get.job_id, true);
  if (!info) return reply_error(Port::kClients, m.routing_id, get.request_id, info.error());
  reply(Port::kClients, m.routing_id, proto::Job{.request_id = get.request_id, .job = std::move(*info)});
}

void Scheduler::on_read_log(const Incoming& m) {
  KILN_DECODE_OR_REPLY(read, proto::ReadLog, Port::kClients, m);
  std::uint32_t max = read.max_bytes == 0 ? kDefaultLogChunk : std::min(read.max_bytes, kMaxLogChunk);
  JobState* job = find_job(read.job_id);
  if (job && read.wait_ms > 0 && !is_ended(job->info.state) && read.offset >= job->info.log_bytes) {
    waiters_.emplace(read.job_id,
                     Waiter{Port::kClients, m.routing_id, read.request_id,
                            clock_.steady_ms() + std::min(read.wait_ms, kMaxWaitMs), true, read.offset, max});
    return;
  }
  auto log = read_log_any_thread(read.job_id, read.offset, max);
  if (!log) return reply_error(Port::kClients, m.routing_id, read.request_id, log.error());
  log->request_id = read.request_id;
  reply(Port::kClients, m.routing_id, *log);
}

Result<proto::Log> Scheduler::read_log_any_thread(const std::string& job_id, std::uint64_t offset,
                                                  std::size_t max_bytes) {
  auto seq = seq_of(job_id);
  if (!seq) return make_error(ErrorKind::kNotFound, fmt::format("no job {:?} on this scheduler", job_id));
  // The state is read before the data: if the job had ended, the data read
  // afterwards is the whole log.
  std::string state;
  std::uint64_t size = 0;
  if (JobState* job = find_job(job_id)) {
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
  log.complete = is_ended(state) && offset + log.data.size() >= size;
  return log;
}

void Scheduler::on_cancel(const Incoming& m) {
  KILN_DECODE_OR_REPLY(cancel, proto::CancelJob, Port::kClients, m);
  JobState* job = find_job(cancel.job_id);
  if (!job) {
    auto info = load_job(cancel.job_id, false);
    if (!info) return reply_error(Port::kClients, m.routing_id, cancel.request_id, info.error());
    return reply_error(Port::kClients, m.routing_id, cancel.request_id,
                       Error(ErrorKind::kFailedPrecondition,
                             fmt::format("job {} has already ended ({})", cancel.job_id, info->state)));
  }
  const std::string& state = job->info.state;
  if (is_ended(state)) {
    return reply_error(Port::kClients, m.routing_id, cancel.request_id,
                       Error(ErrorKind::kFailedPrecondition,
                             fmt::format("job {} has already ended ({})", cancel.job_id, state)));
  }
  if (state == "queued") {
    policy_->remove_job(job->info.id);
    finish(*job, "cancelled", "cancelled while queued");
  } else {
    job->info.cancel_requested = true;
    persist(*job);
    if (auto it = workers_.find(job->info.worker); it != workers_.end() && it->second->connected) {
      reply(Port::kWorkers, it->second->routing_id,
            proto::CancelAssigned{.job_id = job->info.id, .attempt = job->info.attempt});
    }
  }
  reply(Port::kClients, m.routing_id, proto::Ok{.request_id = cancel.request_id});
}

void Scheduler::on_list_jobs(const Incoming& m) {
  KILN_DECODE_OR_REPLY(list, proto::ListJobs, Port::kClients, m);
  std::vector<const JobState*> matched;
  for (const auto& [id, job] : jobs_) {
    if (!list.states.empty() &&
        std::find(list.states.begin(), list.states.end(), job->info.state) == list.states.end()) {
      continue;
    }
    matched.push_back(job.get());
  }
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

std::string Scheduler::worker_state_name(const WorkerState& w) const {
  if (!w.connected) return "disconnected";
  return w.admin;
}

proto::WorkerInfo Scheduler::worker_info(const WorkerState& w) const {
  proto::WorkerInfo info{.name = w.name,
                         .pool = w.pool,
                         .state = worker_state_name(w),
                         .capacity = w.capacity,
                         .labels = w.labels,
                         .stats = w.stats,
                         .last_heartbeat_ms = w.last_heartbeat_wall,
                         .connected = w.connected};
  info.running.assign(w.running.begin(), w.running.end());
  return info;
}

void Scheduler::on_list_workers(const Incoming& m) {
  KILN_DECODE_OR_REPLY(list, proto::ListWorkers, Port::kClients, m);
  proto::Workers out{.request_id = list.request_id};
  for (const auto& [name, w] : workers_) out.workers.push_back(worker_info(*w));
  reply(Port::kClients, m.routing_id, out);
}

void Scheduler::on_worker_action(const Incoming& m) {
  KILN_DECODE_OR_REPLY(action, proto::WorkerAction, Port::kClients, m);
  auto it = workers_.find(action.worker);
  if (it == workers_.end()) {
    return reply_error(Port::kClients, m.routing_id, action.request_id,
                       Error(ErrorKind::kNotFound,
                             fmt::format("no worker {:?} (`kiln admin workers` lists them)", action.worker)));
  }
  WorkerState& w = *it->second;
  if (action.action == "pause" || action.action == "unpause" || action.action == "drain") {
    w.admin = action.action == "pause" ? "paused" : action.action == "drain" ? "draining" : "active";
    db_->put_worker_state(w.name, w.admin == "active" ? "" : w.admin);
    spdlog::info("worker {} is now {}", w.name, w.admin);
    if (w.connected) reply(Port::kWorkers, w.routing_id, proto::WorkerState{.state = w.admin});
    update_policy_worker(w);
    if (w.admin == "active") dispatch_pending_ = true;
  } else if (action.action == "forget") {
    if (w.connected) {
      return reply_error(
          Port::kClients, m.routing_id, action.request_id,
          Error(ErrorKind::kFailedPrecondition,
                fmt::format("worker {} is connected; stop it (or drain it) first, then forget it", w.name)));
    }
    for (const std::string& job_id : std::vector<std::string>(w.running.begin(), w.running.end())) {
      if (JobState* job = find_job(job_id)) requeue(*job, "its worker was forgotten");
    }
    policy_->remove_worker(w.name);
    db_->put_worker_state(w.name, "");
    worker_routes_.erase(w.routing_id);
    spdlog::info("worker {} forgotten", w.name);
    workers_.erase(it);
  } else {
    return reply_error(
        Port::kClients, m.routing_id, action.request_id,
        Error(ErrorKind::kInvalidArgument,
              fmt::format("unknown worker action {:?}; expected pause, unpause, drain or forget",
                          action.action)));
  }
  reply(Port::kClients, m.routing_id, proto::Ok{.request_id = action.request_id});
}

// ---- workers ----

Scheduler::WorkerState* Scheduler::worker_by_route(const std::string& routing_id) {
  auto it = worker_routes_.find(routing_id);
  if (it == worker_routes_.end()) return nullptr;
  auto w = workers_.find(it->second);
  if (w == workers_.end() || !w->second->connected || w->second->routing_id != routing_id) return nullptr;
  return w->second.get();
}

void Scheduler::update_policy_worker(const WorkerState& w) {
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  bool accepting = w.connected && w.admin == "active" && w.stats.healthy &&
                   (w.stats.disk_total_bytes == 0 || w.stats.disk_free_bytes >= options_.low_disk_bytes);
  policy_->update_worker({.name = w.name,
                          .pool = w.pool,
                          .labels = w.labels,
                          .capacity = w.capacity,
                          .accepting = accepting,
                          .disk_free_bytes = w.stats.disk_free_bytes},
                         now_s);
}

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
  auto& slot = workers_[reg.name];
  if (!slot) {
    slot = std::make_unique<WorkerState>();
    slot->name = reg.name;
  }
  WorkerState& w = *slot;
  const bool same_connection = w.connected && w.routing_id == m.routing_id;
  if (!w.routing_id.empty() && w.routing_id != m.routing_id) worker_routes_.erase(w.routing_id);
  const bool was_connected = w.connected;
  w.pool = reg.pool;
  w.labels = reg.labels;
  w.capacity = reg.capacity;
  w.connected = true;
  w.routing_id = m.routing_id;
  w.last_seen_ms = clock_.steady_ms();
  w.last_heartbeat_wall = clock_.wall_ms();
  w.stats = reg.stats;
  worker_routes_[m.routing_id] = w.name;
  update_policy_worker(w);

  // Reconcile what the worker runs with what the records say.
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  std::set<std::string> claimed;
  std::vector<proto::CancelAssigned> stale;  // sent after "registered"
  for (const proto::RunningJob& r : reg.running) {
    JobState* job = find_job(r.job_id);
    if (job && is_active(job->info.state) && job->info.worker == w.name && job->info.attempt == r.attempt) {
      claimed.insert(r.job_id);
      if (!w.running.contains(r.job_id)) {
        w.running.insert(r.job_id);
        policy_->adopt(placement_job(job->info, now_s, clock_.wall_ms()), w.name, now_s);
      }
      job->reclaim_by_ms = 0;
      if (job->info.state == "assigned") {
        set_state(*job, "running");
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
  const std::int64_t now_ms = clock_.steady_ms();
  std::vector<JobState*> lost;
  for (auto& [id, job] : jobs_) {
    if (!is_active(job->info.state) || job->info.worker != w.name || claimed.contains(id)) continue;
    if (same_connection && job->info.state == "assigned" &&
        now_ms - job->assigned_steady_ms <= options_.lease_ms)
      continue;
    lost.push_back(job.get());
  }
  for (JobState* job : lost) requeue(*job, fmt::format("worker {} restarted without it", w.name));

  spdlog::info("worker {} {} (pool {}, capacity {}, {} running)", w.name,
               was_connected ? "re-registered" : "registered", w.pool, w.capacity, claimed.size());
  reply(Port::kWorkers, m.routing_id,
        proto::Registered{.scheduler_id = scheduler_id_,
                          .heartbeat_ms = options_.heartbeat_ms,
                          .lease_ms = options_.lease_ms,
                          .state = w.admin});
  for (const proto::CancelAssigned& cancel : stale) reply(Port::kWorkers, m.routing_id, cancel);
  dispatch_pending_ = true;
}

void Scheduler::on_heartbeat(const Incoming& m) {
  WorkerState* w = worker_by_route(m.routing_id);
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
  const bool was_accepting_inputs =
      w->stats.healthy &&
      (w->stats.disk_free_bytes >= options_.low_disk_bytes || w->stats.disk_total_bytes == 0);
  w->stats = beat.stats;
  const bool accepting_inputs = w->stats.healthy && (w->stats.disk_free_bytes >= options_.low_disk_bytes ||
                                                     w->stats.disk_total_bytes == 0);
  if (accepting_inputs != was_accepting_inputs) update_policy_worker(*w);

  std::set<std::string> listed;
  for (const proto::RunningJob& r : beat.running) {
    JobState* job = find_job(r.job_id);
    if (job && is_active(job->info.state) && job->info.worker == w->name && job->info.attempt == r.attempt) {
      listed.insert(r.job_id);
    } else {
      reply(Port::kWorkers, m.routing_id, proto::CancelAssigned{.job_id = r.job_id, .attempt = r.attempt});
    }
  }
  // An assign that never arrived (dropped) shows as a job the worker does
  // not list long after it was sent.
  std::vector<JobState*> missing;
  for (const std::string& id : w->running) {
    JobState* job = find_job(id);
    if (job && !listed.contains(id) && now - job->assigned_steady_ms > options_.lease_ms)
      missing.push_back(job);
  }
  for (JobState* job : missing) requeue(*job, fmt::format("worker {} does not run it", w->name));
  if (accepting_inputs && !was_accepting_inputs) dispatch_pending_ = true;
  check_inventory_digest(*w, beat.inventory_digest, m.routing_id);
}

// The drift check, with each inventory message and each heartbeat: the
// worker says what its whole set digests to (everything it sent before on
// the same socket applied); if the index disagrees (a lost message, a
// restart in between), the worker registers again and resends its full
// inventory. Both digests are kept up to date per change (IdSetDigest), so
// the check costs O(1). At most once per kDriftRepairMs per worker, so a
// heartbeat sent before the worker saw the request does not ask again.
void Scheduler::check_inventory_digest(WorkerState& w, const std::string& digest,
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
  WorkerState* w = worker_by_route(m.routing_id);
  if (!w) {
    reply(Port::kWorkers, m.routing_id,
          proto::Reregister{.reason = "job event from an unregistered worker; register again"});
    return;
  }
  KILN_DECODE_OR_REPLY(event, proto::JobEvent, Port::kWorkers, m);
  event.type = *m.type;
  w->last_seen_ms = clock_.steady_ms();
  JobState* job = find_job(event.job_id);
  if (!job || !is_active(job->info.state) || job->info.worker != w->name ||
      job->info.attempt != event.attempt) {
    spdlog::debug("ignoring {} for {} attempt {} from {}: superseded", m.type_text, event.job_id,
                  event.attempt, w->name);
    if (event.type != proto::Type::kJobDone) {
      reply(Port::kWorkers, m.routing_id,
            proto::CancelAssigned{.job_id = event.job_id, .attempt = event.attempt});
    }
    return;
  }
  switch (event.type) {
    case proto::Type::kJobStarted:
      set_state(*job, "running");
      job->info.started_at_ms = clock_.wall_ms();
      persist(*job);
      break;
    case proto::Type::kJobLog: append_log(*job, event.log); break;
    case proto::Type::kJobStep: job->info.steps.push_back(std::move(event.step)); break;
    case proto::Type::kJobDone: {
      if (event.outcome == "interrupted") {
        // The worker stopped (shutdown) while running it: not the job's fault.
        requeue(*job, fmt::format("worker {} stopped while running it", w->name));
        break;
      }
      if (!event.steps.empty()) job->info.steps = std::move(event.steps);
      job->info.result = event.result;
      std::string state = event.outcome == "succeeded"   ? "succeeded"
                          : event.outcome == "cancelled" ? "cancelled"
                                                         : "failed";
      if (state == "failed" && event.outcome != "failed") {
        event.error = fmt::format("worker reported outcome {:?}: {}", event.outcome, event.error);
      }
      finish(*job, state, event.error);
      break;
    }
    default: break;
  }
}

void Scheduler::on_inventory(const Incoming& m) {
  WorkerState* w = worker_by_route(m.routing_id);
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

// ---- job lifecycle ----

void Scheduler::dispatch() {
  dispatch_pending_ = false;
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  for (const placement::Assignment& a : policy_->assign(now_s)) {
    JobState* job = find_job(a.job_id);
    auto w = workers_.find(a.worker);
    if (!job || job->info.state != "queued" || w == workers_.end() || !w->second->connected) {
      // The policy is out of step with the records: undo its decision.
      spdlog::error("placement chose job {} for worker {}, which cannot take it; requeued", a.job_id,
                    a.worker);
      policy_->job_released(a.worker, a.job_id, now_s);
      if (job && job->info.state == "queued") {
        policy_->add_job(placement_job(job->info, now_s, clock_.wall_ms()), now_s);
      }
      continue;
    }
    assign(*job, *w->second);
  }
}

void Scheduler::assign(JobState& job, WorkerState& worker) {
  proto::JobInfo& info = job.info;
  set_state(job, "assigned");
  info.worker = worker.name;
  info.attempt += 1;
  info.attempts.push_back(
      {.number = info.attempt, .worker = worker.name, .assigned_at_ms = clock_.wall_ms()});
  job.assigned_steady_ms = clock_.steady_ms();
  job.deadline_ms =
      info.timeout_seconds ? job.assigned_steady_ms + std::int64_t{info.timeout_seconds} * 1000 : 0;
  job.reclaim_by_ms = 0;
  worker.running.insert(info.id);
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
                 .labels = info.labels};
  reply(Port::kWorkers, worker.routing_id, message);
  spdlog::debug("job {} attempt {} -> {}", info.id, info.attempt, worker.name);
}

void Scheduler::set_state(JobState& job, const std::string& state) {
  auto& from = state_counts_[job.info.state];
  if (from > 0) --from;
  state_counts_[state]++;
  job.info.state = state;
}

void Scheduler::persist(const JobState& job) {
  db_->put_job(job.seq, job.info);
}

void Scheduler::append_log(JobState& job, std::string_view data) {
  std::uint64_t& size = job.info.log_bytes;
  if (size >= options_.log_cap_bytes || data.empty()) return;
  if (size + data.size() > options_.log_cap_bytes) {
    std::string text(data.substr(0, options_.log_cap_bytes - size));
    text += fmt::format("\n[kiln: log truncated: over {} bytes]\n", options_.log_cap_bytes);
    db_->append_log(job.seq, size, text);
    size += text.size();  // now past the cap: nothing more is accepted
  } else {
    db_->append_log(job.seq, size, data);
    size += data.size();
  }
  answer_waiters(job, false);
}

void Scheduler::answer_waiters(JobState& job, bool ended) {
  auto [begin, end] = waiters_.equal_range(job.info.id);
  for (auto it = begin; it != end;) {
    Waiter& waiter = it->second;
    if (waiter.for_log) {
      if (!ended && waiter.offset >= job.info.log_bytes) {
        ++it;
        continue;
      }
      // Staged log chunks are readable only after commit(): answer then.
      pending_log_replies_.push_back(
          {waiter.routing_id, waiter.request_id, job.info.id, waiter.offset, waiter.max_bytes});
    } else {
      if (!ended) {
        ++it;
        continue;
      }
      proto::JobInfo info = job.info;
      reply(waiter.port, waiter.routing_id,
            proto::Job{.request_id = waiter.request_id, .job = std::move(info)});
    }
    it = waiters_.erase(it);
  }
}

void Scheduler::finish(JobState& job, const std::string& state, const std::string& error) {
  proto::JobInfo& info = job.info;
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  const bool was_active = is_active(info.state);
  if (was_active) {
    if (auto it = workers_.find(info.worker); it != workers_.end()) it->second->running.erase(info.id);
    std::vector<placement::StepReport> steps;
    for (const proto::StepInfo& s : info.steps) steps.push_back({s.id, s.cached, s.seconds});
    if (state == "succeeded") {
      policy_->job_finished(info.worker, info.id, steps, now_s);
    } else {
      policy_->job_released(info.worker, info.id, now_s);
    }
    if (!info.attempts.empty()) {
      info.attempts.back().ended_at_ms = clock_.wall_ms();
      info.attempts.back().outcome = state;
    }
  }
  set_state(job, state);
  info.error = state == "succeeded" ? std::string() : error;
  info.finished_at_ms = clock_.wall_ms();
  job.secrets.clear();
  persist(job);
  spdlog::debug("job {} {}{}{}", info.id, state, error.empty() ? "" : ": ", error);
  answer_waiters(job, true);
  info.spec.clear();  // kept in the database; not needed in memory any more
  dispatch_pending_ = true;
  recent_ended_.push_back(info.id);
  while (recent_ended_.size() > options_.recent_ended) {
    forget_ended(recent_ended_.front());
    recent_ended_.pop_front();
  }
}

void Scheduler::forget_ended(const std::string& id) {
  auto it = jobs_.find(id);
  if (it != jobs_.end() && is_ended(it->second->info.state) && !waiters_.contains(id)) jobs_.erase(it);
}

void Scheduler::requeue(JobState& job, const std::string& why) {
  proto::JobInfo& info = job.info;
  const double now_s = static_cast<double>(clock_.steady_ms()) / 1000.0;
  if (auto it = workers_.find(info.worker); it != workers_.end()) {
    it->second->running.erase(info.id);
    policy_->job_released(info.worker, info.id, now_s);
  }
  if (!info.attempts.empty() && info.attempts.back().outcome.empty()) {
    info.attempts.back().ended_at_ms = clock_.wall_ms();
    info.attempts.back().outcome = "lost";
  }
  if (info.cancel_requested) {
    set_state(job, "running");  // so finish() records the attempt as ended
    finish(job, "cancelled", fmt::format("cancelled ({})", why));
    return;
  }
  if (!info.secret_ids.empty() && job.secrets.empty()) {
    finish(job, "failed",
           fmt::format("{}, and the job's secrets were lost when the scheduler restarted; submit it again",
                       why));
    return;
  }
  spdlog::warn("job {} attempt {} back in the queue: {}", info.id, info.attempt, why);
  set_state(job, "queued");
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

void Scheduler::lose_worker(WorkerState& w, const std::string& why) {
  spdlog::warn("worker {} lost: {}", w.name, why);
  w.connected = false;
  worker_routes_.erase(w.routing_id);
  for (const std::string& id : std::vector<std::string>(w.running.begin(), w.running.end())) {
    if (JobState* job = find_job(id)) requeue(*job, fmt::format("worker {} {}", w.name, why));
  }
  w.running.clear();
  update_policy_worker(w);
}

void Scheduler::tick() {
  const std::int64_t now = clock_.steady_ms();
  // Held replies whose wait ran out.
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.deadline_ms > now) {
      ++it;
      continue;
    }
    const Waiter& waiter = it->second;
    if (waiter.for_log) {
      pending_log_replies_.push_back(
          {waiter.routing_id, waiter.request_id, it->first, waiter.offset, waiter.max_bytes});
    } else {
      auto info = load_job(it->first, true);
      if (info) {
        reply(waiter.port, waiter.routing_id,
              proto::Job{.request_id = waiter.request_id, .job = std::move(*info)});
      } else {
        reply_error(waiter.port, waiter.routing_id, waiter.request_id, info.error());
      }
    }
    it = waiters_.erase(it);
  }
  // Placement runs once per loop turn for everything that arrived in it
  // (submits, finished jobs, new workers), not once per message.
  if (now - last_lease_check_ms_ < 50) {
    if (dispatch_pending_) dispatch();
    return;
  }
  last_lease_check_ms_ = now;
  // Silent workers lose their jobs.
  for (auto& [name, w] : workers_) {
    if (w->connected && now - w->last_seen_ms > options_.lease_ms) {
      lose_worker(
          *w, fmt::format("sent nothing for {} ms (lease {} ms)", now - w->last_seen_ms, options_.lease_ms));
    }
  }
  // Timeouts, and recovered jobs no worker reclaimed.
  std::vector<JobState*> timed_out, unclaimed;
  for (auto& [id, job] : jobs_) {
    if (!is_active(job->info.state)) continue;
    if (job->deadline_ms > 0 && now > job->deadline_ms) {
      timed_out.push_back(job.get());
    } else if (job->reclaim_by_ms > 0 && now > job->reclaim_by_ms) {
      unclaimed.push_back(job.get());
    }
  }
  for (JobState* job : timed_out) {
    if (auto it = workers_.find(job->info.worker); it != workers_.end() && it->second->connected) {
      reply(Port::kWorkers, it->second->routing_id,
            proto::CancelAssigned{.job_id = job->info.id, .attempt = job->info.attempt});
    }
    finish(*job, "failed",
           fmt::format("timed out after {} s (the job's timeout)", job->info.timeout_seconds));
  }
  for (JobState* job : unclaimed) {
    requeue(*job,
            fmt::format("worker {} did not reclaim it after the scheduler restarted", job->info.worker));
  }
  dispatch();
}

Status Scheduler::commit() {
  KILN_RETURN_IF_ERROR(db_->commit());
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

std::size_t Scheduler::queued_jobs() const {
  return policy_->queued();
}

Snapshot Scheduler::snapshot(std::size_t max_queued, std::size_t max_ended) const {
  Snapshot s{.now_ms = clock_.wall_ms(), .scheduler_id = scheduler_id_, .placement = policy_->name()};
  for (const auto& [name, w] : workers_) s.workers.push_back(worker_info(*w));
  std::vector<const JobState*> queued;
  for (const auto& [state, count] : state_counts_) s.jobs_by_state[state] = count;
  s.jobs_by_client = client_counts_;
  for (const auto& [id, job] : jobs_) {
    if (job->info.state == "queued") {
      queued.push_back(job.get());
      continue;
    }
    if (is_ended(job->info.state)) continue;
    proto::JobInfo info = job->info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  }
  std::sort(queued.begin(), queued.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  if (queued.size() > max_queued) queued.resize(max_queued);
  for (const JobState* job : queued) {
    proto::JobInfo info = job->info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  }
  for (const proto::JobInfo& info : s.jobs) {
    if (auto seconds = policy_->expected_seconds(info.id)) s.expected_seconds[info.id] = *seconds;
  }
  std::size_t from = recent_ended_.size() > max_ended ? recent_ended_.size() - max_ended : 0;
  for (std::size_t i = from; i < recent_ended_.size(); ++i) {
    auto it = jobs_.find(recent_ended_[i]);
    if (it == jobs_.end()) continue;
    proto::JobInfo info = it->second->info;
    info.spec.clear();
    s.jobs.push_back(std::move(info));
  }
  return s;
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
  log.complete = is_ended(info.state) && offset + log.data.size() >= size;
  return log;
}

}  // namespace kiln::scheduler
