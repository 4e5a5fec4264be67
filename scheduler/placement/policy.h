// Placement: which queued job runs next, and on which worker (DESIGN.md,
// "Placement"). The scheduler keeps jobs, workers and their durable state;
// a Policy sees only what placement needs, is told about every change, and
// is asked for assignments whenever one could be made. The same interface is
// driven by the scheduler daemon (real clock) and by the simulator in bench/
// (virtual clock), so the policy measured there is the code that runs here.
//
//   auto policy = placement::make_policy("least-loaded");
//   policy->update_worker({.name = "w1", .pool = "linux-x86_64", .capacity = 2});
//   policy->add_job({.id = "j1", .pool = "linux-x86_64", .client = "ci"});
//   for (auto& a : policy->assign(now)) start(a.job_id, a.worker);   // each becomes running on a.worker
//   policy->job_finished("w1", "j1", report);
//
// Contract:
// - assign() returns only jobs that were added and not removed, each once,
//   to workers that accept work (update_worker's `accepting`), match the
//   job's pool and labels, and have a free slot (capacity minus the jobs
//   assigned to them and not yet finished/released). The policy counts those
//   slots itself from its own assignments.
// - After assign() the scheduler reports the end of each assignment exactly
//   once: job_finished() (with its steps) or job_released() (lost worker,
//   cancelled while running, worker forgotten). A released job the scheduler
//   wants run again is add_job()ed again.
// - remove_job() drops a queued (never assigned) job, e.g. cancelled.
// - Times are seconds on the caller's clock (monotonic; virtual in the simulator).
// Thread safety: none; the scheduler's event loop owns its policy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace kiln::placement {

struct PlacementJob {
  std::string id;
  std::string pool;
  std::string client;
  bool urgent = false;
  std::vector<std::string> labels;  // "key=value" the worker must have
  // The job's chain of step ids (hex), base image first, main stage order;
  // may be empty when unknown (then placement ignores caches).
  std::vector<std::string> steps;
  double submitted_at = 0;
  // The client's estimate of the whole job's seconds when built cold; 0: unknown.
  double estimate_seconds = 0;
};

struct PlacementWorker {
  std::string name;
  std::string pool;
  std::vector<std::string> labels;  // "key=value"
  std::uint32_t capacity = 1;
  // False while paused, draining, unhealthy, low on disk or disconnected:
  // the worker keeps what it runs but gets nothing new.
  bool accepting = true;
  std::uint64_t disk_free_bytes = 0;
};

struct StepReport {
  std::string id;
  bool cached = false;
  double seconds = 0;
};

struct Assignment {
  std::string job_id;
  std::string worker;
};

class Policy {
 public:
  virtual ~Policy() = default;

  virtual std::string name() const = 0;

  virtual void add_job(const PlacementJob& job, double now) = 0;
  virtual void remove_job(const std::string& job_id) = 0;

  // Adds a worker or changes one (same name).
  virtual void update_worker(const PlacementWorker& worker, double now) = 0;
  // Forgets a worker; the scheduler first releases its jobs.
  virtual void remove_worker(const std::string& name) = 0;

  // A worker's cache inventory: `full` replaces what was known.
  virtual void inventory(const std::string& worker, bool full, const std::vector<std::string>& added,
                         const std::vector<std::string>& removed) = 0;

  virtual std::vector<Assignment> assign(double now) = 0;

  // A job already running on `worker` that the policy did not assign (the
  // scheduler restarted and the worker reclaimed it): count it in the
  // worker's slots until job_finished/job_released.
  virtual void adopt(const PlacementJob& job, const std::string& worker, double now) = 0;

  virtual void job_finished(const std::string& worker, const std::string& job_id,
                            const std::vector<StepReport>& steps, double now) = 0;
  virtual void job_released(const std::string& worker, const std::string& job_id, double now) = 0;

  // Jobs added and not yet assigned or removed.
  virtual std::size_t queued() const = 0;
};

// "least-loaded" (the default until cache-aware placement lands): urgent
// jobs first, then in submission order; each to the matching accepting
// worker with the most free slots.
std::unique_ptr<Policy> make_least_loaded_policy();

// By name: "least-loaded" (and, as they arrive, the others). kInvalidArgument
// for an unknown name, listing the known ones.
Result<std::unique_ptr<Policy>> make_policy(const std::string& name);

}  // namespace kiln::placement
