// The kiln policy's pools (kiln_pools.h).
#include "scheduler/placement/kiln_pools.h"

#include <algorithm>

namespace kiln::placement::kiln_internal {

std::uint32_t Pools::index(const std::string& name) {
  auto [it, added] = ids_.try_emplace(name, static_cast<std::uint32_t>(pools_.size()));
  if (added) pools_.push_back(KilnPool{.name = name});
  return it->second;
}

void Pools::enqueue(JobIndex j) {
  KilnJob& J = jobs_[j];
  if (J.state != JobState::kQueued) ++pools_[J.pool].queued;
  J.state = JobState::kQueued;
  push(pools_[J.pool], {J.key, J.seq, j, J.generation});
}

void Pools::remove_worker(std::uint32_t p, WorkerIndex wi) {
  auto& list = pools_[p].workers;
  list.erase(std::remove(list.begin(), list.end(), wi), list.end());
}

void Pools::set_free(WorkerIndex wi, bool free) {
  KilnWorker& w = workers_[wi];
  auto& list = pools_[w.pool].free;
  if (free && w.free_pos < 0) {
    w.free_pos = static_cast<std::int64_t>(list.size());
    list.push_back(wi);
  } else if (!free && w.free_pos >= 0) {
    WorkerIndex last = list.back();
    list[w.free_pos] = last;
    workers_[last].free_pos = w.free_pos;
    list.pop_back();
    w.free_pos = -1;
  }
}

void Pools::refresh_free(WorkerIndex wi) {
  KilnWorker& w = workers_[wi];
  bool free = slots_.has_free_slot(w);
  if (free && w.free_pos < 0) mark_fresh(wi);
  set_free(wi, free);
}

void Pools::count(WorkerIndex wi) {
  KilnWorker& w = workers_[wi];
  KilnPool& P = pools_[w.pool];
  P.slots -= w.counted_slots;
  P.running -= w.counted_running;
  bool in = w.present && slots_.eligible(w);
  w.counted_slots = in ? w.info.capacity : 0;
  w.counted_running = in ? w.running.size() : 0;
  P.slots += w.counted_slots;
  P.running += w.counted_running;
}

void Pools::mark_fresh(WorkerIndex wi) {
  KilnWorker& w = workers_[wi];
  if (w.fresh) return;
  w.fresh = true;
  pools_[w.pool].fresh.push_back(wi);
}

std::span<const WorkerIndex> Pools::take_fresh(std::uint32_t p) {
  taken_fresh_.swap(pools_[p].fresh);
  pools_[p].fresh.clear();
  for (WorkerIndex wi : taken_fresh_) workers_[wi].fresh = false;
  return taken_fresh_;
}

}  // namespace kiln::placement::kiln_internal
