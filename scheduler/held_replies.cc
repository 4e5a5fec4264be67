#include "scheduler/held_replies.h"

namespace kiln::scheduler {

void HeldReplies::hold(const std::string& job_id, HeldReply reply) {
  held_.emplace(job_id, std::move(reply));
}

std::vector<HeldReply> HeldReplies::take_ready(const std::string& job_id, bool ended,
                                               std::uint64_t log_bytes) {
  std::vector<HeldReply> out;
  auto [begin, end] = held_.equal_range(job_id);
  for (auto it = begin; it != end;) {
    const HeldReply& r = it->second;
    const bool due = ended || (r.kind == HeldReply::Kind::kLog && r.offset < log_bytes);
    if (!due) {
      ++it;
      continue;
    }
    out.push_back(std::move(it->second));
    it = held_.erase(it);
  }
  return out;
}

std::vector<std::pair<std::string, HeldReply>> HeldReplies::take_expired(std::int64_t now_ms) {
  std::vector<std::pair<std::string, HeldReply>> out;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.deadline_ms > now_ms) {
      ++it;
      continue;
    }
    out.emplace_back(it->first, std::move(it->second));
    it = held_.erase(it);
  }
  return out;
}

void HeldReplies::drop_route(const std::string& routing_id) {
  std::erase_if(held_, [&](const auto& entry) { return entry.second.routing_id == routing_id; });
}

}  // namespace kiln::scheduler
