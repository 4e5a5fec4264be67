// Derived farm statistics: per worker, per pool and per client figures
// computed from one FarmView. /metrics, the /v1 JSON API and the dashboard
// all show these, so they always agree.
//
//   FarmStats stats = compute_stats(*view);
//   for (const PoolSummary& pool : stats.pools)
//     if (pool.workers_wanted > pool.workers_accepting) alert(pool.name);
//
// Definitions (docs/api.md repeats them for operators):
// - A worker is *accepting* when it is connected, its state is "active", it
//   reports itself healthy and it is not low on disk: only those get new jobs.
// - A job's *expected seconds*: FarmView::expected_seconds[id], else the mean
//   run time of the pool's succeeded jobs in the view, else
//   FarmView::default_job_seconds.
// - A pool's *backlog seconds*: the expected seconds of its queued jobs plus
//   the remaining expected seconds (expected minus elapsed, at least 0) of
//   its assigned and running jobs.
// - *Expected wait*: backlog / the accepting workers' total capacity (slots);
//   0 without backlog; unknown (nullopt) when work waits and no slot exists.
// - *Workers wanted*: the fewest workers that would bring the expected wait
//   under the pool's target, treating the backlog as divisible work:
//       wanted = ceil(backlog_seconds / (target_wait_seconds * mean_capacity))
//   with mean_capacity the mean capacity of the pool's connected workers
//   (of all its known workers when none is connected; 1 when it has none),
//   and at least 1 while the pool has any queued or running job. A job
//   longer than the target cannot be split: the formula then asks for the
//   workers that keep the queue moving, not for a shorter wait than the
//   longest job.
// - *Cache hit rate*: hits / (hits + misses) of the workers' step caches
//   (cumulative counters the workers report); nullopt before any lookup.
// - A client's *share*: its assigned+running jobs / all assigned+running jobs.
// Pure functions; thread safety: values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/http/farm_view.h"

namespace kiln::http {

// The six job states in lifecycle order.
inline constexpr const char* kJobStates[] = {"queued",    "assigned", "running",
                                             "succeeded", "failed",   "cancelled"};

struct WorkerSummary {
  const proto::WorkerInfo* info = nullptr;  // points into the FarmView
  std::optional<double> cache_hit_rate;
  std::optional<double> disk_free_ratio;  // free / total; nullopt when total is unknown
  double heartbeat_age_seconds = 0;       // now - last heartbeat; 0 when never seen
  bool low_disk = false;
  bool accepting = false;
  // ok | low-disk | unhealthy | stale | disconnected (the first that applies,
  // from the right).
  std::string health;
};

struct PoolSummary {
  std::string name;
  double target_wait_seconds = 0;
  std::uint64_t queued_urgent = 0;
  std::uint64_t queued_normal = 0;
  std::uint64_t running_jobs = 0;  // assigned + running
  double backlog_seconds = 0;
  std::optional<double> expected_wait_seconds;
  std::uint32_t workers_known = 0;
  std::uint32_t workers_connected = 0;
  std::uint32_t workers_active = 0;  // connected and state "active"
  std::uint32_t workers_paused = 0;
  std::uint32_t workers_draining = 0;
  std::uint32_t workers_accepting = 0;
  std::uint64_t capacity_slots = 0;  // total capacity of the accepting workers
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::optional<double> cache_hit_rate;
  std::uint32_t workers_wanted = 0;
  // One sentence per connected worker below the low-disk threshold.
  std::vector<std::string> low_disk_warnings;

  std::uint64_t queued_total() const { return queued_urgent + queued_normal; }
};

struct ClientSummary {
  std::string name;
  std::uint64_t submitted = 0;
  std::uint64_t running = 0;  // assigned + running
  std::uint64_t waiting = 0;  // queued
  double share = 0;           // of all assigned + running jobs, 0..1
};

struct FarmStats {
  std::vector<WorkerSummary> workers;  // in FarmView order
  std::vector<PoolSummary> pools;      // sorted by name
  std::vector<ClientSummary> clients;  // sorted by name
  // Every state of kJobStates, from FarmView::jobs_total_by_state or, when a
  // state is missing there, counted from the view's jobs.
  std::map<std::string, std::uint64_t> jobs_by_state;
};

// All derived figures of `view`. The result points into `view` (WorkerSummary::info):
// keep the view alive while using it.
FarmStats compute_stats(const FarmView& view);

// The workers-wanted formula above, on its own.
std::uint32_t workers_wanted(double backlog_seconds, double target_wait_seconds, double mean_capacity,
                             bool has_work);

// hits / (hits + misses); nullopt when both are 0.
std::optional<double> hit_rate(std::uint64_t hits, std::uint64_t misses);

}  // namespace kiln::http
