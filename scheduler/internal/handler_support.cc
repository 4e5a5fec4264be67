#include "scheduler/internal/handler_support.h"

namespace kiln::scheduler::internal {

std::string peer(const Incoming& m) {
  std::string out;
  for (unsigned char c : m.routing_id.substr(0, 32)) {
    if (c >= 0x21 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

Error bad_body(const Incoming& m, const Error& e) {
  return Error(ErrorKind::kInvalidArgument, fmt::format("{}: {}", m.type_text, e.message()));
}

placement::PlacementJob placement_job(const proto::JobInfo& info, double now_s, std::int64_t wall_now_ms) {
  double age_s = info.submitted_at_ms > 0 && wall_now_ms > info.submitted_at_ms
                     ? static_cast<double>(wall_now_ms - info.submitted_at_ms) / 1000.0
                     : 0.0;
  return {.id = info.id,
          .pool = info.pool,
          .client = info.client,
          .urgent = info.urgent,
          .labels = info.labels,
          .steps = info.planned_steps,
          .submitted_at = now_s - age_s,
          .estimate_seconds = info.estimate_seconds};
}

}  // namespace kiln::scheduler::internal
