// The kiln policy's cost model (kiln_cost_model.h).
#include "scheduler/placement/kiln_cost_model.h"

#include <algorithm>
#include <cmath>

namespace kiln::placement::kiln_internal {
namespace {

// Entries of the learned step costs (learn_after()); ~40 bytes each.
constexpr std::size_t kLearnedLimit = 1 << 20;
// Half-life of a pool's recent busy fraction, and the fraction from which
// a waited second weighs wait_weight (pressure()).
constexpr double kBusyHalfLife = 600;
constexpr double kBusyPool = 0.5;

}  // namespace

int ChainView::deepest_known() const {
  for (int i = length() - 1; i >= 0; --i) {
    if (steps[i].held != kNoRef || steps[i].building != kNoRef) return i;
  }
  return -1;
}

ChainView CostModel::view(const KilnJob& job) const {
  std::size_t n = job.chain.size();
  const bool pool_known = job.pool < pools_.size() && pools_[job.pool].step_samples > 0;
  double unknown = job.estimate_seconds > 0 && n > 0 ? job.estimate_seconds / static_cast<double>(n)
                   : pool_known                      ? pools_[job.pool].step_mean
                                                     : default_step_seconds_;
  ChainView view;
  // Each step's own cost first (the sum from it on is made below); the entry
  // after the last step costs nothing.
  view.steps.assign(n + 1, {kNoRef, kNoRef, unknown});
  view.steps[n].cost_from = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (auto ref = held_.find(job.chain[i])) view.steps[i].held = *ref;
    if (auto ref = slots_.builds().find(job.chain[i])) view.steps[i].building = *ref;
  }
  // A step no worker holds is costed from what steps at the same distance
  // after its deepest held ancestor took (learn_after()): the next commit's
  // build after a repository's cached dependencies costs about what the last
  // one did. Without such history: the estimate above.
  int anchor = -1;
  for (std::size_t i = 0; i < n; ++i) {
    const IdRef held = view.steps[i].held;
    if (held != kNoRef) {
      if (held_.cost_of(held) > 0) view.steps[i].cost_from = held_.cost_of(held);
      anchor = static_cast<int>(i);
    } else if (anchor >= 0 && job.estimate_seconds <= 0) {
      if (auto it = learned_.find(learned_key(job.chain[anchor], static_cast<int>(i) - anchor));
          it != learned_.end()) {
        view.steps[i].cost_from = it->second;
      }
    }
  }
  for (std::size_t i = n; i-- > 0;)
    view.steps[i].cost_from = view.steps[i + 1].cost_from + view.steps[i].cost_from;
  if (n == 0) view.steps[0].cost_from = job.estimate_seconds > 0 ? job.estimate_seconds : unknown;
  return view;
}

// A step w holds costs nothing; a step w is building for another job is
// shared: the job starts once it is built (the builder would make it wait for
// it anyway, holding a slot).
Estimate CostModel::estimate(const ChainView& chain, const KilnWorker& w, double wait, double weight,
                             double now) const {
  for (int i = chain.length() - 1; i >= 0; --i) {
    const ChainView::Step& step = chain.steps[i];
    bool held = step.held != kNoRef && held_.holds(w.slot, step.held);
    if (!held && !(step.building != kNoRef && slots_.builds().holds(w.slot, step.building))) continue;
    double ready = held ? 0 : slots_.ready_at(w, step.building, now);
    double start_at = std::max(now + wait, ready);
    return {i, chain.cost_after(i), start_at, ready, (start_at - now) * weight + chain.cost_after(i)};
  }
  return {-1, chain.cost_after(-1), now + wait, 0, wait * weight + chain.cost_after(-1)};
}

double CostModel::staying_finish(const KilnJob& reserved, double weight, double now) {
  return std::max(0.0, reserved.expected_start - now) * weight + reserved.cost_on_worker;
}

void CostModel::remember_tail(KilnJob& job, const ChainView& chain) {
  job.tail.resize(chain.steps.size());
  for (std::size_t i = 0; i < chain.steps.size(); ++i)
    job.tail[i] = static_cast<float>(chain.steps[i].cost_from);
}

void CostModel::learn(std::uint32_t p, std::span<const FinishedStep> steps) {
  PoolCosts& P = pool(p);
  int anchor = -1;  // the deepest step before this one that was there already
  Digest anchor_digest{};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const FinishedStep& s = steps[i];
    if (s.cached) {
      anchor = static_cast<int>(i);
      anchor_digest = s.digest;
    } else if (anchor >= 0 && s.seconds > 0) {
      learn_after(anchor_digest, static_cast<int>(i) - anchor, s.seconds);
    }
    if (!s.cached && s.seconds > 0) {
      held_.set_cost(s.ref, static_cast<float>(s.seconds));
      // A running mean that follows drift: the weight of history is capped
      // at 1,000 samples.
      P.step_samples = std::min(P.step_samples + 1, 1000.0);
      P.step_mean += (s.seconds - P.step_mean) / P.step_samples;
    }
  }
}

// A second spent rebuilding is one another job waits for only when the pool
// is busy: a waited second weighs wait_weight when the pool's jobs fill, or
// lately filled, at least kBusyPool of its slots, rising to 1 (finish first)
// as the pool idles.
PoolPressure CostModel::pressure(std::uint32_t p, std::size_t jobs, std::size_t slots, double now) {
  PoolCosts& P = pool(p);
  // Demand over capacity: what runs, is reserved and is queued against the
  // slots. A burst counts at once; only the way back down is smoothed.
  double demand = static_cast<double>(jobs);
  const bool oversubscribed = demand > static_cast<double>(slots);
  double busy = slots ? std::min(1.0, demand / static_cast<double>(slots)) : 1.0;
  double keep = std::exp2(-std::max(0.0, now - P.busy_at) / kBusyHalfLife);
  P.busy = P.busy_at < 0 ? busy : P.busy * keep + busy * (1 - keep);
  P.busy_at = now;
  return {1 - (1 - wait_weight_) * std::min(1.0, std::max(busy, P.busy) / kBusyPool), oversubscribed};
}

CostModel::PoolCosts& CostModel::pool(std::uint32_t p) {
  if (pools_.size() <= p) pools_.resize(p + 1);
  return pools_[p];
}

std::uint64_t CostModel::learned_key(const Digest& anchor, int distance) {
  std::uint64_t key = 0;
  for (int i = 0; i < 8; ++i) key = key << 8 | anchor[i];
  return key ^ (static_cast<std::uint64_t>(distance) * 0x9e3779b97f4a7c15ULL);
}

// Remembers that a step `distance` steps after `anchor` (a step that was
// cached) took `seconds` to build: a moving average per (anchor, distance),
// forgotten wholesale past kLearnedLimit entries.
void CostModel::learn_after(const Digest& anchor, int distance, double seconds) {
  if (learned_.size() >= kLearnedLimit) learned_.clear();
  auto [it, added] = learned_.try_emplace(learned_key(anchor, distance), static_cast<float>(seconds));
  if (!added) it->second = static_cast<float>(0.7 * it->second + 0.3 * seconds);
}

}  // namespace kiln::placement::kiln_internal
