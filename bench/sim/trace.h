// Traces for kiln-sim: the workers of a farm and the jobs submitted to it,
// read from JSON lines (docs/placement.md, "Trace format") or generated.
//
//   KILN_ASSIGN_OR_RETURN(Trace t, read_trace("ci.jsonl"));
//   Trace s = synthetic_trace(SyntheticOptions{.repos = 50, .jobs = 2000});
//   write_trace(s, std::cout);
//
// Errors name the file and line and what is wrong with it.
// Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "common/error.h"

namespace kiln::sim {

struct TraceStep {
  std::string id;      // any string; hex step ids in real traces
  double seconds = 0;  // what building it cold takes
};

struct TraceJob {
  std::string id;
  double submit = 0;  // seconds from the trace's start
  std::string pool = "linux";
  std::string client = "ci";
  bool urgent = false;
  std::vector<std::string> labels;
  std::vector<TraceStep> steps;  // base first
  double estimate = 0;           // the client's estimate (0: none), passed to the policy
};

struct TraceWorker {
  std::string name;
  std::string pool = "linux";
  std::uint32_t capacity = 1;
  std::vector<std::string> labels;
  std::size_t cache_limit = 0;  // step ids kept (least recently used go first); 0: unlimited
};

struct Trace {
  std::vector<TraceWorker> workers;
  std::vector<TraceJob> jobs;  // by submit time
};

Result<Trace> read_trace(const std::string& path);
Result<Trace> parse_trace(std::istream& in, const std::string& name);
void write_trace(const Trace& trace, std::ostream& out);

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
