// Helpers shared by the scheduler's message handlers (client_handlers.cc,
// worker_handlers.cc, scheduler.cc, job_lifecycle.cc). Internal to
// scheduler/: not for other folders.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/proto/messages.h"
#include "scheduler/placement/policy.h"
#include "scheduler/wire.h"

namespace kiln::scheduler::internal {

// The peer's routing id, printable (for logs).
std::string peer(const Incoming& m);

Error bad_body(const Incoming& m, const Error& e);

// The placement's view of a job. `now_s` is the policy's (steady) clock;
// `wall_now_ms` the wall clock, to place the job's recorded submit time on
// the policy's clock (a job keeps its age across restarts).
placement::PlacementJob placement_job(const proto::JobInfo& info, double now_s, std::int64_t wall_now_ms);

}  // namespace kiln::scheduler::internal

// Decodes m's body as T into `var`, or answers with an error and returns.
// The error names the request id when it can still be read from the body
// (proto::peek_request_id), so that it reaches the waiting request; else 0.
#define KILN_DECODE_OR_REPLY(var, T, port, m)                                                             \
  auto var##_decoded = ::kiln::proto::decode<T>((m).body);                                                \
  if (!var##_decoded) {                                                                                   \
    spdlog::warn("bad {} from {}: {}", (m).type_text, ::kiln::scheduler::internal::peer((m)),             \
                 var##_decoded.error().message());                                                        \
    reply_error(port, (m).routing_id, (m).type ? ::kiln::proto::peek_request_id(*(m).type, (m).body) : 0, \
                ::kiln::scheduler::internal::bad_body(m, var##_decoded.error()));                         \
    return;                                                                                               \
  }                                                                                                       \
  T& var = *var##_decoded;
