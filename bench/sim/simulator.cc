#include "bench/sim/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <list>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

namespace kiln::sim {
namespace {

using placement::Assignment;
using placement::Policy;
using placement::StepReport;

// A worker's cache: step ids in least-recently-used order.
class LruCache {
 public:
  explicit LruCache(std::size_t limit) : limit_(limit) {}

  bool contains(const std::string& id) const { return where_.contains(id); }
  void touch(const std::string& id) {
    auto it = where_.find(id);
    if (it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.push_front(id);
    where_[id] = order_.begin();
  }
  // Evicts past the limit; returns what went.
  std::vector<std::string> trim() {
    std::vector<std::string> gone;
    while (limit_ != 0 && order_.size() > limit_) {
      gone.push_back(order_.back());
      where_.erase(order_.back());
      order_.pop_back();
    }
    return gone;
  }

 private:
  std::size_t limit_;
  std::list<std::string> order_;
  std::unordered_map<std::string, std::list<std::string>::iterator> where_;
};

struct VirtualWorker {
  TraceWorker spec;
  LruCache cache;
  std::uint32_t running = 0;
  // Steps being built here: id -> (ready at, building job).
  std::unordered_map<std::string, std::pair<double, std::size_t>> building;
  double busy_seconds = 0;
};

struct Event {
  double t;
  int kind;  // 0: a job ends, 1: a job arrives (ends first at equal times: slots free)
  std::uint64_t seq;
  std::size_t job;
  bool operator>(const Event& o) const {
    if (t != o.t) return t > o.t;
    if (kind != o.kind) return kind > o.kind;
    return seq > o.seq;
  }
};

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size()))) - 1;
  return values[std::min(rank, values.size() - 1)];
}

}  // namespace

Result<SimResult> simulate(const Trace& trace, const std::string& policy_name,
                           const placement::PolicyOptions& policy_options, const SimOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Policy> policy, placement::make_policy(policy_name, policy_options));
  using Clock = std::chrono::steady_clock;
  Clock::duration policy_time{};
  auto timed = [&](auto&& fn) {
    auto start = Clock::now();
    fn();
    policy_time += Clock::now() - start;
  };

  SimResult result{.policy = policy_name};
  std::vector<VirtualWorker> workers;
  std::unordered_map<std::string, std::size_t> worker_index;
  for (const TraceWorker& w : trace.workers) {
    worker_index[w.name] = workers.size();
    workers.push_back({.spec = w, .cache = LruCache(w.cache_limit)});
  }
  std::unordered_map<std::string, std::size_t> job_index;
  for (std::size_t j = 0; j < trace.jobs.size(); ++j) job_index[trace.jobs[j].id] = j;

  struct Run {
    std::size_t worker = 0;
    double start = 0, end = 0;
    std::vector<StepReport> reports;
    bool started = false, ended = false;
  };
  std::vector<Run> runs(trace.jobs.size());

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::uint64_t seq = 0;
  for (std::size_t j = 0; j < trace.jobs.size(); ++j) events.push({trace.jobs[j].submit, 1, seq++, j});
  double first_submit = trace.jobs.empty() ? 0 : trace.jobs.front().submit;
  double now = first_submit;
  timed([&] {
    for (const VirtualWorker& w : workers) {
      policy->update_worker({.name = w.spec.name,
                             .pool = w.spec.pool,
                             .labels = w.spec.labels,
                             .capacity = w.spec.capacity,
                             .disk_free_bytes = std::uint64_t{1} << 40},
                            now);
      policy->inventory(w.spec.name, true, {}, {});
    }
  });

  std::unordered_set<std::string> ever_built;
  auto held_elsewhere = [&](std::size_t here, const std::string& id) {
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if (i != here && (workers[i].cache.contains(id) || workers[i].building.contains(id))) return true;
    }
    return false;
  };

  std::vector<double> waits, turnarounds;
  double last_end = first_submit;
  while (!events.empty()) {
    now = events.top().t;
    while (!events.empty() && events.top().t == now) {
      Event e = events.top();
      events.pop();
      const TraceJob& job = trace.jobs[e.job];
      if (e.kind == 1) {
        placement::PlacementJob pj{.id = job.id,
                                   .pool = job.pool,
                                   .client = job.client,
                                   .urgent = job.urgent,
                                   .labels = job.labels,
                                   .submitted_at = job.submit,
                                   .estimate_seconds = job.estimate};
        for (const TraceStep& s : job.steps) pj.steps.push_back(s.id);
        timed([&] { policy->add_job(pj, now); });
        continue;
      }
      // The job ends: its worker's cache takes every step, leaves first so
      // that ancestors are the most recently used.
      Run& run = runs[e.job];
      run.ended = true;
      VirtualWorker& w = workers[run.worker];
      --w.running;
      std::vector<std::string> added;
      for (auto it = job.steps.rbegin(); it != job.steps.rend(); ++it) {
        if (!w.cache.contains(it->id)) added.push_back(it->id);
        w.cache.touch(it->id);
        auto b = w.building.find(it->id);
        if (b != w.building.end() && b->second.second == e.job) w.building.erase(b);
      }
      std::vector<std::string> evicted = w.cache.trim();
      // Every evicted id is reported removed (job_finished below has just
      // added this job's steps); one added and evicted at once is not added.
      std::unordered_set<std::string> evicted_set(evicted.begin(), evicted.end());
      std::erase_if(added, [&](const std::string& id) { return evicted_set.contains(id); });
      timed([&] {
        policy->job_finished(w.spec.name, job.id, run.reports, now);
        policy->inventory(w.spec.name, false, added, evicted);
      });
      last_end = std::max(last_end, now);
    }
    std::vector<Assignment> assigned;
    timed([&] { assigned = policy->assign(now); });
    result.decisions += assigned.size();
    for (const Assignment& a : assigned) {
      auto j = job_index.find(a.job_id);
      auto wi = worker_index.find(a.worker);
      if (j == job_index.end() || wi == worker_index.end()) {
        return make_error(ErrorKind::kInternal,
                          fmt::format("policy {} assigned unknown job {:?} or worker {:?}", policy_name,
                                      a.job_id, a.worker));
      }
      Run& run = runs[j->second];
      VirtualWorker& w = workers[wi->second];
      const TraceJob& job = trace.jobs[j->second];
      if (run.started || w.running >= w.spec.capacity || job.submit > now) {
        return make_error(
            ErrorKind::kInternal,
            fmt::format("policy {} broke its contract at t={}: job {} to worker {} ({} of {} slots "
                        "busy, job already started: {})",
                        policy_name, now, a.job_id, a.worker, w.running, w.spec.capacity, run.started));
      }
      run.started = true;
      run.worker = wi->second;
      run.start = now;
      ++w.running;
      waits.push_back(now - job.submit);
      // The chain, step by step: cached, shared with a build in progress
      // here, or built cold. After the first step built, the rest are new.
      double t = now;
      bool prefix = true;
      for (const TraceStep& s : job.steps) {
        ++result.steps;
        if (prefix && w.cache.contains(s.id)) {
          t += options.cached_step_seconds;
          w.cache.touch(s.id);
          run.reports.push_back({s.id, true, options.cached_step_seconds});
          continue;
        }
        auto b = w.building.find(s.id);
        if (b != w.building.end()) {
          double ready = std::max(t, b->second.first);
          run.reports.push_back({s.id, true, ready - t});
          t = ready;
          continue;
        }
        prefix = false;
        t += s.seconds;
        ++result.cold_steps;
        if (ever_built.insert(s.id).second) {
          ++result.cold_first;
        } else if (held_elsewhere(wi->second, s.id)) {
          ++result.cold_held_elsewhere;
        } else {
          ++result.cold_after_eviction;
        }
        w.building[s.id] = {t, j->second};
        run.reports.push_back({s.id, false, s.seconds});
      }
      run.end = t;
      turnarounds.push_back(t - job.submit);
      w.busy_seconds += t - now;
      result.build_seconds += t - now;
      result.client_share[job.client] += t - now;
      ++result.jobs;
      events.push({t, 0, seq++, j->second});
    }
  }
  for (const Run& run : runs) result.unplaced += !run.started;

  result.wait_p50 = percentile(waits, 0.50);
  result.wait_p95 = percentile(waits, 0.95);
  result.wait_p99 = percentile(waits, 0.99);
  result.turnaround_p95 = percentile(turnarounds, 0.95);
  result.makespan = last_end - first_submit;
  double sum = 0;
  for (const VirtualWorker& w : workers) {
    double u = result.makespan > 0 ? w.busy_seconds / (w.spec.capacity * result.makespan) : 0;
    sum += u;
    result.util_max = std::max(result.util_max, u);
  }
  result.util_mean = workers.empty() ? 0 : sum / static_cast<double>(workers.size());
  for (auto& [client, seconds] : result.client_share) {
    seconds = result.build_seconds > 0 ? seconds / result.build_seconds : 0;
  }
  result.policy_cpu_seconds = std::chrono::duration<double>(policy_time).count();
  return result;
}

SimResult oracle_bound(const Trace& trace, const SimOptions& options) {
  SimResult r{.policy = "oracle bound", .bound = true};
  std::unordered_set<std::string> seen;
  double capacity = 0;
  for (const TraceWorker& w : trace.workers) capacity += w.capacity;
  double first = trace.jobs.empty() ? 0 : trace.jobs.front().submit;
  double latest_end = first;
  for (const TraceJob& job : trace.jobs) {
    double cheapest = 0;  // the job alone, everything cached
    for (const TraceStep& s : job.steps) {
      ++r.steps;
      if (seen.insert(s.id).second) {
        ++r.cold_steps;
        r.build_seconds += s.seconds;
      } else {
        r.build_seconds += options.cached_step_seconds;
      }
      cheapest += options.cached_step_seconds;
    }
    latest_end = std::max(latest_end, job.submit + cheapest);
    ++r.jobs;
  }
  r.makespan = std::max(latest_end - first, capacity > 0 ? r.build_seconds / capacity : 0);
  return r;
}

}  // namespace kiln::sim
