// The kiln policy's reservations (kiln_reservations.h).
#include "scheduler/placement/kiln_reservations.h"

#include <algorithm>

namespace kiln::placement::kiln_internal {
namespace {

// Reserved jobs examined per redecide() call when a free worker looks for
// one to take over.
constexpr std::size_t kRedecideBudget = 4096;
// How often a pool's overdue reservations are weighed again, and how many at
// most each time (recheck_overdue()).
constexpr double kRecheckSeconds = 1;
constexpr std::size_t kRecheckBudget = 256;

}  // namespace

void Reservations::reserve(JobIndex j, WorkerIndex wi, double cost, double not_before, const ChainView& chain,
                           double now) {
  KilnJob& J = jobs_[j];
  KilnWorker& w = workers_[wi];
  CostModel::remember_tail(J, chain);
  J.state = JobState::kReserved;
  J.worker = wi;
  J.cost_on_worker = cost;
  J.not_before = not_before;
  auto pos = std::upper_bound(w.reserved.begin(), w.reserved.end(), j, [&](JobIndex a, JobIndex b) {
    return jobs_[a].key != jobs_[b].key ? jobs_[a].key < jobs_[b].key : jobs_[a].seq < jobs_[b].seq;
  });
  w.reserved.insert(pos, j);
  ++pool(w.pool).jobs;
  slots_.add_builds(J, w);
  slots_.rebuild(w, now);
}

void Reservations::cancel(JobIndex j, double now) {
  KilnJob& J = jobs_[j];
  KilnWorker& w = workers_[J.worker];
  detach(j,
         static_cast<std::size_t>(std::find(w.reserved.begin(), w.reserved.end(), j) - w.reserved.begin()));
  J.worker = kNoWorker;
  slots_.rebuild(w, now);
}

void Reservations::detach(JobIndex j, std::size_t k) {
  KilnJob& J = jobs_[j];
  KilnWorker& w = workers_[J.worker];
  w.reserved.erase(w.reserved.begin() + static_cast<std::ptrdiff_t>(k));
  --pool(w.pool).jobs;
  slots_.remove_builds(J, w);
}

void Reservations::start_reserved(const std::vector<WorkerIndex>& free, bool others_queued, double now,
                                  Placer& placer, std::vector<Assignment>& out) {
  scratch_workers_ = free;
  for (WorkerIndex wi : scratch_workers_) {
    KilnWorker& w = workers_[wi];
    // In order, skipping jobs that wait for a step a running job builds
    // while other work could use the slot.
    for (std::size_t k = 0; k < w.reserved.size() && slots_.has_free_slot(w);) {
      JobIndex j = w.reserved[k];
      if (others_queued && slots_.blocked(jobs_[j], w)) {
        ++k;
        continue;
      }
      detach(j, k);
      placer.start_reserved_job(j, wi, jobs_[j].cost_on_worker, jobs_[j].not_before, now, out);
    }
  }
}

void Reservations::recheck_overdue(std::uint32_t p, std::span<const WorkerIndex> pool_workers,
                                   const std::vector<WorkerIndex>& free, double weight, double now,
                                   Placer& placer, std::vector<Assignment>& out) {
  PoolReservations& P = pool(p);
  if (P.jobs == 0 || free.empty() || now < P.next_recheck) return;
  P.next_recheck = now + kRecheckSeconds;
  std::size_t budget = kRecheckBudget;
  for (WorkerIndex vi : pool_workers) {
    KilnWorker& v = workers_[vi];
    if (v.reserved.empty() || v.free_pos >= 0) continue;
    bool overrun = false;
    for (JobIndex r : v.running) {
      const KilnJob& R = jobs_[r];
      double slack = std::max(options_.min_gain_seconds, options_.near_tie_fraction * R.cost_on_worker);
      overrun = overrun || now > R.expected_end + slack;
    }
    if (!overrun) continue;
    slots_.rebuild(v, now);
    scratch_jobs_ = v.reserved;  // moving a job edits the list
    for (JobIndex j : scratch_jobs_) {
      if (free.empty() || budget == 0) return;
      --budget;
      KilnJob& J = jobs_[j];
      if (J.state != JobState::kReserved || J.worker != vi) continue;
      Choice to = placer.best_free(J, costs_.view(J), weight, now);
      if (to.worker == kNoWorker || to.start_at > now) continue;
      double stay = CostModel::staying_finish(J, weight, now);
      if (stay - to.finish <= options_.min_gain_seconds) continue;
      cancel(j, now);
      placer.start_reserved_job(j, to.worker, to.occupancy, now, now, out);
    }
  }
}

void Reservations::redecide(std::uint32_t p, std::span<const WorkerIndex> fresh,
                            std::span<const WorkerIndex> pool_workers, double weight, double now,
                            Placer& placer, std::vector<Assignment>& out) {
  std::size_t budget = kRedecideBudget;
  for (WorkerIndex ui : fresh) {
    if (workers_[ui].pool != p) continue;
    while (count(p) > 0 && budget > 0 && workers_[ui].free_pos >= 0) {
      const KilnWorker& u = workers_[ui];
      JobIndex best_job = kNoJob;
      double best_gain = options_.min_gain_seconds, best_cost = 0;
      for (WorkerIndex vi : pool_workers) {
        for (JobIndex j : workers_[vi].reserved) {
          if (budget == 0) break;
          --budget;
          const KilnJob& J = jobs_[j];
          if (!has_labels(u, J)) continue;
          Estimate here = costs_.estimate(costs_.view(J), u, 0, weight, now);
          if (here.start_at > now) continue;  // it would wait there too
          double stay = CostModel::staying_finish(J, weight, now);
          double gain = stay - here.finish;
          double cost = here.occupancy;
          if (gain > best_gain) best_job = j, best_gain = gain, best_cost = cost;
        }
      }
      if (best_job == kNoJob) break;
      cancel(best_job, now);
      placer.start_reserved_job(best_job, ui, best_cost, now, now, out);
    }
  }
}

Reservations::PoolReservations& Reservations::pool(std::uint32_t p) {
  if (pools_.size() <= p) pools_.resize(p + 1);
  return pools_[p];
}

}  // namespace kiln::placement::kiln_internal
