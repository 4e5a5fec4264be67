#include "worker/daemon/maintenance.h"

#include <spdlog/spdlog.h>

#include "worker/daemon/context_fetch.h"
#include "common/format.h"

namespace kiln::worker {
namespace {

using kiln::human_bytes;

// Results removed per prune round, between free-space checks.
constexpr std::size_t kPruneBatch = 32;

}  // namespace

Maintenance::Maintenance(MaintenanceOptions options, builder::Builder& builder, RemovedFn on_removed)
    : options_(std::move(options)), builder_(builder), on_removed_(std::move(on_removed)) {}

Maintenance::~Maintenance() {
  stop();
}

void Maintenance::start() {
  thread_ = std::thread([this] { loop(); });
}

void Maintenance::request() {
  {
    std::lock_guard lock(mu_);
    pass_requested_ = true;
  }
  cv_.notify_all();
}

void Maintenance::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Maintenance::fill_stats(proto::WorkerStats& s) {
  if (auto space = builder_.disk_space()) {
    s.disk_free_bytes = space->free_bytes;
    s.disk_total_bytes = space->total_bytes;
  }
  s.healthy = true;
  // A store that cannot answer this cannot build either.
  if (auto count = builder_.count()) {
    s.store_items = *count;
  } else {
    s.healthy = false;
  }
  if (auto cache = builder_.cache_stats()) {
    s.cache_hits = cache->hits;
    s.cache_misses = cache->misses;
  }
  s.store_bytes = store_bytes_.load();
}

void Maintenance::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.interval, [this] { return stopping_ || pass_requested_; });
      if (stopping_) return;
      pass_requested_ = false;
    }
    prune_if_low();
    if (std::size_t n = remove_unused_contexts(options_.contexts_dir, options_.context_max_age))
      spdlog::info("kiln-worker {}: removed {} build context(s) unused for {} h", options_.worker_name, n,
                   options_.context_max_age.count());
    // The store's size for heartbeats: results are measured after they are built.
    if (auto bytes = builder_.total_size()) store_bytes_ = *bytes;
  }
}

void Maintenance::prune_if_low() {
  auto space = builder_.disk_space();
  if (!space || space->free_bytes >= options_.prune_below_bytes) return;
  spdlog::info("kiln-worker {}: {} free in the store, below {}: pruning least recently used results",
               options_.worker_name, human_bytes(space->free_bytes), human_bytes(options_.prune_below_bytes));
  std::size_t total = 0;
  for (;;) {
    std::vector<std::string> removed;
    auto n = builder_.prune(std::chrono::system_clock::now(), kPruneBatch,
                            [&removed](const std::string& id) { removed.push_back(id); });
    if (!n) {
      spdlog::warn("kiln-worker {}: pruning failed: {}", options_.worker_name, n.error().to_string());
      break;
    }
    if (auto s = builder_.complete_deletes(); !s)
      spdlog::warn("kiln-worker {}: completing deletes: {}", options_.worker_name, s.error().to_string());
    total += *n;
    if (!removed.empty()) on_removed_(std::move(removed));
    space = builder_.disk_space();
    if (!space || space->free_bytes >= options_.prune_below_bytes) break;
    if (*n == 0) {
      spdlog::warn("kiln-worker {}: nothing left to prune, {} free (below {}): free some disk space",
                   options_.worker_name, human_bytes(space->free_bytes),
                   human_bytes(options_.prune_below_bytes));
      break;
    }
    std::lock_guard lock(mu_);
    if (stopping_) break;
  }
  spdlog::info("kiln-worker {}: pruned {} result(s); {} free", options_.worker_name, total,
               space ? human_bytes(space->free_bytes) : "unknown");
}

}  // namespace kiln::worker
