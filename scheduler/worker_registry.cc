#include "scheduler/worker_registry.h"

#include <array>

namespace kiln::scheduler {
namespace {

constexpr std::array<std::string_view, 3> kAdminNames = {"active", "paused", "draining"};

}  // namespace

std::string_view admin_name(WorkerAdmin admin) {
  return kAdminNames[static_cast<std::size_t>(admin)];
}

std::optional<WorkerAdmin> parse_admin(std::string_view text) {
  for (std::size_t i = 0; i < kAdminNames.size(); ++i) {
    if (kAdminNames[i] == text) return static_cast<WorkerAdmin>(i);
  }
  return std::nullopt;
}

WorkerRecord* WorkerRegistry::by_name(const std::string& name) {
  auto it = workers_.find(name);
  return it == workers_.end() ? nullptr : it->second.get();
}

WorkerRecord* WorkerRegistry::by_route(const std::string& routing_id) {
  auto it = routes_.find(routing_id);
  if (it == routes_.end()) return nullptr;
  WorkerRecord* w = by_name(it->second);
  if (w == nullptr || !w->connected || w->routing_id != routing_id) return nullptr;
  return w;
}

WorkerRecord& WorkerRegistry::upsert(const std::string& name) {
  auto& slot = workers_[name];
  if (!slot) {
    slot = std::make_unique<WorkerRecord>();
    slot->name = name;
  }
  return *slot;
}

void WorkerRegistry::connect(WorkerRecord& w, const std::string& routing_id, std::int64_t now_ms) {
  if (!w.routing_id.empty() && w.routing_id != routing_id) routes_.erase(w.routing_id);
  w.connected = true;
  w.routing_id = routing_id;
  w.last_seen_ms = now_ms;
  routes_[routing_id] = w.name;
}

void WorkerRegistry::disconnect(WorkerRecord& w) {
  w.connected = false;
  routes_.erase(w.routing_id);
}

void WorkerRegistry::erase(const std::string& name) {
  auto it = workers_.find(name);
  if (it == workers_.end()) return;
  routes_.erase(it->second->routing_id);
  workers_.erase(it);
}

std::vector<WorkerRecord*> WorkerRegistry::silent(std::int64_t now_ms, std::int64_t lease_ms) {
  std::vector<WorkerRecord*> out;
  for (auto& [name, w] : workers_) {
    if (w->connected && now_ms - w->last_seen_ms > lease_ms) out.push_back(w.get());
  }
  return out;
}

bool WorkerRegistry::fit(const proto::WorkerStats& stats, std::uint64_t low_disk_bytes) {
  return stats.healthy && (stats.disk_total_bytes == 0 || stats.disk_free_bytes >= low_disk_bytes);
}

bool WorkerRegistry::accepting(const WorkerRecord& w, std::uint64_t low_disk_bytes) {
  return w.connected && w.admin == WorkerAdmin::kActive && fit(w.stats, low_disk_bytes);
}

proto::WorkerInfo WorkerRegistry::info(const WorkerRecord& w) {
  proto::WorkerInfo info{
      .name = w.name,
      .pool = w.pool,
      .state = w.connected ? std::string(admin_name(w.admin)) : std::string("disconnected"),
      .capacity = w.capacity,
      .labels = w.labels,
      .stats = w.stats,
      .last_heartbeat_ms = w.last_heartbeat_wall,
      .connected = w.connected};
  info.running.assign(w.running.begin(), w.running.end());
  return info;
}

}  // namespace kiln::scheduler
