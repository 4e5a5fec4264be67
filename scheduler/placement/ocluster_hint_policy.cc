// The "ocluster-hint" policy (policy.h): OCluster's scheduler, for comparison
// in the simulator and as a fallback. Its semantics, as in ocluster's
// scheduler/pool.ml:
// - one pool queue ordered urgent first, then by fair start time (FairShare,
//   with no aging: urgent is strict);
// - each job has a cache hint; the pool remembers every worker that was
//   given a job with that hint, forever (hints never expire, even when the
//   worker has since pruned the steps);
// - when a worker takes from the pool queue, the job goes instead to the
//   least-loaded worker that had its hint, if that worker's queued work
//   ("workload": jobs waiting for it, not running ones) is at most the job's
//   cold cost; it joins that worker's own queue at its cached cost;
// - otherwise the taking worker runs it (and now has the hint);
// - a worker that stops accepting puts its queued jobs back in the pool queue.
// The hint is the chain's first non-base step (a repository's first
// dependency step: shared by its commits, as a CI's hint would be), else the
// final step; no hint when the chain is empty. Costs: the client's estimate,
// else the pool's mean duration of jobs that missed (cold) or hit (cached).
#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "scheduler/placement/fair_share.h"
#include "scheduler/placement/inventory.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

struct DigestHash {
  std::size_t operator()(const Digest& d) const {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

class OclusterHintPolicy final : public Policy {
 public:
  explicit OclusterHintPolicy(const PolicyOptions& options) : options_(options) {}

  std::string name() const override { return "ocluster-hint"; }

  void add_job(const PlacementJob& job, double now) override {
    if (jobs_.contains(job.id)) return;
    Job& J = jobs_[job.id];
    J.id = job.id;
    J.pool = job.pool;
    J.labels = job.labels;
    J.urgent = job.urgent;
    J.estimate = job.estimate_seconds;
    if (job.steps.size() >= 2) {
      J.hint = step_digest(job.steps[1]);
      J.has_hint = true;
    } else if (!job.steps.empty()) {
      J.hint = step_digest(job.steps.back());
      J.has_hint = true;
    }
    Pool& P = pools_[job.pool];
    // OCluster charges a client the cached cost when some worker has the
    // hint (or a queued job will give it one), else the cold cost.
    bool known = J.has_hint && (P.hints.contains(J.hint) || P.pending_hints[J.hint] > 0);
    if (J.has_hint) ++P.pending_hints[J.hint];
    double cost = known ? cached_cost(P, J) : cold_cost(P, J);
    J.key = fair_.priority_key(job.pool, job.client, cost, false, now, 0);
    J.seq = next_seq_++;
    P.queue.insert({{job.urgent ? 0 : 1, J.key, J.seq}, job.id});
    ++queued_;
  }

  void remove_job(const std::string& job_id) override {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.running) return;
    Job& J = it->second;
    Pool& P = pools_[J.pool];
    if (J.waiting_on.empty()) {
      P.queue.erase({{J.urgent ? 0 : 1, J.key, J.seq}, J.id});
    } else {
      Worker& w = workers_.at(J.waiting_on);
      std::erase(w.queue, J.id);
      w.workload -= J.queued_cost;
    }
    unpend(P, J);
    --queued_;
    jobs_.erase(it);
  }

  void update_worker(const PlacementWorker& worker, double) override {
    auto [it, added] = workers_.try_emplace(worker.name);
    Worker& w = it->second;
    if (!added && w.info.pool != worker.pool) {
      push_back_queue(w);
      std::erase(pools_[w.info.pool].workers, worker.name);
      added = true;
    }
    w.info = worker;
    if (added) pools_[worker.pool].workers.push_back(worker.name);
    if (!accepting(w)) push_back_queue(w);
  }

  void remove_worker(const std::string& name) override {
    auto it = workers_.find(name);
    if (it == workers_.end()) return;
    push_back_queue(it->second);
    std::erase(pools_[it->second.info.pool].workers, name);
    workers_.erase(it);
  }

  // OCluster knows no inventory: only the hints of what it assigned.
  void inventory(const std::string&, bool, const std::vector<std::string>&,
                 const std::vector<std::string>&) override {}

  std::vector<Assignment> assign(double) override {
    std::vector<Assignment> out;
    for (auto& [pool_name, P] : pools_) {
      // Free workers take work in the order they became free.
      std::vector<Worker*> free;
      for (const std::string& name : P.workers) {
        Worker& w = workers_.at(name);
        if (has_free_slot(w)) free.push_back(&w);
      }
      std::sort(free.begin(), free.end(), [](const Worker* a, const Worker* b) {
        return a->free_since != b->free_since ? a->free_since < b->free_since : a->info.name < b->info.name;
      });
      std::size_t lookahead = 0;
      for (Worker* w : free) {
        while (has_free_slot(*w)) {
          if (!w->queue.empty()) {
            std::string id = w->queue.front();
            w->queue.pop_front();
            Job& J = jobs_.at(id);
            w->workload -= J.queued_cost;
            J.waiting_on.clear();
            start(P, J, *w, out);
            continue;
          }
          auto next = std::find_if(P.queue.begin(), P.queue.end(), [&](const auto& entry) {
            return has_labels(*w, jobs_.at(entry.second)) || ++lookahead > 256;
          });
          if (next == P.queue.end() || !has_labels(*w, jobs_.at(next->second))) break;
          Job& J = jobs_.at(next->second);
          P.queue.erase(next);
          if (Worker* preferred = preferred_worker(P, J)) {
            J.waiting_on = preferred->info.name;
            J.queued_cost = cached_cost(P, J);
            J.hit = true;
            preferred->workload += J.queued_cost;
            preferred->queue.push_back(J.id);
            // If the preferred worker is free, it takes it at once.
            if (preferred != w && has_free_slot(*preferred)) {
              preferred->queue.pop_back();
              preferred->workload -= J.queued_cost;
              J.waiting_on.clear();
              start(P, J, *preferred, out);
            }
            continue;
          }
          J.hit = false;
          start(P, J, *w, out);
        }
      }
    }
    return out;
  }

  void adopt(const PlacementJob& job, const std::string& worker, double) override {
    auto it = workers_.find(worker);
    if (it == workers_.end() || jobs_.contains(job.id)) return;
    Job& J = jobs_[job.id];
    J.id = job.id;
    J.pool = job.pool;
    J.running = true;
    ++it->second.running;
  }

  void job_finished(const std::string& worker, const std::string& job_id,
                    const std::vector<StepReport>& steps, double now) override {
    auto it = jobs_.find(job_id);
    if (it != jobs_.end() && it->second.running) {
      double seconds = 0;
      for (const StepReport& s : steps) seconds += s.seconds;
      Pool& P = pools_[it->second.pool];
      auto& [mean, n] = it->second.hit ? P.hit_mean : P.miss_mean;
      n = std::min(n + 1, 1000.0);
      mean += (seconds - mean) / n;
    }
    end_job(worker, job_id, now);
  }

  void job_released(const std::string& worker, const std::string& job_id, double now) override {
    end_job(worker, job_id, now);
  }

  std::size_t queued() const override { return queued_; }

  void set_client_rate(const std::string& pool, const std::string& client, double rate) override {
    fair_.set_rate(pool, client, rate);
  }

  std::string dump(double now) const override {
    std::string out = "ocluster-hint\n";
    for (const auto& [name, P] : pools_) {
      out += fmt::format("pool {}: queue [", name);
      bool first = true;
      for (const auto& entry : P.queue) {
        out += (first ? "" : " ") + entry.second;
        first = false;
      }
      out += fmt::format("] hints {}\n", P.hints.size());
      std::vector<std::string> names = P.workers;
      std::sort(names.begin(), names.end());
      for (const std::string& n : names) {
        const Worker& w = workers_.at(n);
        out += fmt::format("  {} {}/{} workload {:.0f} queue [{}]\n", n, w.running, w.info.capacity,
                           w.workload, fmt::join(w.queue, " "));
      }
    }
    std::string clients = fair_.dump(now);
    if (!clients.empty()) out += "clients: " + clients + "\n";
    return out;
  }

 private:
  struct Job {
    std::string id;
    std::string pool;
    std::vector<std::string> labels;
    bool urgent = false;
    double estimate = 0;
    Digest hint{};
    bool has_hint = false;
    double key = 0;
    std::uint64_t seq = 0;
    std::string waiting_on;  // the worker whose queue holds it
    double queued_cost = 0;
    bool running = false;
    bool hit = false;  // started on a worker that had its hint
    std::string worker;
  };
  struct Worker {
    PlacementWorker info;
    std::uint32_t running = 0;
    std::deque<std::string> queue;
    double workload = 0;
    std::uint64_t free_since = 0;  // event counter when it last got a free slot
  };
  using QueueKey = std::tuple<int, double, std::uint64_t>;  // (not urgent, fair start, arrival)
  struct Pool {
    std::set<std::pair<QueueKey, std::string>> queue;
    std::vector<std::string> workers;
    std::unordered_map<Digest, std::vector<std::string>, DigestHash> hints;  // never expire
    std::unordered_map<Digest, int, DigestHash> pending_hints;               // queued jobs per hint
    std::pair<double, double> hit_mean{0, 0}, miss_mean{0, 0};               // (mean, samples)
  };

  double cold_cost(const Pool& P, const Job& J) const {
    if (J.estimate > 0) return J.estimate;
    return P.miss_mean.second > 0 ? P.miss_mean.first : options_.default_step_seconds;
  }
  double cached_cost(const Pool& P, const Job& J) const {
    if (P.hit_mean.second > 0) return P.hit_mean.first;
    return cold_cost(P, J) / 4;  // OCluster clients state both; a guess until learned
  }

  bool accepting(const Worker& w) const {
    if (!w.info.accepting || w.info.capacity == 0) return false;
    return options_.low_disk_bytes == 0 || w.info.disk_free_bytes == 0 ||
           w.info.disk_free_bytes >= options_.low_disk_bytes;
  }
  bool has_free_slot(const Worker& w) const { return accepting(w) && w.running < w.info.capacity; }
  static bool has_labels(const Worker& w, const Job& J) {
    return std::all_of(J.labels.begin(), J.labels.end(), [&](const std::string& label) {
      return std::find(w.info.labels.begin(), w.info.labels.end(), label) != w.info.labels.end();
    });
  }

  Worker* preferred_worker(Pool& P, const Job& J) {
    if (!J.has_hint) return nullptr;
    auto it = P.hints.find(J.hint);
    if (it == P.hints.end()) return nullptr;
    double limit = cold_cost(P, J);
    Worker* best = nullptr;
    for (const std::string& name : it->second) {
      auto w = workers_.find(name);
      if (w == workers_.end() || w->second.info.pool != J.pool || !accepting(w->second)) continue;
      if (!has_labels(w->second, J) || w->second.workload > limit) continue;
      if (!best || w->second.workload < best->workload) best = &w->second;
    }
    return best;
  }

  void start(Pool& P, Job& J, Worker& w, std::vector<Assignment>& out) {
    J.running = true;
    J.worker = w.info.name;
    ++w.running;
    --queued_;
    unpend(P, J);
    if (J.has_hint) {
      auto& holders = P.hints[J.hint];
      if (std::find(holders.begin(), holders.end(), w.info.name) == holders.end())
        holders.push_back(w.info.name);
    }
    out.push_back({J.id, w.info.name});
  }

  void unpend(Pool& P, const Job& J) {
    if (!J.has_hint) return;
    auto it = P.pending_hints.find(J.hint);
    if (it != P.pending_hints.end() && --it->second <= 0) P.pending_hints.erase(it);
  }

  void push_back_queue(Worker& w) {
    Pool& P = pools_[w.info.pool];
    for (const std::string& id : w.queue) {
      Job& J = jobs_.at(id);
      J.waiting_on.clear();
      P.queue.insert({{J.urgent ? 0 : 1, J.key, J.seq}, J.id});
    }
    w.queue.clear();
    w.workload = 0;
  }

  void end_job(const std::string& worker, const std::string& job_id, double) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || !it->second.running) return;
    if (auto w = workers_.find(worker); w != workers_.end() && w->second.running > 0) {
      --w->second.running;
      w->second.free_since = ++events_;
    }
    jobs_.erase(it);
  }

  PolicyOptions options_;
  FairShare fair_;
  std::map<std::string, Pool> pools_;
  std::unordered_map<std::string, Worker> workers_;
  std::unordered_map<std::string, Job> jobs_;
  std::size_t queued_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_ = 0;
};

}  // namespace

std::unique_ptr<Policy> make_ocluster_hint_policy(const PolicyOptions& options) {
  return std::make_unique<OclusterHintPolicy>(options);
}

}  // namespace kiln::placement
