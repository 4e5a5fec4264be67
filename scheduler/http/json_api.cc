#include "scheduler/http/json_api.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kiln::http {
namespace {

using nlohmann::json;

std::string dump(const json& document) {
  // Replace invalid UTF-8 rather than throw: names and errors come from peers.
  return document.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

json optional_number(const std::optional<double>& value) {
  return value ? json(*value) : json(nullptr);
}

const char* context_kind(proto::ContextRef::Kind kind) {
  switch (kind) {
    case proto::ContextRef::Kind::kTar: return "tar";
    case proto::ContextRef::Kind::kGit: return "git";
    case proto::ContextRef::Kind::kNone: break;
  }
  return "none";
}

json job_to_json(const FarmView& view, const proto::JobInfo& job, bool detail) {
  json j = {
      {"id", job.id},
      {"state", job.state},
      {"pool", job.pool},
      {"client", job.client},
      {"urgent", job.urgent},
      {"spec_name", job.spec_name},
      {"worker", job.worker},
      {"attempt", job.attempt},
      {"submitted_at_ms", job.submitted_at_ms},
      {"started_at_ms", job.started_at_ms},
      {"finished_at_ms", job.finished_at_ms},
      {"result", job.result},
      {"error", job.error},
      {"log_bytes", job.log_bytes},
  };
  json context = {{"kind", context_kind(job.context.kind)}};
  if (job.context.kind == proto::ContextRef::Kind::kTar) {
    context["digest"] = job.context.digest;
    context["size"] = job.context.size;
  } else if (job.context.kind == proto::ContextRef::Kind::kGit) {
    context["git_repo"] = job.context.git_repo;
    context["git_commit"] = job.context.git_commit;
  }
  j["context"] = context;
  auto expected = view.expected_seconds.find(job.id);
  j["expected_seconds"] = expected != view.expected_seconds.end() ? json(expected->second) : json(nullptr);
  if (!detail) return j;
  json steps = json::array();
  for (const proto::StepInfo& step : job.steps) {
    steps.push_back({{"id", step.id},
                     {"description", step.description},
                     {"cached", step.cached},
                     {"seconds", step.seconds}});
  }
  j["steps"] = steps;
  json attempts = json::array();
  for (const proto::Attempt& attempt : job.attempts) {
    attempts.push_back({{"number", attempt.number},
                        {"worker", attempt.worker},
                        {"assigned_at_ms", attempt.assigned_at_ms},
                        {"ended_at_ms", attempt.ended_at_ms},
                        {"outcome", attempt.outcome}});
  }
  j["attempts"] = attempts;
  j["labels"] = job.labels;
  j["timeout_seconds"] = job.timeout_seconds;
  j["cancel_requested"] = job.cancel_requested;
  j["secret_ids"] = job.secret_ids;  // ids only: values never leave the scheduler's memory
  j["spec"] = job.spec;
  return j;
}

json worker_to_json(const WorkerSummary& s) {
  const proto::WorkerInfo& w = *s.info;
  return {
      {"name", w.name},
      {"pool", w.pool},
      {"state", w.state},
      {"connected", w.connected},
      {"health", s.health},
      {"accepting", s.accepting},
      {"low_disk", s.low_disk},
      {"capacity", w.capacity},
      {"running_jobs", w.stats.running_jobs},
      {"running", w.running},
      {"labels", w.labels},
      {"disk_free_bytes", w.stats.disk_free_bytes},
      {"disk_total_bytes", w.stats.disk_total_bytes},
      {"disk_free_ratio", optional_number(s.disk_free_ratio)},
      {"store_items", w.stats.store_items},
      {"store_bytes", w.stats.store_bytes},
      {"cache_hits", w.stats.cache_hits},
      {"cache_misses", w.stats.cache_misses},
      {"cache_hit_rate", optional_number(s.cache_hit_rate)},
      {"last_heartbeat_ms", w.last_heartbeat_ms},
      {"heartbeat_age_seconds", w.last_heartbeat_ms > 0 ? json(s.heartbeat_age_seconds) : json(nullptr)},
  };
}

json pool_to_json(const PoolSummary& p) {
  return {
      {"name", p.name},
      {"target_wait_seconds", p.target_wait_seconds},
      {"queued", {{"urgent", p.queued_urgent}, {"normal", p.queued_normal}, {"total", p.queued_total()}}},
      {"running_jobs", p.running_jobs},
      {"backlog_seconds", p.backlog_seconds},
      {"expected_wait_seconds", optional_number(p.expected_wait_seconds)},
      {"workers",
       {{"known", p.workers_known},
        {"connected", p.workers_connected},
        {"active", p.workers_active},
        {"paused", p.workers_paused},
        {"draining", p.workers_draining},
        {"accepting", p.workers_accepting}}},
      {"capacity_slots", p.capacity_slots},
      {"workers_wanted", p.workers_wanted},
      {"cache_hits", p.cache_hits},
      {"cache_misses", p.cache_misses},
      {"cache_hit_rate", optional_number(p.cache_hit_rate)},
      {"low_disk_warnings", p.low_disk_warnings},
  };
}

json client_to_json(const ClientSummary& c) {
  return {{"name", c.name},
          {"submitted", c.submitted},
          {"waiting", c.waiting},
          {"running", c.running},
          {"share", c.share}};
}

json pools_array(const FarmStats& stats) {
  json out = json::array();
  for (const PoolSummary& p : stats.pools) out.push_back(pool_to_json(p));
  return out;
}
json workers_array(const FarmStats& stats) {
  json out = json::array();
  for (const WorkerSummary& s : stats.workers) out.push_back(worker_to_json(s));
  return out;
}
json clients_array(const FarmStats& stats) {
  json out = json::array();
  for (const ClientSummary& c : stats.clients) out.push_back(client_to_json(c));
  return out;
}

// Newest first: by submission time, then by id so equal times stay stable.
std::vector<const proto::JobInfo*> newest_first(const FarmView& view) {
  std::vector<const proto::JobInfo*> jobs;
  for (const proto::JobInfo& job : view.jobs) jobs.push_back(&job);
  std::stable_sort(jobs.begin(), jobs.end(), [](const proto::JobInfo* a, const proto::JobInfo* b) {
    if (a->submitted_at_ms != b->submitted_at_ms) return a->submitted_at_ms > b->submitted_at_ms;
    return a->id > b->id;
  });
  return jobs;
}

}  // namespace

Result<JobsQuery> parse_jobs_query(std::string_view state, std::string_view limit) {
  JobsQuery query;
  while (!state.empty()) {
    auto comma = state.find(',');
    std::string_view name = state.substr(0, comma);
    state = comma == std::string_view::npos ? std::string_view() : state.substr(comma + 1);
    if (name.empty()) continue;
    if (std::find_if(std::begin(kJobStates), std::end(kJobStates),
                     [&](const char* known) { return name == known; }) == std::end(kJobStates)) {
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("unknown job state '{}' in ?state=: use a comma-separated list of "
                                    "queued, assigned, running, succeeded, failed, cancelled",
                                    name));
    }
    query.states.emplace_back(name);
  }
  if (!limit.empty()) {
    std::uint32_t value = 0;
    auto [end, error] = std::from_chars(limit.data(), limit.data() + limit.size(), value);
    if (error != std::errc() || end != limit.data() + limit.size()) {
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("bad ?limit={}: give a count of jobs (0 for all)", limit));
    }
    query.limit = value;
  }
  return query;
}

std::string pools_json(const FarmStats& stats) {
  return dump({{"pools", pools_array(stats)}});
}
std::string workers_json(const FarmStats& stats) {
  return dump({{"workers", workers_array(stats)}});
}
std::string clients_json(const FarmStats& stats) {
  return dump({{"clients", clients_array(stats)}});
}

std::string jobs_json(const FarmView& view, const JobsQuery& query) {
  json jobs = json::array();
  std::uint64_t total = 0;
  for (const proto::JobInfo* job : newest_first(view)) {
    if (!query.states.empty() &&
        std::find(query.states.begin(), query.states.end(), job->state) == query.states.end()) {
      continue;
    }
    ++total;
    if (query.limit == 0 || jobs.size() < query.limit) jobs.push_back(job_to_json(view, *job, false));
  }
  return dump({{"jobs", jobs}, {"total", total}});
}

const proto::JobInfo* find_job(const FarmView& view, std::string_view job_id) {
  for (const proto::JobInfo& job : view.jobs) {
    if (job.id == job_id) return &job;
  }
  return nullptr;
}

std::optional<std::string> job_json(const FarmView& view, std::string_view job_id) {
  if (const proto::JobInfo* job = find_job(view, job_id)) return job_json(view, *job);
  return std::nullopt;
}

std::string job_json(const FarmView& view, const proto::JobInfo& job) {
  return dump({{"job", job_to_json(view, job, true)}});
}

std::string stats_json(const FarmView& view, const FarmStats& stats) {
  json jobs_by_state = json::object();
  for (const auto& [state, count] : stats.jobs_by_state) jobs_by_state[state] = count;
  std::uint64_t known = 0, connected = 0, accepting = 0, wanted = 0, queued = 0, running = 0, slots = 0,
                low_disk = 0;
  double backlog = 0;
  for (const PoolSummary& p : stats.pools) {
    known += p.workers_known;
    connected += p.workers_connected;
    accepting += p.workers_accepting;
    wanted += p.workers_wanted;
    queued += p.queued_total();
    running += p.running_jobs;
    slots += p.capacity_slots;
    low_disk += p.low_disk_warnings.size();
    backlog += p.backlog_seconds;
  }
  json totals = {
      {"workers_known", known},     {"workers_connected", connected}, {"workers_accepting", accepting},
      {"workers_wanted", wanted},   {"queued_jobs", queued},          {"running_jobs", running},
      {"backlog_seconds", backlog}, {"capacity_slots", slots},        {"low_disk_workers", low_disk}};
  return dump({
      {"scheduler",
       {{"id", view.scheduler_id},
        {"placement_policy", view.placement_policy},
        {"now_ms", view.now_ms},
        {"started_at_ms", view.started_at_ms},
        {"low_disk_threshold_bytes", view.low_disk_threshold_bytes},
        {"default_target_wait_seconds", view.default_target_wait_seconds}}},
      {"jobs_by_state", jobs_by_state},
      {"totals", totals},
      {"pools", pools_array(stats)},
      {"workers", workers_array(stats)},
      {"clients", clients_array(stats)},
  });
}

std::string error_json(const Error& error) {
  return dump(
      {{"error", {{"kind", std::string(error_kind_name(error.kind()))}, {"message", error.to_string()}}}});
}

}  // namespace kiln::http
