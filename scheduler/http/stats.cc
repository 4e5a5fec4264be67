#include "scheduler/http/stats.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "common/format.h"

namespace kiln::http {
namespace {

bool is_in_progress(const std::string& state) {
  return state == "assigned" || state == "running";
}

// Mean run time of each pool's succeeded jobs in the view: the estimate for
// jobs the scheduler gave no expected_seconds for.
std::map<std::string, double> mean_seconds_by_pool(const FarmView& view) {
  std::map<std::string, std::pair<double, int>> sums;
  for (const proto::JobInfo& job : view.jobs) {
    // A run of 0 ms is a record without a real start time (e.g. reclaimed
    // after a scheduler restart), not a measurement: even a fully cached job
    // takes milliseconds.
    if (job.state != "succeeded" || job.started_at_ms <= 0 || job.finished_at_ms <= job.started_at_ms)
      continue;
    auto& [total, count] = sums[job.pool];
    total += static_cast<double>(job.finished_at_ms - job.started_at_ms) / 1000.0;
    ++count;
  }
  std::map<std::string, double> means;
  for (const auto& [pool, sum] : sums) means[pool] = sum.first / sum.second;
  return means;
}

double expected_seconds_of(const FarmView& view, const std::map<std::string, double>& pool_means,
                           const proto::JobInfo& job) {
  if (auto it = view.expected_seconds.find(job.id); it != view.expected_seconds.end()) return it->second;
  if (auto it = pool_means.find(job.pool); it != pool_means.end()) return it->second;
  return view.default_job_seconds;
}

WorkerSummary summarize_worker(const FarmView& view, const proto::WorkerInfo& worker) {
  WorkerSummary s;
  s.info = &worker;
  s.cache_hit_rate = hit_rate(worker.stats.cache_hits, worker.stats.cache_misses);
  if (worker.stats.disk_total_bytes > 0) {
    s.disk_free_ratio = static_cast<double>(worker.stats.disk_free_bytes) /
                        static_cast<double>(worker.stats.disk_total_bytes);
  }
  if (worker.last_heartbeat_ms > 0) {
    s.heartbeat_age_seconds =
        std::max<double>(0, static_cast<double>(view.now_ms - worker.last_heartbeat_ms) / 1000.0);
  }
  // Only a connected worker's disk matters now: a disconnected one's figure
  // is stale. A total of 0 means the worker reports no disk (e.g. a
  // --fake-build worker); the scheduler does not hold that against it either.
  s.low_disk = worker.connected && view.low_disk_threshold_bytes > 0 && worker.stats.disk_total_bytes > 0 &&
               worker.stats.disk_free_bytes < view.low_disk_threshold_bytes;
  s.accepting = worker.connected && worker.state == "active" && worker.stats.healthy && !s.low_disk;
  bool stale = worker.connected && worker.last_heartbeat_ms > 0 &&
               view.now_ms - worker.last_heartbeat_ms > 3 * std::max<std::int64_t>(view.heartbeat_ms, 1);
  if (!worker.connected || worker.state == "disconnected") {
    s.health = "disconnected";
  } else if (stale) {
    s.health = "stale";
  } else if (!worker.stats.healthy) {
    s.health = "unhealthy";
  } else if (s.low_disk) {
    s.health = "low-disk";
  } else {
    s.health = "ok";
  }
  return s;
}

}  // namespace

std::optional<double> hit_rate(std::uint64_t hits, std::uint64_t misses) {
  if (hits + misses == 0) return std::nullopt;
  return static_cast<double>(hits) / static_cast<double>(hits + misses);
}

std::uint32_t workers_wanted(double backlog_seconds, double target_wait_seconds, double mean_capacity,
                             bool has_work) {
  // Guard the divisor: a zero target or capacity would ask for infinitely many workers.
  double target = std::max(target_wait_seconds, 1.0);
  double capacity = std::max(mean_capacity, 1.0);
  double wanted = std::ceil(std::max(backlog_seconds, 0.0) / (target * capacity));
  if (has_work) wanted = std::max(wanted, 1.0);
  return static_cast<std::uint32_t>(std::min(wanted, 1e6));
}

FarmStats compute_stats(const FarmView& view) {
  FarmStats stats;
  auto pool_means = mean_seconds_by_pool(view);

  // Every pool named anywhere: configured, by a worker, or by a job.
  std::map<std::string, PoolSummary> pools;
  auto pool = [&](const std::string& name) -> PoolSummary& {
    auto [it, inserted] = pools.try_emplace(name);
    if (inserted) {
      it->second.name = name;
      it->second.target_wait_seconds = view.default_target_wait_seconds;
    }
    return it->second;
  };
  for (const PoolConfig& config : view.pools)
    pool(config.name).target_wait_seconds = config.target_wait_seconds;

  std::map<std::string, std::pair<double, int>> capacity_connected, capacity_known;
  for (const proto::WorkerInfo& worker : view.workers) {
    WorkerSummary s = summarize_worker(view, worker);
    PoolSummary& p = pool(worker.pool);
    ++p.workers_known;
    if (worker.connected) ++p.workers_connected;
    if (worker.connected && worker.state == "active") ++p.workers_active;
    if (worker.state == "paused") ++p.workers_paused;
    if (worker.state == "draining") ++p.workers_draining;
    if (s.accepting) {
      ++p.workers_accepting;
      p.capacity_slots += worker.capacity;
    }
    p.cache_hits += worker.stats.cache_hits;
    p.cache_misses += worker.stats.cache_misses;
    auto& known = capacity_known[worker.pool];
    known.first += worker.capacity;
    ++known.second;
    if (worker.connected) {
      auto& connected = capacity_connected[worker.pool];
      connected.first += worker.capacity;
      ++connected.second;
    }
    if (s.low_disk) {
      p.low_disk_warnings.push_back(fmt::format(
          "worker {} has {} free, below the {} low-disk threshold: it gets no new jobs until its store is "
          "pruned (kiln prune, on that machine) or its disk grows",
          worker.name, human_bytes(worker.stats.disk_free_bytes),
          human_bytes(view.low_disk_threshold_bytes)));
    }
    stats.workers.push_back(std::move(s));
  }

  std::map<std::string, ClientSummary> clients;
  std::map<std::string, std::uint64_t> counted_states;
  std::uint64_t running_everywhere = 0;
  for (const proto::JobInfo& job : view.jobs) {
    ++counted_states[job.state];
    ClientSummary& client = clients[job.client];
    client.name = job.client;
    ++client.submitted;
    PoolSummary& p = pool(job.pool);
    double expected = expected_seconds_of(view, pool_means, job);
    if (job.state == "queued") {
      ++(job.urgent ? p.queued_urgent : p.queued_normal);
      p.backlog_seconds += expected;
      ++client.waiting;
    } else if (is_in_progress(job.state)) {
      ++p.running_jobs;
      ++client.running;
      ++running_everywhere;
      double elapsed = job.state == "running" && job.started_at_ms > 0
                           ? static_cast<double>(view.now_ms - job.started_at_ms) / 1000.0
                           : 0;
      p.backlog_seconds += std::max(expected - elapsed, 0.0);
    }
  }
  if (!view.jobs_submitted_by_client.empty()) {
    for (auto& [name, client] : clients) client.submitted = 0;
    for (const auto& [name, submitted] : view.jobs_submitted_by_client) {
      clients[name].name = name;
      clients[name].submitted = submitted;
    }
  }
  for (auto& [name, client] : clients) {
    client.share = running_everywhere > 0
                       ? static_cast<double>(client.running) / static_cast<double>(running_everywhere)
                       : 0;
    stats.clients.push_back(client);
  }

  for (auto& [name, p] : pools) {
    p.cache_hit_rate = hit_rate(p.cache_hits, p.cache_misses);
    if (p.backlog_seconds <= 0) {
      p.expected_wait_seconds = 0.0;
    } else if (p.capacity_slots > 0) {
      p.expected_wait_seconds = p.backlog_seconds / static_cast<double>(p.capacity_slots);
    }
    double mean_capacity = 1;
    if (auto it = capacity_connected.find(name); it != capacity_connected.end()) {
      mean_capacity = it->second.first / it->second.second;
    } else if (auto known = capacity_known.find(name); known != capacity_known.end()) {
      mean_capacity = known->second.first / known->second.second;
    }
    p.workers_wanted = workers_wanted(p.backlog_seconds, p.target_wait_seconds, mean_capacity,
                                      p.queued_total() + p.running_jobs > 0);
    stats.pools.push_back(std::move(p));
  }

  for (const char* state : kJobStates) {
    auto it = view.jobs_total_by_state.find(state);
    stats.jobs_by_state[state] = it != view.jobs_total_by_state.end() ? it->second : counted_states[state];
  }
  return stats;
}

}  // namespace kiln::http
