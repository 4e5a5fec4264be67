// Replies the scheduler holds back: `kiln status --wait` (answered when the
// job ends) and `kiln logs --follow` (answered when the log grows past the
// reader's offset or the job ends), each until its deadline at the latest.
//
//   HeldReplies held;
//   held.hold("j7", {.kind = HeldReply::Kind::kStatus, .deadline_ms = now + 30000, ...});
//   for (HeldReply& r : held.take_ready("j7", /*ended=*/false, /*log_bytes=*/120)) answer(r);
//   for (auto& [job_id, r] : held.take_expired(now)) answer(job_id, r);
//
// Thread safety: one thread (the event loop).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/wire.h"

namespace kiln::scheduler {

struct HeldReply {
  enum class Kind : std::uint8_t { kStatus, kLog };
  Kind kind = Kind::kStatus;
  Port port = Port::kClients;
  std::string routing_id;
  std::uint64_t request_id = 0;
  std::int64_t deadline_ms = 0;  // steady
  // kLog: the reader's offset and chunk size.
  std::uint64_t offset = 0;
  std::uint32_t max_bytes = 0;
};

class HeldReplies {
 public:
  void hold(const std::string& job_id, HeldReply reply);
  // The replies job_id's change makes due: every one when it `ended`, else
  // the log readers whose offset is below `log_bytes`. They are removed.
  std::vector<HeldReply> take_ready(const std::string& job_id, bool ended, std::uint64_t log_bytes);
  // (job id, reply) for every reply whose deadline is at or before now.
  std::vector<std::pair<std::string, HeldReply>> take_expired(std::int64_t now_ms);
  // Forgets every reply held for `routing_id` (a revoked peer).
  void drop_route(const std::string& routing_id);
  bool holds(const std::string& job_id) const { return held_.contains(job_id); }
  std::size_t size() const { return held_.size(); }

 private:
  std::multimap<std::string, HeldReply> held_;  // by job id
};

}  // namespace kiln::scheduler
