#include "worker/daemon/maintenance.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/format.h"
#include "worker/daemon/context_fetch.h"

namespace kiln::worker {
namespace {

using kiln::human_bytes;
using kiln::human_duration;
using kiln::utc_timestamp;

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
  s.image_cache_bytes = image_cache_bytes_.load();
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
    trim_image_cache();
    if (std::size_t n = remove_unused_contexts(options_.contexts_dir, options_.context_max_age))
      spdlog::info("kiln-worker {}: removed {} build context(s) unused for {} h", options_.worker_name, n,
                   options_.context_max_age.count());
    // The store's size for heartbeats: results are measured after they are built.
    if (auto bytes = builder_.total_size()) store_bytes_ = *bytes;
    if (auto cache = fetcher::image_cache_usage(options_.image_cache_dir);
        cache && !options_.image_cache_dir.empty())
      image_cache_bytes_ = cache->bytes;
  }
}

fetcher::ImageCachePruneReport Maintenance::trim_image_cache() {
  if (options_.image_cache_dir.empty()) return {};
  auto report =
      fetcher::prune_image_cache(options_.image_cache_dir, {.max_bytes = options_.image_cache_max_bytes});
  if (!report) {
    spdlog::warn("kiln-worker {}: {}", options_.worker_name, report.error().to_string());
    return {};
  }
  if (report->removed > 0)
    spdlog::info(
        "kiln-worker {}: pruned {} image cache blob(s), {}, least recently used first, to keep the "
        "image cache under --image-cache-max-bytes {}; {} left{}",
        options_.worker_name, report->removed, human_bytes(report->bytes),
        human_bytes(options_.image_cache_max_bytes), human_bytes(report->bytes_left),
        report->kept_in_use > 0 ? fmt::format(" ({} blob(s) in use by pulls kept)", report->kept_in_use)
                                : std::string());
  return *report;
}

void Maintenance::prune_image_cache_if_low(std::chrono::system_clock::time_point before) {
  if (options_.image_cache_dir.empty()) return;
  auto enough = [this] {
    auto space = builder_.disk_space();
    return !space || space->free_bytes >= options_.prune_below_bytes;
  };
  auto report = fetcher::prune_image_cache(options_.image_cache_dir,
                                           {.max_bytes = 0, .used_before = before, .enough = enough});
  if (!report) {
    spdlog::warn("kiln-worker {}: {}", options_.worker_name, report.error().to_string());
    return;
  }
  if (report->removed > 0)
    spdlog::info(
        "kiln-worker {}: pruned {} image cache blob(s), {}, because the disk was below "
        "--prune-below-bytes {}; {} left in the image cache",
        options_.worker_name, report->removed, human_bytes(report->bytes),
        human_bytes(options_.prune_below_bytes), human_bytes(report->bytes_left));
}

builder::PruneReport Maintenance::prune_if_low() {
  builder::PruneReport total;
  auto space = builder_.disk_space();
  if (!space || space->free_bytes >= options_.prune_below_bytes) return total;
  const std::uint64_t free_before = space->free_bytes;
  // Results used since `before` stay: the one a job has just reported must
  // still be there when the scheduler sends the next job for it.
  const auto before = options_.now() - options_.prune_min_age;
  // Blobs first: downloading one again costs less than rebuilding a result.
  prune_image_cache_if_low(before);
  space = builder_.disk_space();
  if (!space || space->free_bytes >= options_.prune_below_bytes) return total;
  const std::string min_age = human_duration(options_.prune_min_age);
  bool nothing_left = false;
  for (;;) {
    std::vector<std::string> removed;
    builder::PruneReport batch;
    auto n = builder_.prune(
        before, kPruneBatch, [&removed](const std::string& id) { removed.push_back(id); }, &batch);
    total.removed += batch.removed;
    total.bytes += batch.bytes;
    total.kept_in_use = std::max(total.kept_in_use, batch.kept_in_use);
    for (auto t : {batch.oldest_last_used, batch.newest_last_used}) {
      if (!t) continue;
      if (!total.oldest_last_used || *t < *total.oldest_last_used) total.oldest_last_used = t;
      if (!total.newest_last_used || *t > *total.newest_last_used) total.newest_last_used = t;
    }
    if (!removed.empty()) on_removed_(std::move(removed));
    if (!n) {
      spdlog::warn("kiln-worker {}: pruning failed: {}", options_.worker_name, n.error().to_string());
      break;
    }
    if (auto s = builder_.complete_deletes(); !s)
      spdlog::warn("kiln-worker {}: completing deletes: {}", options_.worker_name, s.error().to_string());
    space = builder_.disk_space();
    if (!space || space->free_bytes >= options_.prune_below_bytes) break;
    if (*n == 0) {
      nothing_left = true;
      break;
    }
    std::lock_guard lock(mu_);
    if (stopping_) break;
  }
  const std::string why = fmt::format("the store's filesystem had {} free, below --prune-below-bytes {}",
                                      human_bytes(free_before), human_bytes(options_.prune_below_bytes));
  const std::string kept =
      fmt::format("kept: results used in the last {} (--prune-min-age){}", min_age,
                  total.kept_in_use > 0 ? fmt::format(" and {} in use by running jobs", total.kept_in_use)
                                        : std::string());
  const std::string now_free = space ? human_bytes(space->free_bytes) : std::string("unknown");
  if (total.removed > 0) {
    auto ms = [](std::chrono::system_clock::time_point t) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    };
    spdlog::info("kiln-worker {}: pruned {} result(s), {}, last used {} to {}, because {}; {}; now {} free",
                 options_.worker_name, total.removed, human_bytes(total.bytes),
                 utc_timestamp(ms(*total.oldest_last_used)), utc_timestamp(ms(*total.newest_last_used)), why,
                 kept, now_free);
  }
  if (nothing_left) {
    spdlog::warn(
        "kiln-worker {}: only {} free in the store (below {}) and nothing more may be pruned ({}): "
        "free some disk space, or lower --prune-min-age",
        options_.worker_name, now_free, human_bytes(options_.prune_below_bytes), kept);
  } else if (total.removed == 0) {
    spdlog::info("kiln-worker {}: pruned nothing although {}; {}", options_.worker_name, why, kept);
  }
  return total;
}

}  // namespace kiln::worker
