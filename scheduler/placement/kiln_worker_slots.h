// The kiln policy's workers and their slots (internal to kiln_policy.cc and
// its parts). A KilnWorker record holds what the worker runs, the jobs
// reserved for it (kiln_reservations.h), when each of its slots is expected
// to free, and which steps it is building for those jobs. WorkerSlots keeps
// the expected free times and the builds in progress, and answers what they
// imply: how long a job would wait for a slot there, when a step being built
// there will be ready for a job that shares it, and whether a reserved job
// must wait for a build a running job does.
//
//   WorkerSlots slots(options, jobs, held);
//   slots.add_builds(jobs[j], w);   // w builds j's chain: running or reserved there
//   w.running.push_back(j);
//   slots.rebuild(w, now);          // after w's running or reserved jobs changed
//   double wait = WorkerSlots::wait(w, now);
//
// Contract: a worker's `free_at` (and its reserved jobs' expected_start) is
// right after rebuild(), until its running or reserved jobs or their
// estimates change; the caller rebuilds after each such change. A job's chain
// counts as being built on a worker from add_builds() to remove_builds()
// (several jobs there may share steps); the job keeps its refs
// (KilnJob::build_refs), valid until remove_builds().
// Thread safety: none; one KilnPolicy owns it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/placement/inventory.h"
#include "scheduler/placement/kiln_job_slab.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement::kiln_internal {

struct KilnWorker {
  PlacementWorker info;
  WorkerSlot slot = 0;  // in the inventory index and the builds in progress
  std::uint32_t pool = 0;
  std::vector<int> labels;  // sorted label ids
  bool present = true;

  // Its slots (WorkerSlots).
  std::vector<JobIndex> running;
  std::vector<JobIndex> reserved;  // in (key, seq) order (kiln_reservations.h)
  std::vector<double> free_at;     // min-heap: when each slot is expected to free (rebuild())
  std::vector<std::pair<IdRef, std::uint32_t>> build_counts;  // refs in builds() -> jobs here counting them

  // Where new chains go (kiln_policy.cc's better_free()).
  double last_start = -std::numeric_limits<double>::infinity();
  double recent_work = 0;  // slot-seconds started here, decayed to recent_at
  double recent_at = 0;

  // Its place in its pool (kiln_pools.h).
  std::size_t counted_slots = 0, counted_running = 0;  // its part of its pool's counts
  std::int64_t free_pos = -1;                          // position in its pool's free list, or -1
  bool fresh = false;                                  // in its pool's list of fresh workers
};

// Whether w has every label the job asks for.
inline bool has_labels(const KilnWorker& w, const KilnJob& job) {
  for (int l : job.labels) {
    if (!std::binary_search(w.labels.begin(), w.labels.end(), l)) return false;
  }
  return true;
}

class WorkerSlots {
 public:
  // `jobs` and `held` (what each worker's store holds) outlive this.
  WorkerSlots(const PolicyOptions& options, JobSlab& jobs, const InventoryIndex& held)
      : low_disk_bytes_(options.low_disk_bytes), jobs_(jobs), held_(held) {}

  // Whether w may get new work: registered, accepting, with slots, and not
  // below PolicyOptions::low_disk_bytes (0 bytes reported: unknown, fine).
  bool eligible(const KilnWorker& w) const {
    if (!w.present || !w.info.accepting || w.info.capacity == 0) return false;
    return low_disk_bytes_ == 0 || w.info.disk_free_bytes == 0 || w.info.disk_free_bytes >= low_disk_bytes_;
  }
  bool has_free_slot(const KilnWorker& w) const { return eligible(w) && w.running.size() < w.info.capacity; }

  // Recomputes when each slot of w frees (running jobs' expected ends, then
  // its reserved jobs placed in order on the earliest slot), and so each
  // reserved job's expected_start. A worker that is not eligible never frees.
  void rebuild(KilnWorker& w, double now);
  // When a running job should end. One past its estimate is expected to run
  // as long again as it has overrun: the longer it overruns, the less the
  // estimate is worth.
  static double expected_end_of(const KilnJob& running, double now) {
    return running.expected_end >= now ? running.expected_end : now + (now - running.expected_end);
  }
  // How long a job would wait for a slot of w.
  static double wait(const KilnWorker& w, double now) { return std::max(0.0, w.free_at.front() - now); }
  // When `step` (a ref in builds()) that w is building should be ready: the
  // earliest end of one of w's jobs building it, less what that job builds
  // after it; `now` if none.
  double ready_at(const KilnWorker& w, IdRef step, double now) const;
  // Whether a running job on w is building a step of `reserved`'s chain (a
  // job reserved on w) that w does not hold yet: it should not start before.
  bool blocked(const KilnJob& reserved, const KilnWorker& w) const;

  // The builds in progress: which steps each worker is building (or will
  // build) for its running and reserved jobs.
  const InventoryIndex& builds() const { return builds_; }
  // Allocates the worker's slot in builds(); slots are allocated the same
  // way as in the inventory index, so calling both with the same names in
  // the same order gives the same slots.
  WorkerSlot add_worker(const std::string& name) { return builds_.add_worker(name); }
  void remove_worker(const std::string& name) { builds_.remove_worker(name); }
  // The job's chain counts as being built on w (its refs kept in the job).
  void add_builds(KilnJob& job, KilnWorker& w);
  // ... and no longer.
  void remove_builds(KilnJob& job, KilnWorker& w);

 private:
  std::uint64_t low_disk_bytes_;
  JobSlab& jobs_;
  const InventoryIndex& held_;
  InventoryIndex builds_;
};

}  // namespace kiln::placement::kiln_internal
