// The kiln policy's pools (internal to kiln_policy.cc and its parts). Per
// pool: its queue of jobs (a binary heap by priority key; entries of jobs
// removed, started or reserved since are skipped when reached), its workers,
// those with a free slot, those that became free or changed since the last
// assign() (re-decision looks only at these), and the counts of slots,
// running and queued jobs that CostModel::pressure() reads.
//
//   std::uint32_t p = pools.index("linux");
//   pools.enqueue(j);                        // jobs[j].pool == p
//   QueueEntry head = Pools::pop(pools[p]);  // smallest (key, seq) first
//   if (pools.live(head)) ...
//   pools.refresh_free(wi);                  // after the worker's slots changed
//
// Contract: a worker's `free_pos` and `fresh` flag mirror its pool's `free`
// and `fresh` lists, and its counted_* fields its share of the pool's counts;
// only these functions change them. A job is counted in its pool's `queued`
// from enqueue() until leave_queue() (started or reserved) or until it is
// removed (the caller counts it out).
// Thread safety: none; one KilnPolicy owns it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "scheduler/placement/kiln_job_slab.h"
#include "scheduler/placement/kiln_worker_slots.h"

namespace kiln::placement::kiln_internal {

struct QueueEntry {
  double key;
  std::uint64_t seq;
  JobIndex job;
  std::uint32_t generation;  // the job record's when queued: a later one is another job
  // std::push_heap makes a max-heap: the "largest" entry is the smallest key.
  bool operator<(const QueueEntry& o) const { return key != o.key ? key > o.key : seq > o.seq; }
};

struct KilnPool {
  std::string name;
  std::vector<QueueEntry> heap;  // the queue
  std::vector<WorkerIndex> workers;
  std::vector<WorkerIndex> free;       // eligible, with a free slot
  std::vector<WorkerIndex> fresh;      // became free or changed since the last assign()
  std::size_t slots = 0, running = 0;  // over its eligible workers (count())
  std::size_t queued = 0;              // jobs in the queue (not reserved, running or removed)
};

class Pools {
 public:
  // Everything passed in outlives this.
  Pools(JobSlab& jobs, std::vector<KilnWorker>& workers, const WorkerSlots& slots)
      : jobs_(jobs), workers_(workers), slots_(slots) {}

  // The pool's index, adding an empty pool if it is new.
  std::uint32_t index(const std::string& name);
  std::uint32_t size() const { return static_cast<std::uint32_t>(pools_.size()); }
  KilnPool& operator[](std::uint32_t p) { return pools_[p]; }
  const KilnPool& operator[](std::uint32_t p) const { return pools_[p]; }
  // Pool indices by name.
  const std::map<std::string, std::uint32_t>& by_name() const { return ids_; }

  // The queue. Puts job j (new, reserved, or queued already) in its pool's
  // queue by its (key, seq); it is queued from now on.
  void enqueue(JobIndex j);
  // Whether the entry's job is still the one queued, and still queued.
  bool live(const QueueEntry& e) const {
    const KilnJob& J = jobs_[e.job];
    return J.generation == e.generation && J.state == JobState::kQueued;
  }
  // Counts a job out of its pool's queue if it is queued (it is being
  // started or reserved; its entry goes stale).
  void leave_queue(const KilnJob& J) {
    if (J.state == JobState::kQueued) --pools_[J.pool].queued;
  }
  // Takes the head entry off a non-empty queue; push() puts one back.
  static QueueEntry pop(KilnPool& P) {
    std::pop_heap(P.heap.begin(), P.heap.end());
    QueueEntry e = P.heap.back();
    P.heap.pop_back();
    return e;
  }
  static void push(KilnPool& P, const QueueEntry& e) {
    P.heap.push_back(e);
    std::push_heap(P.heap.begin(), P.heap.end());
  }

  // The workers.
  void add_worker(std::uint32_t p, WorkerIndex wi) { pools_[p].workers.push_back(wi); }
  void remove_worker(std::uint32_t p, WorkerIndex wi);
  // Puts the worker in or out of its pool's free list.
  void set_free(WorkerIndex wi, bool free);
  // Puts it in the free list if it has a free slot, marking it fresh if it
  // was not there; else out.
  void refresh_free(WorkerIndex wi);
  // Brings its pool's slot and running counts in step with it.
  void count(WorkerIndex wi);
  // A worker that became free or changed.
  void mark_fresh(WorkerIndex wi);
  // The pool's fresh workers, which no longer count as such (valid until the
  // next call).
  std::span<const WorkerIndex> take_fresh(std::uint32_t p);

 private:
  JobSlab& jobs_;
  std::vector<KilnWorker>& workers_;
  const WorkerSlots& slots_;
  std::vector<KilnPool> pools_;
  std::map<std::string, std::uint32_t> ids_;
  std::vector<WorkerIndex> taken_fresh_;  // take_fresh()
};

}  // namespace kiln::placement::kiln_internal
