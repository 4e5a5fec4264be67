// A real-build worker's upkeep of its store and state directory, on a
// thread of its own (docs/worker.md, "Prune policy"): at start, after each
// job (request()) and every `interval`, it prunes least recently used
// results in batches of 32 while the store's filesystem has less free space
// than `prune_below_bytes`, never one used in the last `prune_min_age` (the
// result a job has just reported, its steps) nor one a running job uses,
// and logs what it removed and why (count, bytes, the oldest and newest
// last use) or why it could remove nothing. The registry blob cache
// (`image_cache_dir`) is pruned too: every pass down to image_cache_max_bytes,
// and when the disk is low, before any result, of every blob not used within
// prune_min_age until the disk has room (blobs are downloaded again more
// cheaply than results are rebuilt); never a blob a pull holds. It also removes cached context
// tars unused for `context_max_age`, and measures the store's and the image
// cache's total size. It also answers
// the store's figures for heartbeats (disk space, results, bytes, image cache
// bytes, cache hits and misses) and whether the store is healthy (it can
// count its results).
//
//   Maintenance maintenance(options, builder, [&](std::vector<std::string> removed) { ... });
//   maintenance.start();
//   maintenance.request();          // a job ended: the disk may be fuller
//   maintenance.fill_stats(stats);
//   maintenance.stop();             // joins; also done by the destructor
//
// Contract: `builder` must outlive this object. `on_removed` is called on the
// maintenance thread with the ids (64 hex) each prune batch removed; it must
// be thread-safe and quick. Failures are logged, never fatal: a store that
// cannot prune keeps running and says so.
// Thread safety: request(), fill_stats() and stop() may be called from any
// thread; start() and stop() from one owner.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/proto/messages.h"
#include "worker/builder/builder.h"
#include "worker/fetcher/image_cache.h"

namespace kiln::worker {

struct MaintenanceOptions {
  std::string worker_name;   // for log lines
  std::string contexts_dir;  // cached context tars (STATE/contexts)
  // Prune the store while its filesystem has less free space than this.
  std::uint64_t prune_below_bytes = 2ull << 30;
  // Results used more recently than this are never pruned (--prune-min-age;
  // why 10 minutes: docs/worker.md, "Prune policy").
  std::chrono::seconds prune_min_age{600};
  // The clock prune_min_age is measured on (tests move it).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  std::chrono::milliseconds interval{30000};
  // Cached context tars unused this long are removed.
  std::chrono::hours context_max_age{24 * 7};
  // The registry blob cache (STATE/image-cache; "" none) and its size cap.
  std::string image_cache_dir;
  std::uint64_t image_cache_max_bytes = 10ull << 30;
};

class Maintenance {
 public:
  using RemovedFn = std::function<void(std::vector<std::string> removed_hex)>;

  Maintenance(MaintenanceOptions options, builder::Builder& builder, RemovedFn on_removed);
  ~Maintenance();
  Maintenance(const Maintenance&) = delete;
  Maintenance& operator=(const Maintenance&) = delete;

  // Starts the thread; its first pass runs at once.
  void start();
  // Asks for a pass soon.
  void request();
  // Ends the thread (a prune stops between batches). Idempotent.
  void stop();

  // Disk free and total bytes of the store's filesystem, results, their
  // total size (as last measured), cache hits and misses; healthy is false
  // when the store cannot count its results.
  void fill_stats(proto::WorkerStats& stats);

  // One prune check, as the thread makes it, on the caller's thread (for
  // tests; not while the thread runs). Returns what was removed and kept
  // (all zero when there was space enough).
  builder::PruneReport prune_if_low();
  // The image cache pruned down to image_cache_max_bytes, as each pass does
  // (for tests). Returns what was removed.
  fetcher::ImageCachePruneReport trim_image_cache();

 private:
  void loop();
  // When the disk is low: blobs unused since `before`, until there is room.
  void prune_image_cache_if_low(std::chrono::system_clock::time_point before);

  MaintenanceOptions options_;
  builder::Builder& builder_;
  RemovedFn on_removed_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pass_requested_ = true;  // the first pass runs at start
  bool stopping_ = false;
  std::atomic<std::uint64_t> store_bytes_{0};
  std::atomic<std::uint64_t> image_cache_bytes_{0};
};

}  // namespace kiln::worker
