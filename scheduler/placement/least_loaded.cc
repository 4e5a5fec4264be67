// The least-loaded policy (policy.h): cache-blind, fair only by arrival.
#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

bool has_labels(const PlacementWorker& worker, const std::vector<std::string>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& label) {
    return std::find(worker.labels.begin(), worker.labels.end(), label) != worker.labels.end();
  });
}

class LeastLoaded final : public Policy {
 public:
  explicit LeastLoaded(std::uint64_t low_disk_bytes) : low_disk_bytes_(low_disk_bytes) {}

  std::string name() const override { return "least-loaded"; }

  void add_job(const PlacementJob& job, double) override {
    Pool& pool = pools_[job.pool];
    (job.urgent ? pool.urgent : pool.normal).push_back(job);
    queued_ids_.insert(job.id);
  }

  void remove_job(const std::string& job_id) override {
    // Lazy: the entry stays in its deque and is skipped when reached.
    queued_ids_.erase(job_id);
  }

  void update_worker(const PlacementWorker& worker, double) override {
    auto [it, added] = workers_.try_emplace(worker.name);
    if (!added && it->second.info.pool != worker.pool) {
      auto& names = pools_[it->second.info.pool].workers;
      names.erase(std::remove(names.begin(), names.end(), worker.name), names.end());
      added = true;
    }
    it->second.info = worker;
    if (added) pools_[worker.pool].workers.push_back(worker.name);
  }

  void remove_worker(const std::string& name) override {
    auto it = workers_.find(name);
    if (it == workers_.end()) return;
    auto& names = pools_[it->second.info.pool].workers;
    names.erase(std::remove(names.begin(), names.end(), name), names.end());
    workers_.erase(it);
  }

  void inventory(const std::string&, bool, const std::vector<std::string>&,
                 const std::vector<std::string>&) override {}

  std::vector<Assignment> assign(double) override {
    std::vector<Assignment> out;
    for (auto& [pool_name, pool] : pools_) {
      for (auto* queue : {&pool.urgent, &pool.normal}) {
        // Jobs whose labels no free worker matches stay queued in order.
        std::deque<PlacementJob> skipped;
        while (!queue->empty()) {
          if (free_slots(pool) == 0) break;
          PlacementJob job = std::move(queue->front());
          queue->pop_front();
          if (!queued_ids_.contains(job.id)) continue;  // removed
          Worker* best = nullptr;
          for (const std::string& name : pool.workers) {
            Worker& w = workers_.at(name);
            if (!accepting(w) || w.running.size() >= w.info.capacity) continue;
            if (!has_labels(w.info, job.labels)) continue;
            if (!best || free_of(w) > free_of(*best)) best = &w;
          }
          if (!best) {
            skipped.push_back(std::move(job));
            continue;
          }
          best->running.insert(job.id);
          queued_ids_.erase(job.id);
          out.push_back({job.id, best->info.name});
        }
        while (!skipped.empty()) {
          queue->push_front(std::move(skipped.back()));
          skipped.pop_back();
        }
      }
    }
    return out;
  }

  void adopt(const PlacementJob& job, const std::string& worker, double) override {
    if (auto it = workers_.find(worker); it != workers_.end()) it->second.running.insert(job.id);
  }

  void job_finished(const std::string& worker, const std::string& job_id, const std::vector<StepReport>&,
                    double) override {
    release(worker, job_id);
  }
  void job_released(const std::string& worker, const std::string& job_id, double) override {
    release(worker, job_id);
  }

  std::size_t queued() const override { return queued_ids_.size(); }

 private:
  struct Worker {
    PlacementWorker info;
    std::unordered_set<std::string> running;
  };
  struct Pool {
    std::deque<PlacementJob> urgent;
    std::deque<PlacementJob> normal;
    std::vector<std::string> workers;
  };

  // PolicyOptions::low_disk_bytes applies on top of the scheduler's own flag.
  bool accepting(const Worker& w) const {
    return w.info.accepting &&
           (low_disk_bytes_ == 0 || w.info.disk_free_bytes == 0 || w.info.disk_free_bytes >= low_disk_bytes_);
  }
  static std::size_t free_of(const Worker& w) {
    return w.running.size() >= w.info.capacity ? 0 : w.info.capacity - w.running.size();
  }
  std::size_t free_slots(const Pool& pool) const {
    std::size_t total = 0;
    for (const std::string& name : pool.workers) {
      const Worker& w = workers_.at(name);
      if (accepting(w)) total += free_of(w);
    }
    return total;
  }
  void release(const std::string& worker, const std::string& job_id) {
    if (auto it = workers_.find(worker); it != workers_.end()) it->second.running.erase(job_id);
  }

  std::map<std::string, Pool> pools_;
  std::unordered_map<std::string, Worker> workers_;
  std::unordered_set<std::string> queued_ids_;
  std::uint64_t low_disk_bytes_;
};

}  // namespace

std::unique_ptr<Policy> make_least_loaded_policy(const PolicyOptions& options) {
  return std::make_unique<LeastLoaded>(options.low_disk_bytes);
}

}  // namespace kiln::placement
