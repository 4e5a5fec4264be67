// The kiln policy's reservations (internal to kiln_policy.cc and its parts).
// A job reserved for a worker waits in that worker's own short queue
// (KilnWorker::reserved, in priority order) instead of the pool queue,
// because waiting for that busy, warm worker (or, on a free one, for a step
// it is building that the job shares) beats the best free worker. This owns
// making and cancelling reservations, starting reserved jobs when a slot of
// their worker frees, and re-deciding them as estimates change: when a
// worker runs a job well past its expected end (recheck_overdue()) and when
// a worker becomes free or changes (redecide()).
//
//   // The policy decided that job j waits for busy worker `on.worker`:
//   reservations.reserve(j, on.worker, on.occupancy, on.ready, chain, now);
//   // In each assign(), for each pool with a free worker:
//   reservations.start_reserved(free_workers, others_queued, now, placer, out);
//   reservations.recheck_overdue(p, pool_workers, free_workers, weight, now, placer, out);
//   reservations.redecide(p, fresh_workers, pool_workers, weight, now, placer, out);
//
// Contract: a reserved job is in state kReserved, in its worker's `reserved`
// list, counted in count(pool), and its chain counts as being built there
// (WorkerSlots::add_builds()), until it starts or cancel(). cancel() leaves
// it in state kReserved on no worker, for the caller to requeue, start
// elsewhere or drop. Re-deciding asks the policy (Placer) for the best free
// worker and to start a job, so it decides as the policy does. Every change
// to a worker's reserved jobs rebuilds its expected free times.
// Thread safety: none; one KilnPolicy owns it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/placement/kiln_cost_model.h"
#include "scheduler/placement/kiln_job_slab.h"
#include "scheduler/placement/kiln_worker_slots.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement::kiln_internal {

class Reservations {
 public:
  // What re-deciding a reservation needs of the policy that owns it.
  class Placer {
   public:
    // The free worker that should take `job` now (no worker: none may);
    // `chain` is the job's, viewed now; a waited second weighs `weight`.
    virtual Choice best_free(const KilnJob& job, const ChainView& chain, double weight, double now) = 0;
    // Starts job j, taken off its reservation, on worker wi now, expected to
    // occupy a slot `cost` seconds from `begins` on; appends the assignment.
    virtual void start_reserved_job(JobIndex j, WorkerIndex wi, double cost, double begins, double now,
                                    std::vector<Assignment>& out) = 0;

   protected:
    ~Placer() = default;
  };

  // Everything passed in outlives this.
  Reservations(const PolicyOptions& options, JobSlab& jobs, std::vector<KilnWorker>& workers,
               WorkerSlots& slots, const CostModel& costs)
      : options_(options), jobs_(jobs), workers_(workers), slots_(slots), costs_(costs) {}

  // Jobs reserved on the pool's workers.
  std::size_t count(std::uint32_t pool) const { return pool < pools_.size() ? pools_[pool].jobs : 0; }

  // Reserves job j (whose chain is `chain`, viewed now) on worker wi, where
  // it is expected to occupy a slot `cost` seconds, not before `not_before`
  // (when a step it shares there should be built; 0: no such step). It
  // takes its place among the worker's reserved jobs by (key, seq).
  void reserve(JobIndex j, WorkerIndex wi, double cost, double not_before, const ChainView& chain,
               double now);
  // Takes reserved job j off its worker (see the contract above).
  void cancel(JobIndex j, double now);

  // Each worker of `free` (the pool's workers with a free slot; copied, as
  // starting jobs changes it) starts its reserved jobs in order while it
  // has a free slot, skipping, while `others_queued`, one that would wait
  // for a step a running job there builds.
  void start_reserved(const std::vector<WorkerIndex>& free, bool others_queued, double now, Placer& placer,
                      std::vector<Assignment>& out);

  // Reservations rest on estimates. Where a busy worker with reserved jobs
  // runs a job well past its expected end (by min_gain_seconds and
  // near_tie_fraction of its cost), its estimates are redone (the job now
  // ends later: WorkerSlots::expected_end_of()) and each job reserved there
  // is weighed again against the best free worker; it moves when that
  // finishes it sooner by min_gain_seconds. At most once a second per pool,
  // and a bounded number of jobs weighed. `free`: the pool's free workers,
  // as starting jobs changes them.
  void recheck_overdue(std::uint32_t pool, std::span<const WorkerIndex> pool_workers,
                       const std::vector<WorkerIndex>& free, double weight, double now, Placer& placer,
                       std::vector<Assignment>& out);

  // Each worker of `fresh` (became free or changed since the last call, and
  // the pool queue had nothing for it) takes the reserved job on any worker
  // of the pool that it would now finish soonest compared with staying,
  // while the gain is above min_gain_seconds. Workers free all along were
  // weighed when those jobs were reserved, so they are not asked again.
  void redecide(std::uint32_t pool, std::span<const WorkerIndex> fresh,
                std::span<const WorkerIndex> pool_workers, double weight, double now, Placer& placer,
                std::vector<Assignment>& out);

 private:
  struct PoolReservations {
    std::size_t jobs = 0;     // reserved on its workers
    double next_recheck = 0;  // recheck_overdue()
  };

  PoolReservations& pool(std::uint32_t p);
  // Takes job j, the k-th reserved on its worker, off that worker's list and
  // builds in progress.
  void detach(JobIndex j, std::size_t k);

  const PolicyOptions options_;
  JobSlab& jobs_;
  std::vector<KilnWorker>& workers_;
  WorkerSlots& slots_;
  const CostModel& costs_;
  std::vector<PoolReservations> pools_;  // by pool index

  // Scratch: lists that starting jobs changes while they are walked.
  std::vector<WorkerIndex> scratch_workers_;
  std::vector<JobIndex> scratch_jobs_;
};

}  // namespace kiln::placement::kiln_internal
