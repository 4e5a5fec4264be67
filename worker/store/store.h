// The worker's snapshot store: where build steps' results live (DESIGN.md,
// "The local builder"; the contract follows OBuilder's STORE signature).
//
// A result is a directory named by a step id holding `rootfs/` (the step's
// filesystem) and `log` (its build log). A build starts from an empty
// directory or from a writable copy of a base result; on success it becomes
// the new result, on failure nothing is kept. Named mutable caches
// (`(run (cache ...))`) are handed out as private writable copies.
//
//   KILN_ASSIGN_OR_RETURN(auto store, open_store("overlayfs:/var/cache/kiln", {}));
//   KILN_RETURN_IF_ERROR(store->build(base_id, id, [&](const Workspace& ws) -> Status {
//     return run_step(ws.rootfs, ws.dir + "/log");
//   }));
//   KILN_ASSIGN_OR_RETURN(auto path, store->result(id));   // "<...>/<id>", or nullopt
//   KILN_ASSIGN_OR_RETURN(auto lease, store->cache({1000, 1000}, "opam"));
//   ... use lease.path() ...
//   KILN_RETURN_IF_ERROR(lease.release());
//
// Backends ("overlayfs:", "btrfs:", "xfs:", "rsync:", "docker:" store strings) are
// described in docs/store.md. Thread safety: every method may be called from
// several threads at once, except that the caller must not build the same
// id twice concurrently, nor ask to build an id that already exists. Errors
// say what failed, on what, and what to do; kBusy from delete_cache means
// "in use, retry later".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/spec/spec.h"
#include "worker/store/workspace.h"

namespace kiln::store {

// A writable copy of a named cache. Move-only. Releasing it (explicitly or
// by destruction) makes it the cache's new latest snapshot if no other copy
// was released since this one was taken; otherwise it is discarded. A lease
// must be released before the Store that made it is destroyed.
class CacheLease {
 public:
  CacheLease() = default;
  CacheLease(std::string path, std::function<Status()> release)
      : path_(std::move(path)), release_(std::move(release)) {}
  CacheLease(CacheLease&& other) noexcept;
  CacheLease& operator=(CacheLease&& other) noexcept;
  CacheLease(const CacheLease&) = delete;
  CacheLease& operator=(const CacheLease&) = delete;
  ~CacheLease();  // releases if still held; errors are logged

  // The writable directory (owned by the requesting uid:gid).
  const std::string& path() const { return path_; }
  bool held() const { return static_cast<bool>(release_); }
  // Gives the copy back. A second call is a no-op.
  Status release();

 private:
  std::string path_;
  std::function<Status()> release_;
};

// What opening the store found and repaired (also logged with spdlog).
struct RecoveryReport {
  int mounts_removed = 0;          // stale mounts beneath the store root
  int temporaries_removed = 0;     // unfinished builds, cache copies, pending deletes
  int orphan_results_removed = 0;  // result directories with no metadata
  int records_dropped = 0;         // metadata of results missing on disk (or unusable)
  int index_keys_fixed = 0;        // children counts, child links, LRU entries
  int caches_repaired = 0;         // cache directories / records out of step
  int unsynced_dropped = 0;        // results recorded after the last sync before a reboot (power cut)
  bool repaired_anything() const;
  std::string to_string() const;  // "removed 2 unfinished builds, ..." or "nothing to repair"
};

struct ResultInfo {
  std::optional<std::string> parent;
  std::uint32_t children = 0;
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point last_used;
  std::uint64_t size_bytes = 0;  // measured in the background just after the build; 0 until then
  std::chrono::milliseconds build_duration{0};
};

struct StoreStats {
  std::uint64_t results = 0;
  std::uint64_t cache_hits = 0;  // persisted across restarts
  std::uint64_t cache_misses = 0;
};

class Store {
 public:
  // Fills the build's workspace: `ws.dir + "/log"`, and the tree
  // (`ws.rootfs` on the snapshot stores; the container `ws.container` on
  // the docker store).
  using BuildFn = std::function<Status(const Workspace& ws)>;

  virtual ~Store() = default;

  // The directory the store lives in.
  virtual const std::string& root() const = 0;
  // Percent of free space on the filesystem the store lives on.
  virtual Result<double> df() const = 0;
  // Builds `id` with `fn`, starting empty or from a copy of `base`. On
  // success the directory becomes result `id`; on failure (fn's error is
  // returned unchanged) nothing is recorded. kNotFound: base missing;
  // kAlreadyExists: id exists; kInvalidArgument: id not file-name-safe.
  virtual Status build(const std::optional<std::string>& base, const std::string& id, const BuildFn& fn) = 0;
  // The directory of result `id`, or nullopt. Snapshot stores: a complete
  // readable tree (`rootfs/` and `log`); docker store: `log` and the
  // builder's files, the tree being the image PREFIX:id.
  virtual Result<std::optional<std::string>> result(const std::string& id) = 0;
  // Removes `id` if present (and, on overlayfs, the results stacked on it).
  virtual Status delete_result(const std::string& id) = 0;
  // Where the log of `id` is (or will be while it builds). May not exist.
  virtual std::string log_file(const std::string& id) = 0;
  // A directory for mutable state about this store (its metadata lives here).
  virtual const std::string& state_dir() const = 0;
  // A writable copy of the latest snapshot of cache `name`, created empty
  // and owned by `user` when new; the copy's top directory is owned by `user`.
  virtual Result<CacheLease> cache(const spec::UnixUser& user, const std::string& name) = 0;
  // Removes cache `name` if present. kBusy while any copy is held.
  virtual Status delete_cache(const std::string& name) = 0;
  // Waits for deletes still running in the background, so df() is accurate.
  virtual Status complete_deletes() = 0;

  // kiln additions for the builder (OBuilder keeps these in its db_store).
  // Records a lookup that found `id` (marks it used) or missed.
  virtual Status record_cache_hit(const std::string& id) = 0;
  virtual Status record_cache_miss() = 0;
  virtual Result<ResultInfo> info(const std::string& id) = 0;
  // Up to `limit` results without children, last used before `before`, oldest first.
  virtual Result<std::vector<std::string>> lru_leaves(std::chrono::system_clock::time_point before,
                                                      std::size_t limit) = 0;
  virtual Result<StoreStats> stats() = 0;
  // Every result id, sorted (the worker's inventory for the scheduler).
  virtual Result<std::vector<std::string>> list_results() = 0;
  virtual const RecoveryReport& recovery_report() const = 0;
  // Returns once every result recorded so far is on disk (files and
  // record). A background thread does that after each build anyway, off the
  // build's path (docs/store.md, "Durability"); this waits for it now.
  virtual Status sync() = 0;
};

enum class RsyncMode { kCopy, kHardlink };

// How open_store opens the store's metadata.
enum class StoreOpenMode {
  // Writable at once, with the crash recovery (a daemon, a command that changes the store).
  kReadWrite,
  // Read-only while only lookups happen, writable (with the recovery) at
  // the first change: a fully cached `kiln build` writes nothing, syncs
  // nothing and leaves the store to other readers (docs/store.md, "Opening
  // the store"). Cache hits are counted at the next writable open. Where
  // there is no store yet, as kReadWrite.
  kReadOnlyUntilWrite,
};

struct StoreOptions {
  RsyncMode rsync_mode = RsyncMode::kCopy;  // --rsync-mode copy|hardlink
  // overlayfs: a build whose base is stacked on more layers than this gets a
  // fresh full (flattened) layer instead, keeping mounts within kernel limits.
  int overlay_max_layers = 32;
  // docker: the daemon (--docker-host), and the directory under which the
  // store keeps its host directory (HOME/docker-PREFIX).
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string home;
  StoreOpenMode open_mode = StoreOpenMode::kReadWrite;
  // The boot this process runs in ("": /proc/sys/kernel/random/boot_id).
  // Results recorded in an earlier boot after its last sync are dropped
  // at the writable open: a power cut may have lost their files. Tests
  // pretend a reboot with another value.
  std::string boot_id;
  // How long the background sync waits after a build before it syncs (the
  // builds meanwhile share one sync). Tests hold it off with a long one.
  std::chrono::milliseconds sync_delay{0};
  // Whether closing the store waits until its results are on disk (so that a
  // clean shutdown and reboot loses none). Tests turn it off to play a
  // process that died.
  bool sync_at_close = true;
};

// Parses "--rsync-mode" values: "copy" or "hardlink".
Result<RsyncMode> parse_rsync_mode(std::string_view text);

// Opens (creating if needed) the store named by `spec`: "overlayfs:/path",
// "btrfs:/path", "xfs:/path", "rsync:/path", or "docker" / "docker:PREFIX"
// (results are images PREFIX:<id> in the dockerd at options.docker_host;
// the store's directory is options.home + "/docker-PREFIX"; PREFIX defaults
// to "kiln"). Checks that the path is on a filesystem (or the daemon is one)
// the backend can use, then repairs what a crash left behind (see
// recovery_report()). One process per store at a time.
Result<std::unique_ptr<Store>> open_store(std::string_view spec, const StoreOptions& options = {});

}  // namespace kiln::store
