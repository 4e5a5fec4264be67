// Placement: which queued job runs next, and on which worker (DESIGN.md,
// "Placement"). The scheduler keeps jobs, workers and their durable state;
// a Policy sees only what placement needs, is told about every change, and
// is asked for assignments whenever one could be made. The same interface is
// driven by the scheduler daemon (real clock) and by the simulator in bench/
// (virtual clock), so the policy measured there is the code that runs here.
//
//   auto policy = placement::make_policy(placement::kDefaultPolicy);   // "kiln"
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
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/sha256.h"

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
  // When it was submitted, on the policy's clock (may be negative: before
  // the clock's start); earlier than add_job's `now` for a job queued before
  // a scheduler restart (kiln keeps its age). NaN (unset) or later than
  // `now`: submitted now.
  double submitted_at = std::numeric_limits<double>::quiet_NaN();
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

// Settings every policy may use (make_policy passes them on); defaults suit
// the scheduler. Policies ignore what does not apply to them.
struct PolicyOptions {
  // Fairness: an urgent job is ordered as if submitted this much earlier, so
  // urgent work goes first but a non-urgent job waiting longer than this
  // competes with new urgent ones as an equal (aging: nothing starves).
  double urgent_advance_seconds = 600;
  // Workers reporting less free disk than this get nothing new, like
  // accepting=false (the scheduler also applies its own threshold). 0: off;
  // a worker that reports 0 bytes (unknown) is never excluded by this.
  std::uint64_t low_disk_bytes = 0;
  // Prior for the cost of a step never seen built, until the pool has
  // learned a mean from job_finished reports.
  double default_step_seconds = 30;
  // A job waits for a busy warm worker only if that is expected to finish it
  // at least this much sooner (seconds) than the best free worker: a small
  // gain is not worth a queue wait that may grow.
  double min_gain_seconds = 1;
  // How much a second of queue wait weighs against a second of building when
  // comparing workers ("kiln"): 1 is pure finish-first; less keeps farm
  // capacity for others (a rebuilt second is a slot-second someone else
  // waits for under load); more spreads work sooner to idle, colder workers.
  // docs/placement.md shows the simulator's figures for 0.5 (the default) and 1.
  double wait_weight = 0.5;
  // Two workers expected to finish within this fraction of each other count
  // as a tie, won by the one that builds less (keeps farm capacity free).
  double near_tie_fraction = 0.1;
  std::uint64_t seed = 1;  // "random"
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

  // Optional extensions; the defaults suit a policy without the feature.

  // Fair shares (OCluster's rates): a client with rate 2 gets twice the
  // start-time share of a client with rate 1 (the default) in that pool.
  virtual void set_client_rate(const std::string& pool, const std::string& client, double rate) {
    (void)pool, (void)client, (void)rate;
  }
  // SHA-256 over the worker's known step ids (32-byte ids, sorted,
  // concatenated), to compare with the digest the worker reports; nullopt
  // when the policy keeps no inventory or does not know the worker.
  virtual std::optional<Digest> inventory_digest(const std::string& worker) const {
    (void)worker;
    return std::nullopt;
  }
  // The policy's estimate of a queued or running job's build seconds.
  virtual std::optional<double> expected_seconds(const std::string& job_id) const {
    (void)job_id;
    return std::nullopt;
  }
  // The policy's state as text (queues, workers, clients) for tests and
  // debugging; stable for a given history.
  virtual std::string dump(double now) const {
    (void)now;
    return name() + "\n";
  }
};

// "least-loaded": cache-blind; urgent
// jobs first, then in submission order; each to the matching accepting
// worker with the most free slots.
std::unique_ptr<Policy> make_least_loaded_policy(const PolicyOptions& options = {});

// "kiln" (the default, docs/placement.md): cache-aware; places each job where
// it is expected to finish first (the worker's expected wait plus the cost of
// the steps of the job's chain it lacks), with per-client fair start times,
// urgent-first with aging, and re-decision when a free worker would now
// finish a job waiting for a busy one sooner.
std::unique_ptr<Policy> make_kiln_policy(const PolicyOptions& options = {});
// "random": a uniformly random matching free worker (seeded); urgent first.
std::unique_ptr<Policy> make_random_policy(const PolicyOptions& options = {});
// "ocluster-hint": OCluster's scheduler: a job goes to the least-loaded
// worker that ran a job with the same hint (the chain's first non-base step,
// else its final step) while that worker's queued work is under the job's
// cold cost, else to the next free worker; hints never expire.
std::unique_ptr<Policy> make_ocluster_hint_policy(const PolicyOptions& options = {});

// The default for `kiln-scheduler --placement`.
inline constexpr const char* kDefaultPolicy = "kiln";

// By name: "kiln", "least-loaded", "random", "ocluster-hint".
// kInvalidArgument for an unknown name, listing the known ones.
Result<std::unique_ptr<Policy>> make_policy(const std::string& name);
Result<std::unique_ptr<Policy>> make_policy(const std::string& name, const PolicyOptions& options);

}  // namespace kiln::placement
