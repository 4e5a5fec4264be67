// The kiln policy's cost model (internal to kiln_policy.cc and its parts):
// what a job's chain costs, how soon a job would finish on a given worker,
// and how much a waited second weighs in a pool right now.
//
//   ChainView chain = costs.view(job);                     // once per decision
//   Estimate e = costs.estimate(chain, w, wait, weight, now);
//   double cheapest = chain.cost_after(chain.deepest_known());
//
// A step's cost is the seconds a job_finished report gave when it was built
// cold (kept in the inventory index while any worker holds it). A step never
// seen built costs, in order: the client's estimate spread over the chain;
// what the step at the same distance after the same cached ancestor cost last
// time (learn()); the pool's running mean of cold steps;
// PolicyOptions::default_step_seconds. On a worker, a job's chain costs what
// follows the deepest step the worker holds, or is building for another job
// (snapshots are layered; the builder runs identical steps once, so the job
// starts when that step is built and shares it).
//
// Contract: view() and estimate() return values and change nothing: a
// ChainView describes the chain as it was when viewed, and is passed to every
// estimate made from it (view again after the inventory, the builds in
// progress or the learned costs change). learn() and pressure() update what
// the model has learned (step costs, pool means, a pool's recent busy
// fraction).
// Thread safety: none; one KilnPolicy owns it.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/sha256.h"
#include "scheduler/placement/inventory.h"
#include "scheduler/placement/kiln_job_slab.h"
#include "scheduler/placement/kiln_worker_slots.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement::kiln_internal {

inline constexpr IdRef kNoRef = std::numeric_limits<IdRef>::max();

// A job's chain as placement sees it at one moment (CostModel::view()).
struct ChainView {
  struct Step {
    IdRef held;        // its ref in the inventory index; kNoRef: no worker holds it
    IdRef building;    // its ref in the builds in progress; kNoRef: no worker builds it
    double cost_from;  // what the chain costs from this step on
  };
  // One per step of the chain, base first, then one more: no refs, cost 0
  // (for an empty chain: the job's whole cost).
  std::vector<Step> steps;

  int length() const { return static_cast<int>(steps.size()) - 1; }
  // What a worker whose deepest held (or building) step is `depth` builds:
  // the steps after it (depth -1: the whole chain).
  double cost_after(int depth) const { return steps[depth + 1].cost_from; }
  // The deepest step some worker holds or is building; -1: none.
  int deepest_known() const;
};

// A job on one worker (CostModel::estimate()).
struct Estimate {
  int depth = -1;        // deepest step of the chain held or being built there; -1: none
  double occupancy = 0;  // seconds of a slot there: building the steps after `depth`
  double start_at = 0;   // when it could start there
  double ready = 0;      // when the shared step it waits for is built; 0: none
  // (start_at - now) x weight + occupancy: what placement minimises.
  double finish = std::numeric_limits<double>::infinity();
};

// A worker and the estimate there; no worker: nothing found.
struct Choice : Estimate {
  WorkerIndex worker = kNoWorker;
};

// How decisions in one pool weigh waiting, for one assign() pass.
struct PoolPressure {
  double wait_weight;   // a waited second against a built second
  bool oversubscribed;  // more jobs than slots
};

// A step of a finished job, now in its worker's store (CostModel::learn()).
struct FinishedStep {
  Digest digest;
  IdRef ref;  // in the inventory index
  bool cached;
  double seconds;
};

class CostModel {
 public:
  // `held` (what each worker's store holds; learn() sets step costs there)
  // and `slots` (what each worker is building) outlive this.
  CostModel(const PolicyOptions& options, InventoryIndex& held, const WorkerSlots& slots)
      : default_step_seconds_(options.default_step_seconds),
        wait_weight_(options.wait_weight),
        held_(held),
        slots_(slots) {}

  // The job's chain now: where its steps are held or being built, and what
  // each costs.
  ChainView view(const KilnJob& job) const;

  // The job whose chain is `chain` on w, if it waited `wait` for a slot
  // there, a waited second weighing `weight`.
  Estimate estimate(const ChainView& chain, const KilnWorker& w, double wait, double weight,
                    double now) const;

  // What a reserved job's finish is where it is reserved, weighed as
  // estimate() weighs one: its wait there, weighted, plus its cost there.
  static double staying_finish(const KilnJob& reserved, double weight, double now);

  // Keeps in the job what its chain costs from each step on (KilnJob::tail),
  // from which others learn when a step it builds will be ready
  // (WorkerSlots::ready_at()).
  static void remember_tail(KilnJob& job, const ChainView& chain);

  // Learns from a finished job's steps (in chain order) in `pool`: a step
  // built cold costs what it took from now on, feeds the pool's mean, and
  // what it took after the deepest step found cached before it.
  void learn(std::uint32_t pool, std::span<const FinishedStep> steps);

  // The weight of a waited second for decisions in `pool` now, given its
  // jobs (running, reserved and queued) and eligible slots, and whether it
  // is oversubscribed. Advances the pool's recent busy fraction to `now`.
  PoolPressure pressure(std::uint32_t pool, std::size_t jobs, std::size_t slots, double now);

 private:
  struct PoolCosts {
    double step_mean = 0;  // cold step seconds, running mean
    double step_samples = 0;
    double busy = 1;  // recent fraction of slots in demand (pressure())
    double busy_at = -1;
  };

  PoolCosts& pool(std::uint32_t p);
  static std::uint64_t learned_key(const Digest& anchor, int distance);
  void learn_after(const Digest& anchor, int distance, double seconds);

  double default_step_seconds_;
  double wait_weight_;
  InventoryIndex& held_;
  const WorkerSlots& slots_;
  std::vector<PoolCosts> pools_;                      // by pool index
  std::unordered_map<std::uint64_t, float> learned_;  // learn_after()
};

}  // namespace kiln::placement::kiln_internal
