// The kiln policy's worker slots (kiln_worker_slots.h).
#include "scheduler/placement/kiln_worker_slots.h"

#include <algorithm>
#include <functional>

namespace kiln::placement::kiln_internal {

void WorkerSlots::rebuild(KilnWorker& w, double now) {
  std::vector<double>& ends = w.free_at;
  ends.clear();
  if (!eligible(w)) {
    ends.push_back(std::numeric_limits<double>::infinity());
    return;
  }
  for (JobIndex j : w.running) ends.push_back(expected_end_of(jobs_[j], now));
  std::size_t capacity = w.info.capacity;
  // More running than slots (capacity lowered): the first slot frees when
  // enough of them have ended.
  if (ends.size() > capacity) {
    std::sort(ends.begin(), ends.end());
    ends.erase(ends.begin(), ends.begin() + static_cast<std::ptrdiff_t>(ends.size() - capacity));
  }
  // Each reserved job takes the earliest slot and frees it later, so only
  // the reserved.size() + 1 earliest slots can ever be the front: keep
  // those (a worker with hundreds of slots then costs no more than one
  // with a few).
  const std::size_t keep = w.reserved.size() + 1;
  for (std::size_t free = capacity - ends.size(), i = 0; i < free && i < keep; ++i) ends.push_back(now);
  if (ends.size() > keep) {
    std::nth_element(ends.begin(), ends.begin() + static_cast<std::ptrdiff_t>(keep - 1), ends.end());
    ends.resize(keep);
  }
  std::make_heap(ends.begin(), ends.end(), std::greater<>());
  for (JobIndex j : w.reserved) {
    KilnJob& J = jobs_[j];
    std::pop_heap(ends.begin(), ends.end(), std::greater<>());
    J.expected_start = std::max(ends.back(), J.not_before);
    ends.back() = J.expected_start + J.cost_on_worker;
    std::push_heap(ends.begin(), ends.end(), std::greater<>());
  }
}

double WorkerSlots::ready_at(const KilnWorker& w, IdRef step, double now) const {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double ready = kInf;
  // The step is done when what its job builds after it remains: the job's
  // end minus the cost of the rest of its chain. A job's build_refs hold
  // its chain's refs in chain order (a worker has few jobs).
  auto done_at = [&](const KilnJob& R, double end) {
    auto it = std::find(R.build_refs.begin(), R.build_refs.end(), step);
    if (it == R.build_refs.end()) return kInf;
    std::size_t k = static_cast<std::size_t>(it - R.build_refs.begin());
    return end - (k + 1 < R.tail.size() ? R.tail[k + 1] : 0.0);
  };
  for (JobIndex j : w.running) {
    const KilnJob& R = jobs_[j];
    ready = std::min(ready, std::max(now, done_at(R, expected_end_of(R, now))));
  }
  for (JobIndex j : w.reserved) {
    const KilnJob& R = jobs_[j];
    ready = std::min(ready, done_at(R, R.expected_start + R.cost_on_worker));
  }
  return ready == kInf ? now : ready;
}

bool WorkerSlots::blocked(const KilnJob& reserved, const KilnWorker& w) const {
  // The job is reserved on w, so its build_refs hold its chain's refs in
  // builds_, in chain order, as every running job's do: comparing those refs
  // (not 32-byte digests) keeps this cheap on workers with many slots.
  for (std::size_t i = reserved.chain.size(); i-- > 0;) {
    if (auto ref = held_.find(reserved.chain[i]); ref && held_.holds(w.slot, *ref)) return false;
    if (i >= reserved.build_refs.size()) continue;
    const IdRef step = reserved.build_refs[i];
    for (JobIndex r : w.running) {
      const auto& refs = jobs_[r].build_refs;
      if (std::find(refs.begin(), refs.end(), step) != refs.end()) return true;
    }
  }
  return false;
}

// The counts live with the worker: it has few jobs, so a short vector
// scanned in place beats a hash map.
void WorkerSlots::add_builds(KilnJob& job, KilnWorker& w) {
  job.build_refs.clear();
  for (const Digest& d : job.chain) {
    IdRef ref = builds_.add_one(w.slot, d);
    auto it = std::find_if(w.build_counts.begin(), w.build_counts.end(),
                           [&](const auto& p) { return p.first == ref; });
    if (it == w.build_counts.end()) {
      w.build_counts.emplace_back(ref, 1);
    } else {
      ++it->second;
    }
    job.build_refs.push_back(ref);
  }
}

void WorkerSlots::remove_builds(KilnJob& job, KilnWorker& w) {
  for (IdRef ref : job.build_refs) {
    auto it = std::find_if(w.build_counts.begin(), w.build_counts.end(),
                           [&](const auto& p) { return p.first == ref; });
    if (it == w.build_counts.end()) continue;
    if (--it->second == 0) {
      *it = w.build_counts.back();
      w.build_counts.pop_back();
      builds_.remove_one(w.slot, ref);
    }
  }
  job.build_refs.clear();
}

}  // namespace kiln::placement::kiln_internal
