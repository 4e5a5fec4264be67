// Synthetic traces for kiln-sim: a generated CI farm's day, in the placement
// trace format that common/trace/placement_trace.h defines (and reads and
// writes; docs/placement.md, "Trace format").
//
//   Trace day = synthetic_trace(SyntheticOptions{.repos = 50, .jobs = 2000});
//   write_trace(day, std::cout);
//
// Deterministic: the same options (seed included) give the same trace.
// Thread safety: values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/trace/placement_trace.h"

namespace kiln::sim {

// The trace types are the shared format's (common/trace/placement_trace.h);
// the simulator names them unqualified.
using trace::parse_trace;
using trace::read_trace;
using trace::Trace;
using trace::TraceJob;
using trace::TraceStep;
using trace::TraceWorker;
using trace::write_trace;

struct SyntheticOptions {
  int repos = 50;
  int base_images = 4;
  int jobs = 1500;
  int jobs_per_push = 3;  // 1..3: a pipeline's jobs share the commit's chain up to its build
  int branches = 1;       // per repository, each with its own lock file (30% of pushes off main)
  int workers = 8;
  std::uint32_t capacity = 2;
  std::size_t cache_limit = 120;
  double hours = 8;  // span of submissions
  std::uint64_t seed = 42;
};

// A CI farm's day: repositories sharing a few base images, each with a
// dependency-install chain (which changes now and then, as lock files do)
// and per-commit steps (source, build); release branches with their own lock
// files (a different dependency chain after the same first steps); each
// push starts a pipeline of
// jobs_per_push jobs sharing that chain (unit tests, integration tests,
// lint); pushes come in bursts; an urgent client (pull requests), a normal
// one (merges) and a batch one (a nightly run of every repository).
Trace synthetic_trace(const SyntheticOptions& options);

}  // namespace kiln::sim
