// The workers the scheduler knows: each one's registration (pool, labels,
// capacity), connection (routing id, lease), the operators' admin state,
// its last stats and the jobs it runs. A worker stays known while
// disconnected (its admin state and name survive) until an operator forgets it.
//
//   WorkerRegistry workers;
//   WorkerRecord& w = workers.upsert("w1");
//   workers.connect(w, routing_id, now_ms);      // routes messages from routing_id to w1
//   if (WorkerRecord* w = workers.by_route(routing_id)) ...  // only a connected worker
//   for (WorkerRecord* w : workers.silent(now_ms, lease_ms)) lose(*w);
//
// Leases: a connected worker that has sent nothing for longer than the
// lease is "silent"; the scheduler then takes its jobs back.
// Thread safety: one thread (the event loop).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/proto/messages.h"

namespace kiln::scheduler {

enum class WorkerAdmin : std::uint8_t { kActive, kPaused, kDraining };
std::string_view admin_name(WorkerAdmin admin);  // "active", "paused", "draining"
std::optional<WorkerAdmin> parse_admin(std::string_view text);

struct WorkerRecord {
  std::string name;
  std::string pool;
  std::vector<std::string> labels;
  std::uint32_t capacity = 0;
  WorkerAdmin admin = WorkerAdmin::kActive;
  bool connected = false;
  std::string routing_id;
  std::int64_t last_seen_ms = 0;  // steady
  std::int64_t last_heartbeat_wall = 0;
  proto::WorkerStats stats;
  std::set<std::string> running;                    // job ids
  std::optional<std::int64_t> drift_reregister_ms;  // steady; when drift last asked it to register again
  // It numbers its job-log chunks and waits for job-acks (register.log_offsets).
  bool log_offsets = false;
};

class WorkerRegistry {
 public:
  WorkerRecord* by_name(const std::string& name);
  // The connected worker whose current connection is `routing_id`.
  WorkerRecord* by_route(const std::string& routing_id);
  // The worker named `name`, created (active, disconnected) if unknown.
  WorkerRecord& upsert(const std::string& name);
  // `w` now speaks through `routing_id` (a previous route is dropped).
  void connect(WorkerRecord& w, const std::string& routing_id, std::int64_t now_ms);
  void disconnect(WorkerRecord& w);
  void erase(const std::string& name);

  // Connected workers that sent nothing for longer than `lease_ms`.
  std::vector<WorkerRecord*> silent(std::int64_t now_ms, std::int64_t lease_ms);

  // Whether placement may give `w` new jobs: connected, active, healthy and
  // (when it reports a disk) with at least `low_disk_bytes` free.
  static bool accepting(const WorkerRecord& w, std::uint64_t low_disk_bytes);
  // Healthy with enough disk (what heartbeats can change).
  static bool fit(const proto::WorkerStats& stats, std::uint64_t low_disk_bytes);
  static proto::WorkerInfo info(const WorkerRecord& w);

  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [name, w] : workers_) fn(static_cast<const WorkerRecord&>(*w));
  }
  template <class Fn>
  void for_each(Fn&& fn) {
    for (auto& [name, w] : workers_) fn(*w);
  }

 private:
  std::map<std::string, std::unique_ptr<WorkerRecord>> workers_;  // by name
  std::unordered_map<std::string, std::string> routes_;           // routing id -> name
};

}  // namespace kiln::scheduler
