#include "scheduler/http/stats_history.h"

#include <nlohmann/json.hpp>

namespace kiln::http {

std::optional<double> wait_quantile(const PoolCounters& before, const PoolCounters& after, double q) {
  const std::uint64_t total = after.wait_count - before.wait_count;
  if (total == 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  double lower = 0;
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < kQueueWaitBucketsSeconds.size(); ++i) {
    const std::uint64_t cumulative = after.waits[i] - before.waits[i];
    if (static_cast<double>(cumulative) >= rank) {
      const std::uint64_t in_bucket = cumulative - below;
      if (in_bucket == 0) return kQueueWaitBucketsSeconds[i];
      return lower + (kQueueWaitBucketsSeconds[i] - lower) * (rank - static_cast<double>(below)) /
                         static_cast<double>(in_bucket);
    }
    lower = kQueueWaitBucketsSeconds[i];
    below = cumulative;
  }
  return kQueueWaitBucketsSeconds.back();  // in the +Inf bucket: at least the last bound
}

StatsHistory::StatsHistory(std::chrono::seconds interval, std::size_t max_points)
    : interval_(interval), max_points_(max_points) {}

bool StatsHistory::due(std::int64_t now_ms) const {
  return last_ms_ == 0 ||
         now_ms - last_ms_ >= std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count();
}

bool StatsHistory::record(const FarmView& view, const FarmStats& stats) {
  std::map<std::string, Previous> now;
  for (const PoolSummary& p : stats.pools) {
    auto it = view.pool_counters.find(p.name);
    now[p.name] = {.counters = it == view.pool_counters.end() ? PoolCounters{} : it->second,
                   .cache_hits = p.cache_hits,
                   .cache_misses = p.cache_misses};
  }
  if (last_ms_ == 0) {
    last_ms_ = view.now_ms;
    previous_ = std::move(now);
    return false;
  }
  const std::int64_t elapsed_ms = view.now_ms - last_ms_;
  if (elapsed_ms < std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count()) return false;
  const double minutes = static_cast<double>(elapsed_ms) / 60000.0;
  HistoryPoint point{.time_ms = view.now_ms};
  std::map<std::string, std::pair<std::uint32_t, std::uint64_t>> workers_by_pool;  // connected, free disk
  for (const proto::WorkerInfo& w : view.workers) {
    if (!w.connected) continue;
    auto& [count, free] = workers_by_pool[w.pool];
    ++count;
    free += w.stats.disk_free_bytes;
    ++point.workers_connected;
    point.disk_free_bytes += w.stats.disk_free_bytes;
  }
  for (const PoolSummary& p : stats.pools) {
    const Previous& current = now[p.name];
    const Previous before = previous_.contains(p.name) ? previous_.at(p.name) : Previous{};
    HistoryPool pool{.name = p.name, .queued = p.queued_total(), .running = p.running_jobs};
    // Counters only grow in one scheduler process; a smaller reading is a new process.
    const bool reset = current.counters.jobs_started < before.counters.jobs_started ||
                       current.counters.wait_count < before.counters.wait_count;
    const PoolCounters& from = reset ? PoolCounters{} : before.counters;
    pool.started_per_minute =
        static_cast<double>(current.counters.jobs_started - from.jobs_started) / minutes;
    pool.finished_per_minute =
        current.counters.jobs_finished >= from.jobs_finished
            ? static_cast<double>(current.counters.jobs_finished - from.jobs_finished) / minutes
            : 0;
    pool.wait_p95_seconds = wait_quantile(from, current.counters, 0.95);
    if (current.cache_hits >= before.cache_hits && current.cache_misses >= before.cache_misses) {
      pool.cache_hit_rate =
          hit_rate(current.cache_hits - before.cache_hits, current.cache_misses - before.cache_misses);
    }
    auto w = workers_by_pool.find(p.name);
    if (w != workers_by_pool.end()) {
      pool.workers_connected = w->second.first;
      pool.disk_free_bytes = w->second.second;
    }
    point.pools.push_back(std::move(pool));
  }
  last_ms_ = view.now_ms;
  previous_ = std::move(now);
  std::lock_guard lock(mu_);
  points_.push_back(std::move(point));
  while (points_.size() > max_points_) points_.pop_front();
  return true;
}

std::vector<HistoryPoint> StatsHistory::points() const {
  std::lock_guard lock(mu_);
  return {points_.begin(), points_.end()};
}

std::string StatsHistory::json() const {
  using nlohmann::json;
  auto optional = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json out = {
      {"interval_seconds", interval_.count()}, {"max_points", max_points_}, {"points", json::array()}};
  for (const HistoryPoint& p : points()) {
    json pools = json::array();
    for (const HistoryPool& pool : p.pools) {
      pools.push_back({{"name", pool.name},
                       {"queued", pool.queued},
                       {"running", pool.running},
                       {"started_per_minute", pool.started_per_minute},
                       {"finished_per_minute", pool.finished_per_minute},
                       {"wait_p95_seconds", optional(pool.wait_p95_seconds)},
                       {"cache_hit_rate", optional(pool.cache_hit_rate)},
                       {"workers_connected", pool.workers_connected},
                       {"disk_free_bytes", pool.disk_free_bytes}});
    }
    out["points"].push_back({{"time_ms", p.time_ms},
                             {"workers_connected", p.workers_connected},
                             {"disk_free_bytes", p.disk_free_bytes},
                             {"pools", std::move(pools)}});
  }
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kiln::http
