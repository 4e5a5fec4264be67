// The placement trace: a farm's workers and the jobs submitted to it, as
// JSON lines (docs/placement.md, "Trace format"). The one definition of the
// format, shared by its writer on a real farm (`kiln admin trace`,
// cli/admin_commands.cc) and its reader, the simulator (`kiln-sim --trace`,
// bench/sim/), which also writes its synthetic days with it
// (`kiln-sim --write-trace`).
//
//   KILN_ASSIGN_OR_RETURN(trace::Trace t, trace::read_trace("farm.jsonl"));
//   trace::write_trace(t, std::cout, "kiln admin trace: 2 workers");
//
// One object per line, `"type"` first: {"type":"worker",...} or
// {"type":"job",...}; `#` lines and blank lines are ignored, and so are
// fields the format does not define. Reading errors are kInvalidArgument and
// name the file and line and what is wrong with it (kNotFound for a file
// that cannot be opened). write_trace then parse_trace gives back the same
// trace (jobs sorted by submit time). Thread safety: values and pure
// functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "common/error.h"

namespace kiln::trace {

struct TraceStep {
  std::string id;      // any string; hex step ids in real traces
  double seconds = 0;  // what building it cold takes (>= 0)
};

struct TraceJob {
  std::string id;
  double submit = 0;  // seconds from the trace's start (field "t")
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
  std::uint32_t capacity = 1;  // >= 1
  std::vector<std::string> labels;
  std::size_t cache_limit = 0;  // step ids kept (least recently used go first); 0: unlimited
};

struct Trace {
  std::vector<TraceWorker> workers;
  std::vector<TraceJob> jobs;  // by submit time once parsed
};

// Reads the trace in the file at `path`.
Result<Trace> read_trace(const std::string& path);

// Reads a trace from `in`; `name` (a file name) prefixes error messages. A
// trace needs at least one worker; jobs come back stably sorted by submit
// time.
Result<Trace> parse_trace(std::istream& in, const std::string& name);

// Writes `trace`: a `# comment` line first when `comment` is not empty, then
// one line per worker and one per job, in the order given. The caller checks
// the stream for write errors.
void write_trace(const Trace& trace, std::ostream& out, const std::string& comment = "");

}  // namespace kiln::trace
