// FarmView: the read-only snapshot of the farm that the scheduler publishes
// for its HTTP interfaces (/metrics, the /v1 JSON API, the dashboard).
//
// The scheduler owns all state in its event-loop thread. Every few hundred
// milliseconds it builds a new FarmView and publishes it as a
// shared_ptr<const FarmView> (view_publisher.h); HTTP threads take the
// current pointer and never touch the scheduler's own structures:
//
//   auto view = std::make_shared<FarmView>();
//   view->now_ms = clock.wall_ms();
//   view->scheduler_id = id_;
//   view->workers = list_workers();               // every known worker
//   view->jobs = recent_and_unfinished_jobs();    // see `jobs` below
//   view->jobs_total_by_state["succeeded"] = db_counts.succeeded;
//   publisher.publish(std::move(view));
//
// Contract: a FarmView is an immutable value once published; every field has
// a usable default, so a scheduler may leave out what it does not track
// (stats.h says what each missing field does to the derived figures).
// Thread safety: a const FarmView may be read from any number of threads.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/proto/messages.h"

namespace kiln::http {

// A pool the operator configured, with the queue wait it should meet.
// Pools that only appear through a worker's or a job's `pool` field use
// FarmView::default_target_wait_seconds.
struct PoolConfig {
  std::string name;
  double target_wait_seconds = 300;
};

// Upper bounds (seconds) of the queue-wait histogram's buckets; the last
// bucket (+Inf) is implied.
inline constexpr std::array<double, 12> kQueueWaitBucketsSeconds = {1,   5,   15,   30,   60,   120,
                                                                    300, 600, 1200, 1800, 3600, 7200};

// A pool's counts since the scheduler started (Prometheus counters; the
// history's per-minute rates and p95 come from their differences).
struct PoolCounters {
  std::uint64_t jobs_started = 0;   // assigned to a worker: the end of a queue wait
  std::uint64_t jobs_finished = 0;  // ended: succeeded, failed or cancelled
  // waits[i]: waits of at most kQueueWaitBucketsSeconds[i] (cumulative, as
  // Prometheus buckets are); wait_count is the +Inf bucket.
  std::array<std::uint64_t, kQueueWaitBucketsSeconds.size()> waits{};
  std::uint64_t wait_count = 0;
  double wait_sum_seconds = 0;

  void add_wait(double seconds);
};

struct FarmView {
  // The scheduler's wall clock (Unix milliseconds) when the view was taken;
  // ages (heartbeats, running times) are measured against it.
  std::int64_t now_ms = 0;
  std::string scheduler_id;
  std::string placement_policy;
  // When the scheduler process started (Unix ms); 0: unknown (not exported).
  std::int64_t started_at_ms = 0;
  // The workers' heartbeat interval: a connected worker silent for more than
  // three intervals is reported "stale".
  std::int64_t heartbeat_ms = 1000;

  std::vector<PoolConfig> pools;
  // Every known worker, connected or not (WorkerInfo.state: active | paused |
  // draining | disconnected).
  std::vector<proto::WorkerInfo> workers;
  // Every queued, assigned and running job plus the last ~200 ended ones,
  // without spec text (the JSON job detail shows `spec` when it is present).
  // Order does not matter: the API sorts newest first.
  std::vector<proto::JobInfo> jobs;
  // Counts over ALL jobs in the database by state name ("queued", ...,
  // "cancelled"). States missing here are counted from `jobs`.
  std::map<std::string, std::uint64_t> jobs_total_by_state;
  // Jobs ever submitted, by client, over the whole database. Empty: the
  // per-client "submitted" figure counts the clients' jobs in `jobs` instead.
  std::map<std::string, std::uint64_t> jobs_submitted_by_client;
  // Job id -> expected build seconds (the placement estimate for the chosen
  // worker, or for a cold build). Jobs missing here get the pool's mean
  // observed duration (from the ended jobs in `jobs`), else
  // default_job_seconds.
  std::map<std::string, double> expected_seconds;
  double default_job_seconds = 60;

  // A connected worker with less free disk than this gets a low-disk warning
  // (and, in the scheduler, no new jobs). 0 disables the warning.
  std::uint64_t low_disk_threshold_bytes = 0;
  double default_target_wait_seconds = 300;
  // By pool name; pools with no job yet may be missing.
  std::map<std::string, PoolCounters> pool_counters;
};

inline void PoolCounters::add_wait(double seconds) {
  for (std::size_t i = 0; i < kQueueWaitBucketsSeconds.size(); ++i)
    if (seconds <= kQueueWaitBucketsSeconds[i]) ++waits[i];
  ++wait_count;
  wait_sum_seconds += seconds;
}

}  // namespace kiln::http
