#include "common/proto/farm_json.h"

#include <nlohmann/json.hpp>

namespace kiln::proto {
namespace {

using nlohmann::json;

json context_to_json(const ContextRef& context) {
  switch (context.kind) {
    case ContextRef::Kind::kTar: return {{"kind", "tar"}, {"digest", context.digest}, {"size", context.size}};
    case ContextRef::Kind::kGit:
      return {{"kind", "git"}, {"git_repo", context.git_repo}, {"git_commit", context.git_commit}};
    case ContextRef::Kind::kNone: break;
  }
  return {{"kind", "none"}};
}

}  // namespace

json job_to_json(const JobInfo& job, JobJsonDetail detail) {
  json j = {
      {"id", job.id},
      {"state", job.state},
      {"pool", job.pool},
      {"client", job.client},
      {"urgent", job.urgent},
      {"spec_name", job.spec_name},
      {"context", context_to_json(job.context)},
      {"worker", job.worker},
      {"attempt", job.attempt},
      {"submitted_at_ms", job.submitted_at_ms},
      {"started_at_ms", job.started_at_ms},
      {"finished_at_ms", job.finished_at_ms},
      {"result", job.result},
      {"push", job.push},
      {"pushed", job.pushed},
      {"error", job.error},
      {"log_bytes", job.log_bytes},
      {"labels", job.labels},
      {"timeout_seconds", job.timeout_seconds},
      {"estimate_seconds", job.estimate_seconds},
      {"pull", job.pull},
      {"cancel_requested", job.cancel_requested},
      {"secret_ids", job.secret_ids},  // ids only: values never leave the scheduler's memory
  };
  if (detail == JobJsonDetail::kList) return j;
  json steps = json::array();
  for (const StepInfo& step : job.steps) {
    json entry = {{"id", step.id},
                  {"description", step.description},
                  {"cached", step.cached},
                  {"seconds", step.seconds}};
    // (from ...) steps: the digest the base image resolved to on the worker.
    if (!step.image.empty()) entry["image"] = step.image;
    steps.push_back(std::move(entry));
  }
  j["steps"] = std::move(steps);
  json attempts = json::array();
  for (const Attempt& attempt : job.attempts) {
    attempts.push_back({{"number", attempt.number},
                        {"worker", attempt.worker},
                        {"assigned_at_ms", attempt.assigned_at_ms},
                        {"ended_at_ms", attempt.ended_at_ms},
                        {"outcome", attempt.outcome}});
  }
  j["attempts"] = std::move(attempts);
  // `kiln submit --output`: what was asked for, and each tar the scheduler holds.
  json outputs = json::array();
  for (const std::string& src : job.outputs) {
    json entry = {{"src", src}};
    for (const Output& o : job.output_files)
      if (o.src == src) entry.update({{"digest", o.digest}, {"size", o.size}, {"entries", o.entries}});
    outputs.push_back(std::move(entry));
  }
  j["outputs"] = std::move(outputs);
  j["spec"] = job.spec;
  return j;
}

json worker_to_json(const WorkerInfo& worker) {
  return {
      {"name", worker.name},
      {"pool", worker.pool},
      {"state", worker.state},
      {"connected", worker.connected},
      {"capacity", worker.capacity},
      {"running_jobs", worker.stats.running_jobs},
      {"running", worker.running},
      {"labels", worker.labels},
      {"disk_free_bytes", worker.stats.disk_free_bytes},
      {"disk_total_bytes", worker.stats.disk_total_bytes},
      {"store_items", worker.stats.store_items},
      {"store_bytes", worker.stats.store_bytes},
      {"image_cache_bytes", worker.stats.image_cache_bytes},
      {"cache_hits", worker.stats.cache_hits},
      {"cache_misses", worker.stats.cache_misses},
      {"healthy", worker.stats.healthy},
      {"last_heartbeat_ms", worker.last_heartbeat_ms},
  };
}

std::string dump_json(const json& document) {
  return document.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kiln::proto
