// kiln-sim's engine: replays a trace against a REAL placement policy (made by
// placement::make_policy, the code the scheduler runs) on virtual workers
// with a virtual clock, and measures what placement achieved.
//
//   Trace trace = synthetic_trace({});
//   KILN_ASSIGN_OR_RETURN(SimResult kiln, simulate(trace, "kiln", {}, {}));
//   SimResult bound = oracle_bound(trace, {});
//
// The virtual farm: each worker has `capacity` slots and a cache of step ids
// (least recently used evicted past cache_limit; ancestors are touched last,
// so leaves go first, as a layered store prunes). A job on a worker runs its
// chain in order: a step in the cache costs cached_step_seconds; a step the
// worker is building for another job is waited for and shared (the builder
// runs identical steps once); any other step is built cold at its trace cost.
// When the job ends the policy hears job_finished (each step: cached or not,
// seconds) and then the worker's inventory change (added, evicted) — the
// same messages, in the same order, as the scheduler gets from a worker.
// Deterministic: same trace and policy, same result. Errors: a policy that
// breaks its contract (assigns an unknown job, over capacity...) is kInternal.
// Thread safety: none.
#pragma once

#include <map>
#include <string>

#include "bench/sim/synthetic_trace.h"
#include "common/error.h"
#include "scheduler/placement/policy.h"

namespace kiln::sim {

struct SimOptions {
  double cached_step_seconds = 0.5;  // using a cached snapshot is not free
};

struct SimResult {
  std::string policy;
  std::size_t jobs = 0;      // run to the end
  std::size_t unplaced = 0;  // never assigned (no matching worker)
  std::size_t steps = 0;
  std::size_t cold_steps = 0;  // built, not taken from a cache or shared
  // Why each cold step was built (they sum to cold_steps): never built
  // before; another worker held or was building it (a placement choice);
  // built before but evicted from every cache since.
  std::size_t cold_first = 0, cold_held_elsewhere = 0, cold_after_eviction = 0;
  double build_seconds = 0;                         // sum of job durations (slot-seconds)
  double wait_p50 = 0, wait_p95 = 0, wait_p99 = 0;  // start - submit
  double turnaround_p95 = 0;                        // end - submit
  double makespan = 0;                              // last end - first submit
  double util_mean = 0, util_max = 0;               // busy / (capacity x makespan)
  std::map<std::string, double> client_share;       // fraction of build seconds
  double policy_cpu_seconds = 0;                    // time spent inside policy calls (real, not virtual)
  std::size_t decisions = 0;                        // assignments made
  bool bound = false;                               // an oracle lower bound, not a run

  double cold_fraction() const { return steps ? static_cast<double>(cold_steps) / steps : 0; }
  double util_max_over_mean() const { return util_mean > 0 ? util_max / util_mean : 0; }
};

Result<SimResult> simulate(const Trace& trace, const std::string& policy,
                           const placement::PolicyOptions& policy_options, const SimOptions& options);

// What no policy can beat on this trace: every distinct step built exactly
// once (no eviction, no repeats), no queue wait, all capacity busy. Utilisation
// and shares are not bounds and stay 0.
SimResult oracle_bound(const Trace& trace, const SimOptions& options);

}  // namespace kiln::sim
