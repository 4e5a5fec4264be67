#include "worker/daemon/fake_build_executor.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ids/step_id.h"
#include "common/sha256.h"
#include "common/spec/spec.h"
#include "worker/builder/disk_space.h"

namespace kiln::worker {

Status FakeBuildExecutor::open(const ExecutorHost& host) {
  host_ = host;
  return {};
}

void FakeBuildExecutor::start(proto::Assign assign, SteadyTime now) {
  Job job{
      .job_id = std::move(assign.job_id), .attempt = assign.attempt, .spec_text = std::move(assign.job.spec)};
  if (!assign.job.outputs.empty()) {
    // Said here rather than left to the scheduler's "reported 0 outputs".
    finish(
        job, "failed",
        fmt::format("kiln-worker {} runs with --fake-build (a benchmark mode): it builds nothing and has no "
                    "files to return for --output {}; send the job to a pool of workers that build",
                    host_.worker_name, assign.job.outputs.front()));
    return;
  }
  if (options_.seconds <= 0) {
    finish(job, "succeeded", "");
    return;
  }
  job.due =
      now + std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double>(options_.seconds));
  // A line while it "runs", as a real build streams its log.
  proto::JobEvent log{.type = proto::Type::kJobLog, .job_id = job.job_id, .attempt = job.attempt};
  log.log = fmt::format("fake build of job {} on {}: running for {:g} s\n", job.job_id, host_.worker_name,
                        options_.seconds);
  host_.events->job_event(std::move(log));
  JobKey key(job.job_id, job.attempt);
  jobs_.emplace(std::move(key), std::move(job));
}

std::vector<JobKey> FakeBuildExecutor::running_jobs() const {
  std::vector<JobKey> keys;
  keys.reserve(jobs_.size());
  for (const auto& [key, job] : jobs_) keys.push_back(key);
  return keys;
}

bool FakeBuildExecutor::cancel(const JobKey& key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return false;
  finish(it->second, "cancelled", "cancelled by the scheduler");
  jobs_.erase(it);
  return true;
}

void FakeBuildExecutor::interrupt_all(const std::string& reason) {
  while (!jobs_.empty()) {
    auto it = jobs_.begin();
    // "interrupted": the scheduler runs the job again elsewhere.
    finish(it->second, "interrupted", reason);
    jobs_.erase(it);
  }
}

void FakeBuildExecutor::poll(SteadyTime now) {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second.due <= now) {
      finish(it->second, "succeeded", "");
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<std::chrono::milliseconds> FakeBuildExecutor::poll_timeout(SteadyTime now) const {
  using std::chrono::milliseconds;
  std::optional<milliseconds> timeout;
  for (const auto& [key, job] : jobs_) {
    milliseconds until =
        std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(job.due - now) + milliseconds(1));
    timeout = timeout ? std::min(*timeout, until) : until;
  }
  return timeout;
}

void FakeBuildExecutor::fill_stats(proto::WorkerStats& stats) {
  // The state directory is never created: measure where it would be.
  if (auto space = builder::disk_space(options_.state_dir.empty() ? "." : options_.state_dir)) {
    stats.disk_free_bytes = space->free_bytes;
    stats.disk_total_bytes = space->total_bytes;
  }
  stats.healthy = true;
}

void FakeBuildExecutor::finish(const Job& job, const std::string& outcome, const std::string& error) {
  // The steps a real build of this spec would report (its step ids, when it
  // needs no context), so that the scheduler's placement sees a fake farm's
  // caches as it would a real one's; else one step named by the spec's hash.
  std::vector<proto::StepInfo> steps;
  const double seconds = options_.seconds;
  if (auto parsed = spec::parse_spec(job.spec_text, "fake")) {
    if (auto ids = ids::compute_step_ids(*parsed, nullptr, "fake"); ids && !ids->empty()) {
      for (const ids::Step& s : *ids) {
        steps.push_back({.id = s.id,
                         .description = s.description,
                         .cached = false,
                         .seconds = seconds / static_cast<double>(ids->size())});
      }
    }
  }
  if (steps.empty()) {
    steps.push_back({.id = sha256_hex(job.spec_text),
                     .description = "(fake build)",
                     .cached = false,
                     .seconds = seconds});
  }
  if (outcome == "succeeded") {
    proto::JobEvent log{.type = proto::Type::kJobLog, .job_id = job.job_id, .attempt = job.attempt};
    log.log = fmt::format("fake build of job {} on {}: done\n", job.job_id, host_.worker_name);
    host_.events->job_event(std::move(log));
  }
  proto::JobEvent done{.type = proto::Type::kJobDone, .job_id = job.job_id, .attempt = job.attempt};
  if (outcome == "succeeded") {
    for (const proto::StepInfo& step : steps) {
      proto::JobEvent step_event{.type = proto::Type::kJobStep, .job_id = job.job_id, .attempt = job.attempt};
      step_event.step = step;
      host_.events->job_event(std::move(step_event));
    }
    done.result = steps.back().id;
    done.steps = std::move(steps);
  }
  done.outcome = outcome;
  done.error = error;
  host_.events->job_event(std::move(done));
}

}  // namespace kiln::worker
