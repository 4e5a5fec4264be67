// The cache-blind policies (policy.h), which differ only in how they pick a
// worker: urgent jobs first, then in submission order, each to a matching
// free worker —
//   least-loaded  the one with the most free slots (the first such in the
//                 order workers joined the pool);
//   random        a uniformly random one, from a generator seeded by
//                 PolicyOptions::seed (deterministic; a simulator baseline).
#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

enum class Pick { kMostFree, kRandom };

class ArrivalOrderPolicy final : public Policy {
 public:
  ArrivalOrderPolicy(Pick pick, const PolicyOptions& options)
      : pick_(pick), rng_(options.seed), low_disk_bytes_(options.low_disk_bytes) {}

  std::string name() const override { return pick_ == Pick::kRandom ? "random" : "least-loaded"; }

  void add_job(const PlacementJob& job, double) override {
    if (!queued_ids_.insert(job.id).second) return;
    Pool& pool = pools_[job.pool];
    (job.urgent ? pool.urgent : pool.normal).push_back({job.id, job.labels});
  }

  // Lazy: the entry is skipped when reached.
  void remove_job(const std::string& job_id) override { queued_ids_.erase(job_id); }

  void update_worker(const PlacementWorker& worker, double) override {
    auto [it, added] = workers_.try_emplace(worker.name);
    if (!added && it->second.info.pool != worker.pool) {
      std::erase(pools_[it->second.info.pool].workers, worker.name);
      added = true;
    }
    it->second.info = worker;
    if (added) pools_[worker.pool].workers.push_back(worker.name);
  }

  void remove_worker(const std::string& name) override {
    auto it = workers_.find(name);
    if (it == workers_.end()) return;
    std::erase(pools_[it->second.info.pool].workers, name);
    workers_.erase(it);
  }

  void inventory(const std::string&, bool, const std::vector<std::string>&,
                 const std::vector<std::string>&) override {}

  std::vector<Assignment> assign(double) override {
    std::vector<Assignment> out;
    for (auto& [pool_name, pool] : pools_) {
      for (auto* queue : {&pool.urgent, &pool.normal}) {
        std::deque<Queued> skipped;
        while (!queue->empty()) {
          // Nothing free in the pool: the rest of the queue waits as it is.
          if (!any_free(pool)) break;
          Queued job = std::move(queue->front());
          queue->pop_front();
          if (!queued_ids_.contains(job.id)) continue;  // removed
          candidates_.clear();
          for (const std::string& name : pool.workers) {
            Worker& w = workers_.at(name);
            if (free_slot(w) && has_labels(w.info, job.labels)) candidates_.push_back(&w);
          }
          if (candidates_.empty()) {
            skipped.push_back(std::move(job));  // no free worker matches its labels
            continue;
          }
          Worker* w = choose();
          w->running.insert(job.id);
          queued_ids_.erase(job.id);
          out.push_back({job.id, w->info.name});
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
  struct Queued {
    std::string id;
    std::vector<std::string> labels;
  };
  struct Worker {
    PlacementWorker info;
    std::unordered_set<std::string> running;
  };
  struct Pool {
    std::deque<Queued> urgent;
    std::deque<Queued> normal;
    std::vector<std::string> workers;
  };

  static bool has_labels(const PlacementWorker& worker, const std::vector<std::string>& wanted) {
    return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& label) {
      return std::find(worker.labels.begin(), worker.labels.end(), label) != worker.labels.end();
    });
  }
  Worker* choose() {
    if (pick_ == Pick::kRandom) {
      return candidates_[std::uniform_int_distribution<std::size_t>(0, candidates_.size() - 1)(rng_)];
    }
    Worker* best = candidates_.front();
    for (Worker* w : candidates_) {
      if (w->info.capacity - w->running.size() > best->info.capacity - best->running.size()) best = w;
    }
    return best;
  }
  bool free_slot(const Worker& w) const {
    if (!w.info.accepting || w.running.size() >= w.info.capacity) return false;
    return low_disk_bytes_ == 0 || w.info.disk_free_bytes == 0 || w.info.disk_free_bytes >= low_disk_bytes_;
  }
  bool any_free(const Pool& pool) const {
    return std::any_of(pool.workers.begin(), pool.workers.end(),
                       [&](const std::string& name) { return free_slot(workers_.at(name)); });
  }
  void release(const std::string& worker, const std::string& job_id) {
    if (auto it = workers_.find(worker); it != workers_.end()) it->second.running.erase(job_id);
  }

  Pick pick_;
  std::mt19937_64 rng_;
  std::uint64_t low_disk_bytes_;
  std::map<std::string, Pool> pools_;
  std::unordered_map<std::string, Worker> workers_;
  std::unordered_set<std::string> queued_ids_;
  std::vector<Worker*> candidates_;
};

}  // namespace

std::unique_ptr<Policy> make_least_loaded_policy(const PolicyOptions& options) {
  return std::make_unique<ArrivalOrderPolicy>(Pick::kMostFree, options);
}

std::unique_ptr<Policy> make_random_policy(const PolicyOptions& options) {
  return std::make_unique<ArrivalOrderPolicy>(Pick::kRandom, options);
}

}  // namespace kiln::placement
