#include "scheduler/http/json_api.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/proto/farm_json.h"

namespace kiln::http {
namespace {

using nlohmann::json;

json optional_number(const std::optional<double>& value) {
  return value ? json(*value) : json(nullptr);
}

// The shared job form (common/proto/farm_json.h) and what only the
// scheduler knows: its placement estimate.
json job_to_json(const FarmView& view, const proto::JobInfo& job, bool detail) {
  json j = proto::job_to_json(job, detail ? proto::JobJsonDetail::kFull : proto::JobJsonDetail::kList);
  auto expected = view.expected_seconds.find(job.id);
  j["expected_seconds"] = expected != view.expected_seconds.end() ? json(expected->second) : json(nullptr);
  return j;
}

// The shared worker form and the figures stats.h derives from it.
json worker_to_json(const WorkerSummary& s) {
  json j = proto::worker_to_json(*s.info);
  j["health"] = s.health;
  j["accepting"] = s.accepting;
  j["low_disk"] = s.low_disk;
  j["disk_free_ratio"] = optional_number(s.disk_free_ratio);
  j["cache_hit_rate"] = optional_number(s.cache_hit_rate);
  j["heartbeat_age_seconds"] = s.info->last_heartbeat_ms > 0 ? json(s.heartbeat_age_seconds) : json(nullptr);
  return j;
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
  return proto::dump_json({{"pools", pools_array(stats)}});
}
std::string workers_json(const FarmStats& stats) {
  return proto::dump_json({{"workers", workers_array(stats)}});
}
std::string clients_json(const FarmStats& stats) {
  return proto::dump_json({{"clients", clients_array(stats)}});
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
  return proto::dump_json({{"jobs", jobs}, {"total", total}});
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
  return proto::dump_json({{"job", job_to_json(view, job, true)}});
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
  return proto::dump_json({
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
  return proto::dump_json(
      {{"error", {{"kind", std::string(error_kind_name(error.kind()))}, {"message", error.to_string()}}}});
}

}  // namespace kiln::http
