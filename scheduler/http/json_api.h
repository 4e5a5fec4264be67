// The /v1 JSON API's documents, rendered from a FarmView and its stats.
// http_server.cc maps URLs to these; docs/api.md documents every field.
//
//   FarmStats stats = compute_stats(*view);
//   std::string body = pools_json(stats);                       // GET /v1/pools
//   auto query = parse_jobs_query("running,queued", "20");      // GET /v1/jobs?state=...&limit=...
//   if (query) body = jobs_json(*view, *query);
//
// Field names are snake_case; times are Unix milliseconds (`*_ms`) or
// seconds (`*_seconds`); an unknown figure is null. Strings from workers and
// clients that are not valid UTF-8 are rendered with U+FFFD in place of the
// bad bytes. Pure; thread safety: values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "scheduler/http/farm_view.h"
#include "scheduler/http/stats.h"

namespace kiln::http {

struct JobsQuery {
  std::vector<std::string> states;  // empty: every state
  std::uint32_t limit = 100;        // 0: no limit
};

// Parses /v1/jobs's query parameters: `state` is a comma-separated list of
// job state names (empty: all), `limit` a decimal count (empty: 100; 0: all).
// kInvalidArgument naming the bad value and the valid ones.
Result<JobsQuery> parse_jobs_query(std::string_view state, std::string_view limit);

// {"pools": [...]}
std::string pools_json(const FarmStats& stats);
// {"workers": [...]}
std::string workers_json(const FarmStats& stats);
// {"clients": [...]}
std::string clients_json(const FarmStats& stats);
// {"jobs": [...newest first, without spec and steps...], "total": matching jobs in the view}
std::string jobs_json(const FarmView& view, const JobsQuery& query);
// The view's record of a job; null when the view does not hold it.
const proto::JobInfo* find_job(const FarmView& view, std::string_view job_id);
// One job with steps, attempts and spec; nullopt when the view does not hold it.
std::optional<std::string> job_json(const FarmView& view, std::string_view job_id);
// The same document for a job record fetched from the scheduler.
std::string job_json(const FarmView& view, const proto::JobInfo& job);
// Everything summarised: scheduler, jobs by state, pools, workers, clients.
std::string stats_json(const FarmView& view, const FarmStats& stats);
// {"error": {"kind": "not found", "message": "..."}}
std::string error_json(const Error& error);

}  // namespace kiln::http
