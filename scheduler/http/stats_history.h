// The farm's figures over the last hours, for the dashboard's charts and
// /v1/stats/history: a bounded ring of points taken every `interval` from
// the published FarmView and its FarmStats.
//
//   StatsHistory history(std::chrono::seconds(60), 360);   // six hours
//   history.record(*view, compute_stats(*view));            // each publish; samples when due
//   std::string body = history.json();                       // any thread
//
// Each point has, per pool: queued and running jobs, jobs started and
// finished per minute and the p95 queue wait over the interval (from the
// differences of PoolCounters; the p95 is interpolated within the wait
// histogram's buckets, as Prometheus' histogram_quantile does), the cache
// hit rate over the interval (from the workers' hit and miss counters), the
// connected workers and their free disk; and the farm's totals of the last
// two. Memory: at most `max_points` points (each a few hundred bytes per pool).
// Thread safety: record() from one thread (the scheduler's loop); json()
// from any.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/http/farm_view.h"
#include "scheduler/http/stats.h"

namespace kiln::http {

struct HistoryPool {
  std::string name;
  std::uint64_t queued = 0;
  std::uint64_t running = 0;
  double started_per_minute = 0;
  double finished_per_minute = 0;
  std::optional<double> wait_p95_seconds;  // no job started in the interval: none
  std::optional<double> cache_hit_rate;    // no lookup in the interval: none
  std::uint32_t workers_connected = 0;
  std::uint64_t disk_free_bytes = 0;  // over its connected workers
};

struct HistoryPoint {
  std::int64_t time_ms = 0;
  std::uint32_t workers_connected = 0;
  std::uint64_t disk_free_bytes = 0;
  std::vector<HistoryPool> pools;
};

// The q-quantile of the waits between two readings of a pool's counters;
// nullopt when none.
std::optional<double> wait_quantile(const PoolCounters& before, const PoolCounters& after, double q);

class StatsHistory {
 public:
  StatsHistory(std::chrono::seconds interval, std::size_t max_points);

  // Takes a point when `interval` has passed since the last one (by the
  // view's clock); the first call only sets the starting counters. Returns
  // whether a point was taken.
  bool record(const FarmView& view, const FarmStats& stats);
  // Whether record() at `now_ms` would take a point (or set the start): so
  // that the caller computes the stats only then.
  bool due(std::int64_t now_ms) const;
  std::vector<HistoryPoint> points() const;
  std::string json() const;

 private:
  struct Previous {
    PoolCounters counters;
    std::uint64_t cache_hits = 0;
    std::uint64_t cache_misses = 0;
  };
  std::chrono::seconds interval_;
  std::size_t max_points_;
  mutable std::mutex mu_;
  std::deque<HistoryPoint> points_;
  std::int64_t last_ms_ = 0;
  std::map<std::string, Previous> previous_;  // by pool, at last_ms_
};

}  // namespace kiln::http
