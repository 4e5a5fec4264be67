// The "kiln" policy (policy.h, docs/placement.md): cache-aware placement.
//
// Each job goes where it is expected to finish first, weighing a waited
// second at wait_weight (0.5: a rebuilt second is a slot-second others wait
// for under load). On a worker that is: the wait until one of its slots frees
// (given what it runs and the jobs already reserved for it), then the cost of
// the steps of the job's chain after the deepest one the worker holds or is
// building (kiln_cost_model.h).
//
// Queues: each pool has one queue ordered by priority key (FairShare: fair
// start times per client, urgent first with aging). Each worker has a short
// queue of jobs "reserved" for it: jobs for which waiting for that worker
// beats the best free worker by min_gain_seconds, or ties with it
// (near_tie_fraction) while building less. A slot that frees takes the
// worker's reserved jobs first, then the pool queue. A reservation is only
// made against a free alternative, and every reservation lengthens the
// worker's wait, so its reserved work stays below the cold cost of the jobs
// in it. Re-decision: a worker that became free or changed, and that the pool
// queue has nothing for, takes the reserved job (on any worker) that it would
// now finish soonest compared with staying; a worker that stops accepting
// sends its reserved jobs back to the pool queue.
//
// This file makes the decisions: which queued job goes to which free worker,
// or waits for which busy one (assign(), best_free(), best_busy()), and keeps
// the Policy interface. Its parts, each internal to it:
//   kiln_job_slab.h      job records and their ids
//   kiln_worker_slots.h  each worker's running and reserved jobs, when its
//                        slots free, the steps it is building
//   kiln_cost_model.h    what a chain costs, a job's estimate on a worker,
//                        the weight of a waited second
//   kiln_reservations.h  reserving, starting reserved jobs, re-deciding them
//   kiln_pools.h         each pool's queue, free workers and counts
//
// Complexity per decision: O(chain length) lookups for each free worker
// considered (all of them when at most 64 are free, else only those holding
// the chain's deepest steps), plus at most 64 busy holders of the chain's
// deeper steps; no scan over the queue. See bench/placement_benchmark.cc.
// Thread safety: none (policy.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "scheduler/placement/fair_share.h"
#include "scheduler/placement/inventory.h"
#include "scheduler/placement/kiln_cost_model.h"
#include "scheduler/placement/kiln_job_slab.h"
#include "scheduler/placement/kiln_pools.h"
#include "scheduler/placement/kiln_reservations.h"
#include "scheduler/placement/kiln_worker_slots.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

using namespace kiln_internal;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Jobs with no free matching worker looked past per pool per assign() call,
// so one job that no free worker can take does not block those behind it,
// while a pool full of such jobs costs a bounded amount per call.
constexpr std::size_t kLookahead = 256;
// Busy holders of a job's chain weighed per decision, deepest steps first.
constexpr std::size_t kBusyCandidates = 64;
// Half-life of a worker's recent work (better_free()).
constexpr double kWorkHalfLife = 3600;

class KilnPolicy final : public Policy, private Reservations::Placer {
 public:
  explicit KilnPolicy(const PolicyOptions& options) : options_(options) {}

  std::string name() const override { return "kiln"; }

  void add_job(const PlacementJob& job, double now) override {
    if (jobs_.contains(job.id)) return;  // already known: assign() must return it once
    last_now_ = now;
    JobIndex j = record_job(job);
    KilnJob& J = jobs_[j];

    // The fair-share cost is the cheapest the job could be: everything after
    // the deepest step some worker holds or builds.
    const ChainView chain = costs_.view(J);
    J.best_cost = chain.cost_after(chain.deepest_known());
    // A job submitted before it reached the policy (queued when the scheduler
    // restarted) keeps its age: its fair start may be as early as its submit.
    const double since = std::isnan(job.submitted_at) ? now : std::min(now, job.submitted_at);
    J.key = fair_.priority_key(job.pool, job.client, J.best_cost, job.urgent, since,
                               options_.urgent_advance_seconds);
    J.seq = next_seq_++;
    enqueue(j);
  }

  void remove_job(const std::string& job_id) override {
    JobIndex j = jobs_.find(job_id);
    if (j == kNoJob) return;
    KilnJob& J = jobs_[j];
    if (J.state == JobState::kRunning) return;  // contract: only queued jobs are removed
    // No time is given: the latest one the caller did.
    if (J.state == JobState::kReserved) reservations_.cancel(j, last_now_);
    pools_.leave_queue(J);
    --queued_;
    jobs_.release(j);  // a queued job's heap entry goes stale with its generation
  }

  void update_worker(const PlacementWorker& info, double now) override {
    last_now_ = now;
    auto [it, added] = worker_ids_.try_emplace(info.name, static_cast<WorkerIndex>(workers_.size()));
    if (added) {
      workers_.emplace_back();
      KilnWorker& w = workers_.back();
      w.slot = slot_for(info.name);
      w.pool = pools_.index(info.pool);
      pools_.add_worker(w.pool, it->second);
      by_slot_[w.slot] = it->second;
    }
    WorkerIndex wi = it->second;
    KilnWorker& w = workers_[wi];
    std::uint32_t pool = pools_.index(info.pool);
    if (!added && pool != w.pool) {
      w.present = false;
      pools_.count(wi);  // out of the old pool's counts
      pools_.set_free(wi, false);
      requeue_reserved(wi, now);
      pools_.remove_worker(w.pool, wi);
      w.pool = pool;
      pools_.add_worker(pool, wi);
    }
    w.info = info;
    w.present = true;
    w.labels.clear();
    for (const std::string& l : info.labels) w.labels.push_back(label_id(l));
    std::sort(w.labels.begin(), w.labels.end());
    if (!slots_.eligible(w)) requeue_reserved(wi, now);
    pools_.count(wi);
    slots_.rebuild(w, now);
    pools_.refresh_free(wi);
  }

  void remove_worker(const std::string& name) override {
    auto it = worker_ids_.find(name);
    if (it == worker_ids_.end()) return;
    WorkerIndex wi = it->second;
    KilnWorker& w = workers_[wi];
    pools_.set_free(wi, false);
    requeue_reserved(wi, last_now_);  // no time is given: the latest one the caller did
    // The scheduler releases running jobs first; forget any it did not.
    for (JobIndex j : w.running) {
      slots_.remove_builds(jobs_[j], w);
      jobs_.release(j);
    }
    w.running.clear();
    w.present = false;
    pools_.count(wi);
    pools_.remove_worker(w.pool, wi);
    by_slot_[w.slot] = kNoWorker;
    index_.remove_worker(name);
    slots_.remove_worker(name);
    // The record stays (indices are stable); a worker of the same name that
    // registers again gets a new slot and inventory.
    worker_ids_.erase(it);
  }

  void inventory(const std::string& worker, bool full, const std::vector<std::string>& added,
                 const std::vector<std::string>& removed) override {
    WorkerSlot slot = slot_for(worker);
    std::vector<Digest> add_ids, remove_ids;
    add_ids.reserve(added.size());
    for (const std::string& id : added) add_ids.push_back(step_digest(id));
    for (const std::string& id : removed) remove_ids.push_back(step_digest(id));
    if (full) {
      index_.replace(slot, add_ids);
    } else {
      index_.remove(slot, remove_ids);
      index_.add(slot, add_ids);
    }
    if (slot < by_slot_.size() && by_slot_[slot] != kNoWorker && !add_ids.empty())
      pools_.mark_fresh(by_slot_[slot]);
  }

  std::vector<Assignment> assign(double now) override {
    last_now_ = now;
    std::vector<Assignment> out;
    for (std::uint32_t p = 0; p < pools_.size(); ++p) {
      KilnPool& P = pools_[p];
      if (P.free.empty()) {
        pools_.take_fresh(p);
        continue;
      }
      reservations_.start_reserved(P.free, !P.heap.empty(), now, *this, out);
      const PoolPressure pressure =
          costs_.pressure(p, P.running + reservations_.count(p) + P.queued, P.slots, now);
      place_from_queue(p, pressure, now, out);
      reservations_.recheck_overdue(p, P.workers, P.free, pressure.wait_weight, now, *this, out);
      reservations_.redecide(p, pools_.take_fresh(p), P.workers, pressure.wait_weight, now, *this, out);
    }
    return out;
  }

  void adopt(const PlacementJob& job, const std::string& worker, double now) override {
    auto wit = worker_ids_.find(worker);
    if (wit == worker_ids_.end() || jobs_.contains(job.id)) return;
    JobIndex j = record_job(job);
    KilnJob& J = jobs_[j];
    const ChainView chain = costs_.view(J);
    double cost = costs_.estimate(chain, workers_[wit->second], 0, options_.wait_weight, now).occupancy;
    ++queued_;  // start() counts it out again
    start(j, wit->second, cost, now, now, &chain, nullptr);
  }

  void job_finished(const std::string& worker, const std::string& job_id,
                    const std::vector<StepReport>& steps, double now) override {
    last_now_ = now;
    auto wit = worker_ids_.find(worker);
    if (wit == worker_ids_.end()) return;  // forgotten meanwhile: nothing to learn or free
    WorkerSlot slot = workers_[wit->second].slot;
    std::uint32_t pool = workers_[wit->second].pool;
    std::vector<FinishedStep>& finished = scratch_finished_;
    finished.clear();
    for (const StepReport& s : steps) {
      // Every step of a finished job is in the worker's store now; its own
      // inventory report will say so too (adding twice is harmless).
      Digest digest = step_digest(s.id);
      finished.push_back({digest, index_.add_one(slot, digest), s.cached, s.seconds});
    }
    costs_.learn(pool, finished);
    end_job(worker, job_id, now);
  }

  void job_released(const std::string& worker, const std::string& job_id, double now) override {
    last_now_ = now;
    end_job(worker, job_id, now);
  }

  std::size_t queued() const override { return queued_; }

  void set_client_rate(const std::string& pool, const std::string& client, double rate) override {
    fair_.set_rate(pool, client, rate);
  }

  std::optional<Digest> inventory_digest(const std::string& worker) const override {
    auto slot = index_.slot_of(worker);
    if (!slot) return std::nullopt;
    return index_.set_digest(*slot);
  }

  std::optional<double> expected_seconds(const std::string& job_id) const override {
    JobIndex j = jobs_.find(job_id);
    if (j == kNoJob) return std::nullopt;
    const KilnJob& J = jobs_[j];
    return J.state == JobState::kQueued ? J.best_cost : J.cost_on_worker;
  }

  std::string dump(double now) const override;

 private:
  // ---- records ----

  // A new record for `job` (what add_job and adopt share), known by its id.
  JobIndex record_job(const PlacementJob& job) {
    JobIndex j = jobs_.create(job.id);
    KilnJob& J = jobs_[j];
    J.client = job.client;
    J.urgent = job.urgent;
    J.submitted_at = job.submitted_at;
    J.estimate_seconds = job.estimate_seconds;
    J.pool = pools_.index(job.pool);
    J.chain.clear();
    for (const std::string& s : job.steps) J.chain.push_back(step_digest(s));
    J.labels.clear();
    for (const std::string& l : job.labels) J.labels.push_back(label_id(l));
    std::sort(J.labels.begin(), J.labels.end());
    return j;
  }

  int label_id(const std::string& label) {
    return label_ids_.try_emplace(label, static_cast<int>(label_ids_.size())).first->second;
  }

  WorkerSlot slot_for(const std::string& name) {
    WorkerSlot slot = index_.add_worker(name);
    // Both indexes allocate slots the same way from the same calls.
    slots_.add_worker(name);
    if (by_slot_.size() <= slot) by_slot_.resize(slot + 1, kNoWorker);
    return slot;
  }

  // ---- decisions ----

  static double decayed_work(const KilnWorker& w, double now) {
    return w.recent_work * std::exp2(-std::max(0.0, now - w.recent_at) / kWorkHalfLife);
  }
  // Work started here lately, per slot: where a new chain lands, its later
  // jobs follow (they find it cached), so new chains go to the least loaded.
  static double recent_load(const KilnWorker& w, double now) {
    return decayed_work(w, now) / std::max<double>(1, w.info.capacity);
  }

  // Whether a is a better free worker than b at equal cost: less recent work
  // per slot (recent_load()), then more free slots, then the one that
  // started a job longest ago (spreads load).
  bool better_free(WorkerIndex a, WorkerIndex b, double now) const {
    const KilnWorker& A = workers_[a];
    const KilnWorker& B = workers_[b];
    double la = recent_load(A, now), lb = recent_load(B, now);
    if (std::abs(la - lb) > 1e-9) return la < lb;
    std::size_t fa = A.info.capacity - A.running.size(), fb = B.info.capacity - B.running.size();
    if (fa != fb) return fa > fb;
    if (A.last_start != B.last_start) return A.last_start < B.last_start;
    return a < b;
  }

  // The free worker (eligible, free slot, labels) that finishes J soonest;
  // among those about as soon (near_tie_fraction), the one that builds least.
  Choice best_free(const KilnJob& J, const ChainView& chain, double weight, double now) override {
    const KilnPool& P = pools_[J.pool];
    int n = chain.length();
    std::vector<Choice>& found = scratch_choices_;
    found.clear();
    auto consider = [&](WorkerIndex wi) {
      Estimate e = costs_.estimate(chain, workers_[wi], 0, weight, now);
      found.push_back({e, wi});
    };
    if (P.free.size() <= 64) {
      for (WorkerIndex wi : P.free) {
        if (has_labels(workers_[wi], J)) consider(wi);
      }
    } else {
      // Many free workers: walk the chain from its deepest step, looking
      // only at free holders; the first level with one wins.
      for (int i = n - 1; i >= 0 && found.empty(); --i) {
        auto visit = [&](WorkerSlot slot) {
          WorkerIndex wi = by_slot_[slot];
          if (wi == kNoWorker) return;
          const KilnWorker& w = workers_[wi];
          if (w.free_pos < 0 || w.pool != J.pool || !has_labels(w, J)) return;
          consider(wi);
        };
        if (chain.steps[i].held != kNoRef) index_.for_each_holder(chain.steps[i].held, visit);
        if (chain.steps[i].building != kNoRef)
          slots_.builds().for_each_holder(chain.steps[i].building, visit);
      }
      if (found.empty()) {
        for (WorkerIndex wi : P.free) {
          if (has_labels(workers_[wi], J)) consider(wi);
        }
      }
    }
    Choice best;
    if (found.empty()) return best;
    double soonest = kInf;
    for (const Choice& c : found) soonest = std::min(soonest, c.finish);
    double tie = std::max(options_.min_gain_seconds, options_.near_tie_fraction * soonest);
    for (const Choice& c : found) {
      if (c.finish > soonest + tie) continue;
      if (best.worker == kNoWorker || c.occupancy < best.occupancy ||
          (c.occupancy == best.occupancy &&
           (c.finish < best.finish ||
            (c.finish == best.finish && better_free(c.worker, best.worker, now))))) {
        best = c;
      }
    }
    return best;
  }

  // The busy worker holding a deeper part of J's chain than `free_depth` that
  // would finish J soonest counting its wait (times `weight`), if it beats
  // `to_beat`.
  Choice best_busy(const KilnJob& J, const ChainView& chain, int free_depth, double to_beat, double weight,
                   double now) {
    Choice best;
    best.finish = to_beat;
    int n = chain.length();
    ++epoch_;
    if (seen_.size() < workers_.size()) seen_.resize(workers_.size(), 0);
    // Deepest levels first, where the few holders that save the most are;
    // a shallow step (a base image) may have every worker as a holder, and
    // waiting to save only that is rarely worth a scan of them all.
    std::size_t budget = kBusyCandidates;
    for (int i = n - 1; i > free_depth && budget > 0; --i) {
      // Nobody holding (or building) only steps up to i can finish before
      // cost_after(i).
      if (chain.cost_after(i) >= best.finish) break;
      auto visit = [&](WorkerSlot slot) {
        WorkerIndex wi = by_slot_[slot];
        if (wi == kNoWorker || seen_[wi] == epoch_ || budget == 0) return;
        seen_[wi] = epoch_;  // first seen at its deepest level
        --budget;
        KilnWorker& w = workers_[wi];
        if (w.free_pos >= 0 || w.pool != J.pool || !slots_.eligible(w) || !has_labels(w, J)) return;
        // A slot expected to be free by now is not (the worker is busy): a
        // job overran, so its estimates are redone first.
        if (w.free_at.empty() || w.free_at.front() < now) slots_.rebuild(w, now);
        Estimate e = costs_.estimate(chain, w, WorkerSlots::wait(w, now), weight, now);
        if (e.finish < best.finish) best = {e, wi};
      };
      if (chain.steps[i].held != kNoRef) index_.for_each_holder(chain.steps[i].held, visit);
      if (chain.steps[i].building != kNoRef) slots_.builds().for_each_holder(chain.steps[i].building, visit);
    }
    return best;
  }

  // Starts J on w now. `begins`: when it can begin building (a step it
  // shares with a build in progress there is ready), so its expected end
  // counts that wait. `chain`: J's chain as the caller viewed it, or null
  // (a job that was reserved: it has its tail from then).
  void start(JobIndex j, WorkerIndex wi, double cost, double begins, double now, const ChainView* chain,
             std::vector<Assignment>* out) {
    KilnJob& J = jobs_[j];
    KilnWorker& w = workers_[wi];
    // A job keeps the tail it got when first reserved, even if it went back
    // to the queue since.
    if (J.tail.empty()) {
      if (chain) {
        CostModel::remember_tail(J, *chain);
      } else {
        CostModel::remember_tail(J, costs_.view(J));
      }
    }
    pools_.leave_queue(J);
    J.state = JobState::kRunning;
    J.worker = wi;
    J.cost_on_worker = cost;
    J.expected_end = std::max(now, begins) + cost;
    w.running.push_back(j);
    pools_.count(wi);
    w.last_start = now;
    w.recent_work = decayed_work(w, now) + cost;
    w.recent_at = now;
    slots_.add_builds(J, w);
    --queued_;
    slots_.rebuild(w, now);
    pools_.refresh_free(wi);
    if (out) out->push_back({J.id, w.info.name});
  }

  void start_reserved_job(JobIndex j, WorkerIndex wi, double cost, double begins, double now,
                          std::vector<Assignment>& out) override {
    start(j, wi, cost, begins, now, nullptr, &out);
  }

  // J waits for the worker `on` (kiln_reservations.h).
  void reserve(JobIndex j, const Choice& on, const ChainView& chain, double now) {
    pools_.leave_queue(jobs_[j]);
    reservations_.reserve(j, on.worker, on.occupancy, on.ready, chain, now);
  }

  // The worker's reserved jobs go back to the pool queue, keeping their
  // place (it is to take nothing new).
  void requeue_reserved(WorkerIndex wi, double now) {
    while (!workers_[wi].reserved.empty()) {
      JobIndex j = workers_[wi].reserved.back();
      reservations_.cancel(j, now);
      enqueue(j);
    }
  }

  void enqueue(JobIndex j) {
    if (jobs_[j].state != JobState::kReserved) ++queued_;  // a reserved job is counted already
    pools_.enqueue(j);
  }

  void place_from_queue(std::uint32_t p, const PoolPressure& pressure, double now,
                        std::vector<Assignment>& out) {
    KilnPool& P = pools_[p];
    std::vector<QueueEntry>& skipped = scratch_skipped_;
    skipped.clear();
    while (!P.free.empty() && !P.heap.empty() && skipped.size() < kLookahead) {
      QueueEntry e = Pools::pop(P);
      if (!pools_.live(e)) continue;
      KilnJob& J = jobs_[e.job];
      const ChainView chain = costs_.view(J);
      Choice free = best_free(J, chain, pressure.wait_weight, now);
      if (free.worker == kNoWorker) {
        skipped.push_back(e);  // no free worker may take it; look behind it
        continue;
      }
      // A busy (or shared-build) option wins if it finishes sooner by
      // min_gain, or, while the pool has more jobs than slots, about as soon
      // (within near_tie_fraction) while occupying less of the farm: less
      // rebuilding. With slots to spare, a tie goes to starting now.
      const bool oversubscribed = pressure.oversubscribed;
      double tie = oversubscribed
                       ? std::max(options_.min_gain_seconds, options_.near_tie_fraction * free.finish)
                       : 0.0;
      Choice busy = best_busy(J, chain, free.depth, free.finish + tie, pressure.wait_weight, now);
      if (busy.worker != kNoWorker && busy.finish >= free.finish - options_.min_gain_seconds &&
          (!oversubscribed || busy.occupancy >= free.occupancy - options_.min_gain_seconds)) {
        busy.worker = kNoWorker;
      }
      if (busy.worker != kNoWorker) {
        reserve(e.job, busy, chain, now);
      } else if (free.start_at > now && !P.heap.empty()) {
        // Best on a free worker once a step it shares there is built, and
        // other jobs are waiting: wait there, leaving them the slot meanwhile.
        // (With nothing else queued it starts at once and the builder makes
        // it wait for the shared step inside the slot: the same finish.)
        reserve(e.job, free, chain, now);
      } else {
        start(e.job, free.worker, free.occupancy, free.start_at, now, &chain, &out);
      }
    }
    for (const QueueEntry& e : skipped) Pools::push(P, e);
  }

  void end_job(const std::string& worker, const std::string& job_id, double now) {
    JobIndex j = jobs_.find(job_id);
    if (j == kNoJob) return;
    KilnJob& J = jobs_[j];
    if (J.state != JobState::kRunning) return;
    WorkerIndex wi = J.worker;
    KilnWorker& w = workers_[wi];
    if (w.info.name != worker) return;
    w.running.erase(std::find(w.running.begin(), w.running.end(), j));
    pools_.count(wi);
    slots_.remove_builds(J, w);
    jobs_.release(j);
    slots_.rebuild(w, now);
    pools_.refresh_free(wi);
  }

  PolicyOptions options_;
  FairShare fair_;
  InventoryIndex index_;  // what each worker's store holds

  JobSlab jobs_;
  std::vector<KilnWorker> workers_;
  WorkerSlots slots_{options_, jobs_, index_};
  CostModel costs_{options_, index_, slots_};
  Reservations reservations_{options_, jobs_, workers_, slots_, costs_};
  Pools pools_{jobs_, workers_, slots_};
  std::unordered_map<std::string, WorkerIndex> worker_ids_;
  std::vector<WorkerIndex> by_slot_;
  std::unordered_map<std::string, int> label_ids_;
  std::size_t queued_ = 0;
  std::uint64_t next_seq_ = 0;
  // The latest time a caller gave; for remove_job() and remove_worker(),
  // which are given none.
  double last_now_ = 0;

  // Scratch, reused across decisions to avoid allocation.
  std::vector<std::uint32_t> seen_;
  std::uint32_t epoch_ = 0;
  std::vector<QueueEntry> scratch_skipped_;
  std::vector<FinishedStep> scratch_finished_;
  std::vector<Choice> scratch_choices_;
};

std::string KilnPolicy::dump(double now) const {
  std::string out = "kiln\n";
  for (const auto& [pool_name, p] : pools_.by_name()) {
    const KilnPool& P = pools_[p];
    std::vector<QueueEntry> queue;
    for (const QueueEntry& e : P.heap) {
      if (pools_.live(e)) queue.push_back(e);
    }
    std::sort(queue.begin(), queue.end(), [](const QueueEntry& a, const QueueEntry& b) { return b < a; });
    out += fmt::format("pool {}: queue [", pool_name);
    for (std::size_t i = 0; i < queue.size(); ++i) out += (i ? " " : "") + jobs_[queue[i].job].id;
    out += "]\n";
    std::vector<WorkerIndex> ws = P.workers;
    std::sort(ws.begin(), ws.end(),
              [&](WorkerIndex a, WorkerIndex b) { return workers_[a].info.name < workers_[b].info.name; });
    for (WorkerIndex wi : ws) {
      const KilnWorker& w = workers_[wi];
      out += fmt::format("  {} {}/{}", w.info.name, w.running.size(), w.info.capacity);
      if (!slots_.eligible(w)) out += " not-accepting";
      std::vector<std::string> running;
      for (JobIndex j : w.running) running.push_back(jobs_[j].id);
      std::sort(running.begin(), running.end());
      out += fmt::format(" running [{}]", fmt::join(running, " "));
      if (!w.reserved.empty()) {
        out += " reserved [";
        for (std::size_t i = 0; i < w.reserved.size(); ++i) out += (i ? " " : "") + jobs_[w.reserved[i]].id;
        out += "]";
      }
      if (slots_.eligible(w) && !w.free_at.empty() && w.free_at.front() > now) {
        out += fmt::format(" free-in {:.0f}s", w.free_at.front() - now);
      }
      out += fmt::format(" holds {}\n", index_.size_of(w.slot));
    }
  }
  std::string clients = fair_.dump(now);
  if (!clients.empty()) out += "clients: " + clients + "\n";
  return out;
}

}  // namespace

std::unique_ptr<Policy> make_kiln_policy(const PolicyOptions& options) {
  return std::make_unique<KilnPolicy>(options);
}

}  // namespace kiln::placement
