// The JSON forms of the farm's records — a job and a worker — written once
// for both places that print them: the scheduler's HTTP API (/v1/jobs,
// /v1/jobs/ID, /v1/workers; scheduler/http/json_api.cc) and the `kiln`
// command's --json (status, jobs, admin workers). docs/api.md, "Job and
// worker objects", lists every field.
//
//   #include <nlohmann/json.hpp>  // this header only declares nlohmann::json
//   nlohmann::json j = proto::job_to_json(info, proto::JobJsonDetail::kFull);
//   j["expected_seconds"] = 120.0;  // a caller's own extras go on top
//   std::cout << proto::dump_json(j);
//
// Field names are snake_case, times Unix milliseconds (`*_ms`, 0: not yet),
// durations `*_seconds`; secrets appear by id only, never by value. Keys
// print sorted (nlohmann::json). Pure functions; thread safety: values.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/proto/messages.h"

namespace kiln::proto {

enum class JobJsonDetail {
  kList,  // what a job list shows: everything but `spec`, `steps` and `attempts`
  kFull,  // one job: with `spec`, `steps` and `attempts`
};

// id, state, pool, client, urgent, spec_name, context, worker, attempt,
// submitted_at_ms, started_at_ms, finished_at_ms, result, error, log_bytes,
// labels, timeout_seconds, estimate_seconds, pull ("" when the worker's
// --pull applies), cancel_requested, secret_ids; kFull adds spec, steps
// (each {id, description, cached, seconds}, and `image` — what the base
// resolved to — on (from ...) steps) and attempts. `context` is {"kind": "none"},
// {"kind": "tar", "digest", "size"} or {"kind": "git", "git_repo",
// "git_commit"}.
nlohmann::json job_to_json(const JobInfo& job, JobJsonDetail detail);

// name, pool, state, connected, capacity, running_jobs, running, labels,
// disk_free_bytes, disk_total_bytes, store_items, store_bytes,
// image_cache_bytes (the registry blob cache), cache_hits,
// cache_misses, healthy (the worker's own report), last_heartbeat_ms.
nlohmann::json worker_to_json(const WorkerInfo& worker);

// `document` indented by 2 and ending in a newline, with text that is not
// valid UTF-8 (names and errors come from peers) shown with U+FFFD in place
// of the bad bytes instead of throwing.
std::string dump_json(const nlohmann::json& document);

}  // namespace kiln::proto
