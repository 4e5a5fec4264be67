// The kiln policy's job records (internal to kiln_policy.cc and its parts):
// a slab of KilnJob records addressed by a stable JobIndex, each record
// reused once its job has ended, and the map from job id to index.
//
//   JobSlab jobs;
//   JobIndex j = jobs.create("job-1");   // a record found by its id from now on
//   jobs[j].state = JobState::kQueued;
//   assert(jobs.find("job-1") == j);
//   jobs.release(j);                      // forgotten: find("job-1") == kNoJob
//
// Contract: an index names the same job until release(). A released record is
// reused by a later create() with its generation bumped, so whoever kept an
// (index, generation) pair (the pool queue's heap entries) can tell it is
// stale. A reused record keeps the fields of its previous job that release()
// does not clear (chain, tail and worker are cleared): create()'s caller
// fills what it needs. create() may move every record: hold indices, not
// references, across it.
// Thread safety: none; one KilnPolicy owns it.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/sha256.h"
#include "scheduler/placement/inventory.h"

namespace kiln::placement::kiln_internal {

using JobIndex = std::uint32_t;
inline constexpr JobIndex kNoJob = std::numeric_limits<JobIndex>::max();
// A worker's place in the kiln policy's worker table (kiln_worker_slots.h).
using WorkerIndex = std::uint32_t;
inline constexpr WorkerIndex kNoWorker = std::numeric_limits<WorkerIndex>::max();

enum class JobState : std::uint8_t { kFree, kQueued, kReserved, kRunning };

struct KilnJob {
  // What the scheduler said of it (PlacementJob), interned.
  std::string id;
  std::string client;
  bool urgent = false;
  double submitted_at = 0;
  double estimate_seconds = 0;
  std::vector<Digest> chain;
  std::vector<int> labels;  // sorted label ids
  std::uint32_t pool = 0;

  // Its place in its pool's queue (kiln_pools.h; key and seq from add_job).
  double key = 0;
  std::uint64_t seq = 0;
  std::uint32_t generation = 0;  // bumped by JobSlab::release(): stale heap entries
  JobState state = JobState::kFree;
  double best_cost = 0;  // cheapest cost anywhere, when added

  // Where it is reserved or running (kiln_worker_slots.h, kiln_reservations.h).
  WorkerIndex worker = kNoWorker;  // reserved for / running on
  double cost_on_worker = 0;       // expected seconds there
  double expected_start = 0;       // reserved: when a slot there is expected to free
  double not_before = 0;           // reserved: when a step it shares there should be built
  double expected_end = 0;         // running
  std::vector<IdRef> build_refs;   // its chain's refs in the builds in progress, while reserved or running
  std::vector<float> tail;         // reserved or running: tail[i] = cost of chain steps i..
};

class JobSlab {
 public:
  // A record for the job `id` (which must not be known), found by find(id)
  // until release().
  JobIndex create(const std::string& id);
  // The job known by `id`, or kNoJob.
  JobIndex find(const std::string& id) const {
    auto it = ids_.find(id);
    return it == ids_.end() ? kNoJob : it->second;
  }
  bool contains(const std::string& id) const { return ids_.contains(id); }
  // Forgets the job: its id is unknown from now on and its record (state
  // kFree, generation bumped) will be reused.
  void release(JobIndex j);

  KilnJob& operator[](JobIndex j) { return jobs_[j]; }
  const KilnJob& operator[](JobIndex j) const { return jobs_[j]; }

 private:
  std::vector<KilnJob> jobs_;
  std::vector<JobIndex> free_;
  std::unordered_map<std::string, JobIndex> ids_;
};

}  // namespace kiln::placement::kiln_internal
