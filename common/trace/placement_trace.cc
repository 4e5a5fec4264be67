#include "common/trace/placement_trace.h"

#include <algorithm>
#include <fstream>
#include <istream>
#include <limits>
#include <optional>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kiln::trace {

Result<Trace> read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return make_error(
        ErrorKind::kNotFound,
        fmt::format("cannot open trace {:?}; give a JSON-lines trace (docs/placement.md)", path));
  }
  return parse_trace(in, path);
}

Result<Trace> parse_trace(std::istream& in, const std::string& name) {
  using nlohmann::json;
  Trace trace;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    auto where = [&](const std::string& what) {
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("{}:{}: {}; see docs/placement.md, \"Trace format\"", name, number, what));
    };
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return where("not a JSON object");
    std::string type;
    // A whole-number field no larger than `max` (nullopt otherwise).
    // nlohmann's get<unsigned>() casts whatever number it holds: -1 became
    // capacity 4294967295, and a number past 2^64 (read as a double) was
    // undefined behaviour (found by tests/fuzz/placement_trace_fuzz).
    auto whole = [&j](const char* key, std::uint64_t fallback,
                      std::uint64_t max) -> std::optional<std::uint64_t> {
      auto it = j.find(key);
      if (it == j.end()) return fallback;
      if (!it->is_number_unsigned() || it->get<std::uint64_t>() > max) return std::nullopt;
      return it->get<std::uint64_t>();
    };
    try {
      // Inside the try: value() throws when "type" is there but not a string.
      type = j.value("type", "");
      if (type == "worker") {
        TraceWorker w;
        w.name = j.at("name").get<std::string>();
        w.pool = j.value("pool", w.pool);
        auto capacity = whole("capacity", 1, std::numeric_limits<decltype(w.capacity)>::max());
        if (!capacity)
          return where(fmt::format("a worker's capacity must be a whole number from 1 to {}",
                                   std::numeric_limits<decltype(w.capacity)>::max()));
        w.capacity = static_cast<decltype(w.capacity)>(*capacity);
        w.labels = j.value("labels", std::vector<std::string>{});
        auto cache_limit = whole("cache_limit", 0, std::numeric_limits<decltype(w.cache_limit)>::max());
        if (!cache_limit)
          return where(fmt::format("a worker's cache_limit must be a whole number from 0 to {}",
                                   std::numeric_limits<decltype(w.cache_limit)>::max()));
        w.cache_limit = static_cast<decltype(w.cache_limit)>(*cache_limit);
        if (w.capacity == 0) return where("a worker's capacity must be at least 1");
        trace.workers.push_back(std::move(w));
      } else if (type == "job") {
        TraceJob job;
        job.id = j.at("id").get<std::string>();
        job.submit = j.at("t").get<double>();
        job.pool = j.value("pool", job.pool);
        job.client = j.value("client", job.client);
        job.urgent = j.value("urgent", false);
        job.labels = j.value("labels", std::vector<std::string>{});
        job.estimate = j.value("estimate", 0.0);
        for (const json& s : j.at("steps")) {
          TraceStep step{.id = s.at("id").get<std::string>(), .seconds = s.at("seconds").get<double>()};
          if (step.seconds < 0) return where("a step's seconds must not be negative");
          job.steps.push_back(std::move(step));
        }
        trace.jobs.push_back(std::move(job));
      } else {
        return where(fmt::format("unknown \"type\" {:?} (want \"worker\" or \"job\")", type));
      }
    } catch (const json::exception& e) {
      return where(fmt::format("missing or mistyped field ({})", e.what()));
    }
  }
  if (trace.workers.empty()) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: no workers; add {{\"type\":\"worker\",...}} lines", name));
  }
  std::stable_sort(trace.jobs.begin(), trace.jobs.end(),
                   [](const TraceJob& a, const TraceJob& b) { return a.submit < b.submit; });
  return trace;
}

void write_trace(const Trace& trace, std::ostream& out, const std::string& comment) {
  // Insertion order ("type" first, as docs/placement.md shows the lines),
  // not sorted keys: the lines are meant to be read and grepped.
  // Text that is not valid UTF-8 (names come from peers) is written with
  // U+FFFD in its place rather than thrown about.
  using Json = nlohmann::ordered_json;
  auto line = [](const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; };
  if (!comment.empty()) out << "# " << comment << "\n";
  for (const TraceWorker& w : trace.workers) {
    out << line({{"type", "worker"},
                 {"name", w.name},
                 {"pool", w.pool},
                 {"capacity", w.capacity},
                 {"labels", w.labels},
                 {"cache_limit", w.cache_limit}});
  }
  for (const TraceJob& job : trace.jobs) {
    Json steps = Json::array();
    for (const TraceStep& s : job.steps) steps.push_back({{"id", s.id}, {"seconds", s.seconds}});
    out << line({{"type", "job"},
                 {"id", job.id},
                 {"t", job.submit},
                 {"pool", job.pool},
                 {"client", job.client},
                 {"urgent", job.urgent},
                 {"labels", job.labels},
                 {"estimate", job.estimate},
                 {"steps", steps}});
  }
}

}  // namespace kiln::trace
