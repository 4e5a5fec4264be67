#include "worker/store/snapshot_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "worker/store/attic.h"
#include "worker/store/fs_util.h"
#include "worker/store/metadata.h"
#include "worker/store/pending_hits.h"
#include "worker/store/store_recovery.h"

namespace kiln::store {

namespace {

std::int64_t now_us() {
  return metadata_now_us();
}

std::chrono::system_clock::time_point from_us(std::int64_t us) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
}

// Prefix of entries being deleted; ids and escaped cache names never start with '.'.
constexpr std::string_view kTrashPrefix = ".trash-";

// Ids become directory names and overlayfs mount options, where '/', ':' and
// ',' mean something: allow only a conservative alphabet.
Status validate_id(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 128 && id != "." && id != ".." && id[0] != '.';
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.');
  }
  if (!ok) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("invalid result id \"{}\": use 1 to 128 letters, digits, '.', '-' or '_' "
                                  "(kiln's step ids are 64 hex digits)",
                                  id));
  }
  return {};
}

Status validate_cache_name(std::string_view name) {
  if (name.empty() || name.size() > 200) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("invalid cache name \"{}\": use 1 to 200 characters", name));
  }
  return {};
}

}  // namespace

CacheLease::CacheLease(CacheLease&& other) noexcept
    : path_(std::move(other.path_)), release_(std::exchange(other.release_, nullptr)) {}

CacheLease& CacheLease::operator=(CacheLease&& other) noexcept {
  if (this != &other) {
    if (auto s = release(); !s) spdlog::error("releasing cache copy {}: {}", path_, s.error().to_string());
    path_ = std::move(other.path_);
    release_ = std::exchange(other.release_, nullptr);
  }
  return *this;
}

CacheLease::~CacheLease() {
  if (auto s = release(); !s) spdlog::error("releasing cache copy {}: {}", path_, s.error().to_string());
}

Status CacheLease::release() {
  if (!release_) return {};
  auto fn = std::exchange(release_, nullptr);
  return fn();
}

namespace {

class SnapshotStore final : public Store {
 public:
  SnapshotStore(std::string root, std::unique_ptr<SnapshotBackend> backend, const StoreOptions& options)
      : root_(std::move(root)),
        state_dir_(root_ + "/state"),
        backend_(std::move(backend)),
        boot_id_(!options.boot_id.empty() ? options.boot_id
                 : this_boot_id().empty() ? "unknown"
                                          : this_boot_id()),
        sync_delay_(options.sync_delay),
        sync_at_close_(options.sync_at_close) {}

  ~SnapshotStore() override {
    {
      // Still read-only: the hits go to the file the next writable open
      // applies (written while the database's read lock is still held).
      std::lock_guard lock(pending_mu_);
      if (read_only_ && !pending_hits_.empty()) {
        if (auto s = append_pending_hits(pending_hits_path(), pending_hits_); !s)
          spdlog::warn("store {}: keeping {} cache hit(s) for later: {}", root_, pending_hits_.size(),
                       s.error().to_string());
      }
    }
    {
      std::lock_guard lock(sizer_mu_);
      stopping_ = true;
    }
    sizer_cv_.notify_all();
    if (sizer_.joinable()) sizer_.join();
    if (syncer_.joinable() && sync_at_close_) {
      if (auto s = sync(); !s)
        spdlog::warn("store {}: closing before its newest results were synced: {}", root_,
                     s.error().to_string());
    }
    {
      std::lock_guard lock(sync_mu_);
      sync_stopping_ = true;
    }
    sync_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
  }

  Status open(StoreOpenMode mode) {
    KILN_RETURN_IF_ERROR(ensure_dir(root_));
    // Check before creating anything: a wrong filesystem must not get a half-made layout.
    KILN_RETURN_IF_ERROR(backend_->check_filesystem(root_));
    // Read-only until the first change.
    if (mode == StoreOpenMode::kReadOnlyUntilWrite && path_exists(state_dir_ + "/metadata/CURRENT")) {
      if (auto metadata = Metadata::open_read_only(state_dir_ + "/metadata")) {
        metadata_ = std::move(*metadata);
        read_only_ = true;
        return {};
      }
      // Anything else (a writer has it, a damaged database): the writable open says what is wrong.
    }
    for (const char* sub : {"/result", "/tmp", "/cache", "/cache-tmp", "/state", "/view"})
      KILN_RETURN_IF_ERROR(ensure_dir(root_ + sub));
    KILN_ASSIGN_OR_RETURN(metadata_, Metadata::open(state_dir_ + "/metadata"));
    return finish_writable_open("at open");
  }

  // What a writable open does after the metadata's: the crash recovery, the
  // cache hits recorded while read-only, the size measurements.
  Status finish_writable_open(std::string_view when) {
    KILN_RETURN_IF_ERROR(settle_unsynced_results());
    KILN_RETURN_IF_ERROR(recover_snapshot_store(root_, *backend_, *metadata_, report_));
    std::vector<PendingHit> hits;
    {
      std::lock_guard lock(pending_mu_);
      hits = std::exchange(pending_hits_, {});
      read_only_ = false;
    }
    KILN_ASSIGN_OR_RETURN(auto kept, take_pending_hits(pending_hits_path()));
    hits.insert(hits.end(), kept.begin(), kept.end());
    KILN_RETURN_IF_ERROR(apply_hits(hits));
    sizer_ = std::thread([this] { measure_sizes(); });
    syncer_ = std::thread([this] { sync_results(); });
    attic_ = std::make_unique<Attic>(root_ + "/attic",
                                     [this](const std::string& path) { return backend_->discard(path); });
    KILN_RETURN_IF_ERROR(attic_->start());
    if (report_.repaired_anything()) {
      spdlog::warn("{} store {}: repaired {}: {}", backend_->kind(), root_, when, report_.to_string());
    }
    return {};
  }

  // Makes a store opened read-only writable before its first change.
  Status writable() {
    if (!read_only_.load()) return {};
    std::lock_guard lock(upgrade_mu_);
    if (!read_only_.load()) return {};
    KILN_RETURN_IF_ERROR(metadata_->make_writable());
    return finish_writable_open("when it was first changed");
  }

  Status apply_hits(const std::vector<PendingHit>& hits) {
    std::uint64_t counted = 0;
    for (const auto& hit : hits) {
      if (!validate_id(hit.id)) continue;
      KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_result(hit.id));
      if (!record) continue;  // deleted since
      ++counted;
      if (record->last_used_us >= hit.used_us) continue;
      if (auto s = metadata_->mark_used(hit.id, hit.used_us); !s && s.error().kind() != ErrorKind::kNotFound)
        return s;
    }
    return counted ? metadata_->add_lookups(counted, 0) : Status();
  }

  std::string pending_hits_path() const { return state_dir_ + "/pending-hits"; }

  const std::string& root() const override { return root_; }
  const std::string& state_dir() const override { return state_dir_; }
  Result<double> df() const override { return backend_->df(root_); }
  const RecoveryReport& recovery_report() const override { return report_; }

  Status build(const std::optional<std::string>& base, const std::string& id, const BuildFn& fn) override {
    KILN_RETURN_IF_ERROR(validate_id(id));
    KILN_RETURN_IF_ERROR(writable());
    Lineage base_lineage;
    {
      std::lock_guard lock(mu_);
      if (in_progress_.contains(id)) {
        return make_error(ErrorKind::kBusy, fmt::format("result {} is already being built", id));
      }
      KILN_ASSIGN_OR_RETURN(auto existing, metadata_->get_result(id));
      if (existing) {
        return make_error(
            ErrorKind::kAlreadyExists,
            fmt::format("result {} already exists in store {}; use it or delete it first", id, root_));
      }
      if (base) {
        KILN_ASSIGN_OR_RETURN(base_lineage, lineage_locked(*base));
      }
      in_progress_[id] = "";
    }
    // Whatever happens below, the id stops being "in progress".
    struct Done {
      SnapshotStore* self;
      const std::string& id;
      ~Done() {
        std::lock_guard lock(self->mu_);
        self->in_progress_.erase(id);
      }
    } done{this, id};

    std::string dir = root_ + "/tmp/" + id;
    if (path_exists(dir)) KILN_RETURN_IF_ERROR(backend_->discard(dir));
    auto work = base ? backend_->clone(base_lineage, dir, CloneUse::kBuild) : backend_->create_empty(dir);
    if (!work) {
      (void)backend_->discard(dir);
      return std::unexpected(std::move(work.error())
                                 .with_context(fmt::format("preparing the build directory of {}{}", id,
                                                           base ? " from base " + *base : "")));
    }
    {
      std::lock_guard lock(mu_);
      in_progress_[id] = work->writable;
    }
    auto started = std::chrono::steady_clock::now();
    Workspace workspace{.dir = work->writable,
                        .rootfs = work->has_rootfs ? work->writable + "/rootfs" : "",
                        .base_image = work->base_image,
                        .container = work->container};
    Status built = run_build_fn(fn, workspace, id);
    auto build_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count();
    if (!built) {
      if (auto s = backend_->discard(dir); !s)
        spdlog::warn("removing the failed build of {}: {}", id, s.error().to_string());
      return built;
    }
    std::string dst = root_ + "/result/" + id;
    if (auto s = backend_->commit(*work, dst); !s) {
      (void)backend_->discard(dir);
      return std::unexpected(std::move(s.error()).with_context("saving the result of " + id));
    }
    retire(dir);  // what the backend left of its work tree, if anything
    ResultRecord record;
    record.parent = base.value_or("");
    record.layered_on = work->layered_on_base ? *base : "";
    record.created_us = record.last_used_us = now_us();
    record.build_ms = build_ms;
    Status recorded;
    {
      std::lock_guard lock(mu_);
      recorded = metadata_->add_result(id, record);
    }
    if (!recorded) {
      (void)backend_->remove_snapshot(id, dst);
      return std::unexpected(std::move(recorded.error()).with_context("recording result " + id));
    }
    {
      std::lock_guard lock(sizer_mu_);
      sizer_queue_.push_back(id);
    }
    sizer_cv_.notify_one();
    {
      std::lock_guard lock(sync_mu_);
      recorded_through_ = std::max(recorded_through_, record.created_us);
    }
    sync_cv_.notify_all();
    return {};
  }

  Status sync() override {
    if (read_only_.load()) return {};  // nothing recorded by this open
    std::unique_lock lock(sync_mu_);
    std::int64_t target = recorded_through_;
    sync_now_ = true;
    sync_cv_.notify_all();
    sync_cv_.wait(lock, [&] { return synced_through_ >= target || sync_stopping_ || sync_error_; });
    if (synced_through_ >= target) return {};
    if (sync_error_) return std::unexpected(*sync_error_);
    return make_error(ErrorKind::kCancelled, "the store is closing");
  }

  Result<std::optional<std::string>> result(const std::string& id) override {
    if (!validate_id(id)) return std::optional<std::string>();
    // A view may be a mount, which the recovery of a later upgrade would remove.
    KILN_RETURN_IF_ERROR(writable());
    Lineage lineage;
    {
      std::lock_guard lock(mu_);
      KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_result(id));
      if (!record) return std::optional<std::string>();
      KILN_ASSIGN_OR_RETURN(lineage, lineage_locked(id));
    }
    KILN_ASSIGN_OR_RETURN(std::string path, backend_->view(lineage));
    return std::optional<std::string>(std::move(path));
  }

  std::string log_file(const std::string& id) override {
    {
      std::lock_guard lock(mu_);
      if (auto it = in_progress_.find(id); it != in_progress_.end() && !it->second.empty())
        return it->second + "/log";
    }
    // The log belongs to the result's own directory (on overlayfs, its own layer).
    return root_ + "/result/" + id + "/log";
  }

  Status delete_result(const std::string& id) override {
    if (!validate_id(id)) return {};
    KILN_RETURN_IF_ERROR(writable());
    std::vector<std::pair<std::string, std::string>> trashed;  // id, path in trash
    Status status;
    {
      std::lock_guard lock(mu_);
      KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_result(id));
      if (!record) return {};
      std::vector<std::string> victims;
      if (backend_->results_depend_on_parents()) {
        KILN_RETURN_IF_ERROR(collect_descendants(id, victims));
      } else {
        victims.push_back(id);
      }
      for (const auto& victim : victims) {
        std::string trash = next_trash_path(root_ + "/result");
        if (auto s = rename_path(root_ + "/result/" + victim, trash);
            !s && s.error().kind() != ErrorKind::kNotFound) {
          status = std::unexpected(std::move(s.error()).with_context("deleting result " + victim));
          break;
        }
        if (auto s = metadata_->remove_result(victim); !s) {
          status = std::unexpected(std::move(s.error()).with_context("deleting result " + victim));
          break;
        }
        trashed.emplace_back(victim, std::move(trash));
      }
    }
    for (const auto& [victim, trash] : trashed) {
      if (auto s = backend_->remove_snapshot(victim, trash); !s && status) status = s;
    }
    return status;
  }

  Result<CacheLease> cache(const spec::UnixUser& user, const std::string& name) override {
    KILN_RETURN_IF_ERROR(validate_cache_name(name));
    KILN_RETURN_IF_ERROR(writable());
    std::shared_ptr<CacheState> state = cache_state(name);
    std::lock_guard cache_lock(state->mu);
    std::string latest = latest_cache_path(name);
    KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_cache(name));
    if (!record || !path_exists(latest)) {
      // A new cache: an empty snapshot owned by the user.
      KILN_RETURN_IF_ERROR(discard_if_present(latest));
      std::string dir = next_cache_tmp_path(name);
      KILN_ASSIGN_OR_RETURN(WorkTree empty, backend_->create_empty(dir));
      Status made = chown_path(empty.writable, user);
      if (made) made = backend_->commit(empty, latest);
      if (!made) {
        (void)backend_->discard(dir);
        return std::unexpected(std::move(made.error()).with_context("creating cache " + name));
      }
      retire(dir);
      record = CacheRecord{.generation = record ? record->generation + 1 : 0, .created_us = now_us()};
    }
    std::string dir = next_cache_tmp_path(name);
    auto copy = backend_->clone(Lineage{name, {latest}}, dir, CloneUse::kCache);
    Status owned = copy ? chown_path(copy->writable, user) : Status(std::unexpected(copy.error()));
    if (!owned) {
      (void)backend_->discard(dir);
      return std::unexpected(std::move(owned.error()).with_context("making a copy of cache " + name));
    }
    record->last_used_us = now_us();
    KILN_RETURN_IF_ERROR(metadata_->put_cache(name, *record));
    state->users++;
    std::uint64_t generation = record->generation;
    WorkTree work = *copy;
    return CacheLease(work.writable, [this, state, name, work, generation]() -> Status {
      return release_cache(*state, name, work, generation);
    });
  }

  Status delete_cache(const std::string& name) override {
    KILN_RETURN_IF_ERROR(validate_cache_name(name));
    KILN_RETURN_IF_ERROR(writable());
    std::shared_ptr<CacheState> state = cache_state(name);
    std::lock_guard cache_lock(state->mu);
    if (state->users > 0) {
      return make_error(
          ErrorKind::kBusy,
          fmt::format("cache {} is in use by {} build(s); retry when they finish", name, state->users));
    }
    KILN_RETURN_IF_ERROR(discard_if_present(latest_cache_path(name)));
    return metadata_->remove_cache(name);
  }

  Status complete_deletes() override { return backend_->complete_deletes(); }

  Status record_cache_hit(const std::string& id) override {
    {
      std::lock_guard lock(pending_mu_);
      if (read_only_) {
        if (pending_hits_.size() < kMaxPendingHits) pending_hits_.push_back({id, now_us()});
        return {};
      }
    }
    KILN_RETURN_IF_ERROR(metadata_->mark_used(id, now_us()));
    return metadata_->add_lookups(1, 0);
  }
  Status record_cache_miss() override {
    KILN_RETURN_IF_ERROR(writable());
    return metadata_->add_lookups(0, 1);
  }

  Result<ResultInfo> info(const std::string& id) override {
    KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_result(id));
    if (!record)
      return make_error(ErrorKind::kNotFound, fmt::format("result {} is not in store {}", id, root_));
    if (read_only_.load() && !whole_on_disk(id)) {
      // A crash left the record without its files: the recovery of a
      // writable open drops it.
      KILN_RETURN_IF_ERROR(writable());
      return info(id);
    }
    ResultInfo out;
    if (!record->parent.empty()) out.parent = record->parent;
    out.children = record->children;
    out.created = from_us(record->created_us);
    out.last_used = from_us(record->last_used_us);
    out.size_bytes = record->size_bytes;
    out.build_duration = std::chrono::milliseconds(record->build_ms);
    return out;
  }

  Result<std::vector<std::string>> lru_leaves(std::chrono::system_clock::time_point before,
                                              std::size_t limit) override {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(before.time_since_epoch()).count();
    return metadata_->lru_leaves(us, limit);
  }

  Result<std::vector<std::string>> list_results() override {
    KILN_ASSIGN_OR_RETURN(auto records, metadata_->all_results());
    std::vector<std::string> ids;
    ids.reserve(records.size());
    for (auto& [id, record] : records) ids.push_back(std::move(id));
    return ids;
  }

  Result<StoreStats> stats() override {
    KILN_ASSIGN_OR_RETURN(LookupCounters counters, metadata_->lookup_counters());
    {
      // Read-only: the hits of this process and of earlier read-only ones.
      std::lock_guard lock(pending_mu_);
      if (read_only_) {
        counters.hits += pending_hits_.size();
        if (auto kept = read_pending_hits(pending_hits_path())) counters.hits += kept->size();
      }
    }
    return StoreStats{metadata_->result_count(), counters.hits, counters.misses};
  }

 private:
  struct CacheState {
    std::mutex mu;  // held while the cache's latest snapshot is read or replaced
    int users = 0;  // copies handed out and not yet released
  };

  // Durability (docs/store.md): a build records its result without waiting
  // for the disk; this thread then syncs the store's filesystem (one syncfs
  // for every build since the last) and notes the newest created_us it
  // covers as "synced-through". After a reboot (a power cut) the writable
  // open drops results recorded after that point in the earlier boot.
  void sync_results() {
    std::unique_lock lock(sync_mu_);
    for (;;) {
      sync_cv_.wait(lock, [&] { return sync_stopping_ || recorded_through_ > synced_through_; });
      if (sync_stopping_) return;
      if (!sync_now_ && sync_delay_.count() > 0)
        sync_cv_.wait_for(lock, sync_delay_, [&] { return sync_stopping_ || sync_now_; });
      if (sync_stopping_) return;
      std::int64_t target = recorded_through_;
      sync_now_ = false;
      lock.unlock();
      Status s = sync_filesystem(root_);
      if (s) s = metadata_->put_note(kSyncedThroughNote, std::to_string(target));
      lock.lock();
      if (!s) {
        spdlog::warn("store {}: syncing results to disk: {} (retrying in 1 s)", root_, s.error().to_string());
        sync_error_ = s.error();
        sync_cv_.notify_all();
        sync_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return sync_stopping_; });
        continue;
      }
      sync_error_.reset();
      synced_through_ = std::max(synced_through_, target);
      sync_cv_.notify_all();
    }
  }

  // At a writable open, before the crash recovery: results recorded in an
  // earlier boot after its last sync may have lost their files to a power
  // cut and are dropped (with their directories). Results of this boot that
  // a killed process left unsynced are in the page cache: the background
  // sync takes them on. Then this boot is noted.
  Status settle_unsynced_results() {
    KILN_ASSIGN_OR_RETURN(auto previous_boot, metadata_->get_note(kBootNote));
    KILN_ASSIGN_OR_RETURN(auto synced_note, metadata_->get_note(kSyncedThroughNote));
    KILN_ASSIGN_OR_RETURN(auto records, metadata_->all_results());
    std::int64_t newest = 0;
    for (const auto& [id, record] : records) newest = std::max(newest, record.created_us);
    std::int64_t synced = newest;
    if (synced_note) {
      synced = std::strtoll(synced_note->c_str(), nullptr, 10);
    } else {
      // A new store, or one written before these notes: its results are
      // trusted as they are.
      KILN_RETURN_IF_ERROR(metadata_->put_note(kSyncedThroughNote, std::to_string(newest)));
    }
    if (previous_boot && *previous_boot != boot_id_) {
      for (const auto& [id, record] : records) {
        if (record.created_us <= synced) continue;
        spdlog::warn(
            "store {}: dropping result {}: recorded after the last sync before the machine restarted", root_,
            id);
        KILN_RETURN_IF_ERROR(metadata_->remove_result(id));
        std::string dir = root_ + "/result/" + id;
        if (path_exists(dir)) KILN_RETURN_IF_ERROR(backend_->remove_snapshot(id, dir));
        report_.unsynced_dropped++;
      }
      newest = std::min(newest, synced);
    }
    if (!previous_boot || *previous_boot != boot_id_)
      KILN_RETURN_IF_ERROR(metadata_->put_note(kBootNote, boot_id_));
    std::lock_guard lock(sync_mu_);
    synced_through_ = std::min(synced, newest);
    recorded_through_ = newest;
    return {};
  }

  // Measures new results' sizes off the build's critical path: walking a
  // whole snapshot (btrfs, xfs, rsync) costs more than making it. Drains
  // the queue before the store closes.
  void measure_sizes() {
    std::unique_lock lock(sizer_mu_);
    for (;;) {
      sizer_cv_.wait(lock, [&] { return stopping_ || !sizer_queue_.empty(); });
      if (sizer_queue_.empty()) return;  // stopping, nothing left
      std::string id = std::move(sizer_queue_.front());
      sizer_queue_.pop_front();
      lock.unlock();
      // A result deleted meanwhile fails the walk or the update: nothing to record then.
      std::optional<std::string> parent;
      if (auto record = metadata_->get_result(id); record && *record && !(*record)->parent.empty())
        parent = (*record)->parent;
      if (auto size = backend_->size_of(id, root_ + "/result/" + id, parent)) {
        if (auto s = metadata_->set_size(id, *size); !s)
          spdlog::warn("recording the size of {}: {}", id, s.error().to_string());
      }
      lock.lock();
    }
  }

  static Status run_build_fn(const BuildFn& fn, const Workspace& workspace, const std::string& id) {
    // The build function is the caller's code: an exception must not skip
    // the clean-up, nor cross into the store's caller as an exception.
    try {
      return fn(workspace);
    } catch (const std::exception& e) {
      return make_error(ErrorKind::kInternal, fmt::format("build function for {} threw: {}", id, e.what()));
    } catch (...) {
      return make_error(ErrorKind::kInternal, fmt::format("build function for {} threw", id));
    }
  }

  // Whether the directories of `id` and of every layer it lies on exist, and
  // the backend has its content.
  bool whole_on_disk(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      auto lineage = lineage_locked(id);
      if (!lineage) return false;
      for (const auto& layer : lineage->layers)
        if (!path_exists(layer)) return false;
    }
    // And its content where that is not the directory (docker: the image,
    // looked up in one list of the store's images per open). An error is
    // "no": the writable open's recovery then says what is wrong.
    auto present = backend_->present(id);
    return present && *present;
  }

  static Status chown_path(const std::string& path, const spec::UnixUser& user) {
    if (lchown(path.c_str(), static_cast<uid_t>(user.uid), static_cast<gid_t>(user.gid)) != 0)
      return errno_error(fmt::format("giving {} to {}:{}", path, user.uid, user.gid));
    return {};
  }

  // The snapshot `id` and the layers its storage lies on. Caller holds mu_.
  Result<Lineage> lineage_locked(const std::string& id) {
    Lineage lineage{id, {}};
    std::string current = id;
    std::set<std::string> seen;
    while (!current.empty()) {
      KILN_ASSIGN_OR_RETURN(auto record, metadata_->get_result(current));
      if (!record) {
        if (current == id) {
          return make_error(ErrorKind::kNotFound,
                            fmt::format("result {} is not in store {}; build it first", id, root_));
        }
        return make_error(ErrorKind::kFailedPrecondition,
                          fmt::format("result {} lies on {}, which is missing from store {}; delete {} and "
                                      "build it again",
                                      id, current, root_, id));
      }
      if (!seen.insert(current).second) {
        return make_error(ErrorKind::kInternal,
                          fmt::format("result {}: its layers form a cycle at {}", id, current));
      }
      lineage.layers.push_back(root_ + "/result/" + current);
      current = record->layered_on;
    }
    return lineage;
  }

  // `id` and all its descendants, children before parents. Caller holds mu_.
  Status collect_descendants(const std::string& id, std::vector<std::string>& out) {
    KILN_ASSIGN_OR_RETURN(auto kids, metadata_->children(id));
    for (const auto& kid : kids) KILN_RETURN_IF_ERROR(collect_descendants(kid, out));
    out.push_back(id);
    return {};
  }

  // Deletes first rename the victim aside in its own directory (btrfs cannot
  // move a read-only subvolume to another directory), so it disappears at
  // once and the slow removal runs without the store's lock.
  std::string next_trash_path(const std::string& dir) {
    return fmt::format("{}/{}{}", dir, kTrashPrefix, sequence_++);
  }
  std::string next_cache_tmp_path(const std::string& name) {
    return fmt::format("{}/cache-tmp/{}-{}", root_, sequence_++, escape_name(name));
  }
  std::string latest_cache_path(const std::string& name) const {
    return root_ + "/cache/" + escape_name(name);
  }

  // Hands a directory nothing refers to any more, if it exists, to the
  // attic, which removes it off the caller's path; removes it here if that fails.
  void retire(const std::string& path) {
    if (!path_exists(path)) return;
    if (attic_ && attic_->retire(path)) return;
    if (auto s = backend_->discard(path); !s)
      spdlog::warn("store {}: removing {}: {}", root_, path, s.error().to_string());
  }

  // Moves a snapshot out of its place (atomically), then removes it.
  Status discard_if_present(const std::string& path) {
    if (!path_exists(path)) return {};
    std::string trash = next_trash_path(path.substr(0, path.rfind('/')));
    KILN_RETURN_IF_ERROR(rename_path(path, trash));
    return backend_->discard(trash);
  }

  std::shared_ptr<CacheState> cache_state(const std::string& name) {
    std::lock_guard lock(mu_);
    auto& state = caches_[name];
    if (!state) state = std::make_shared<CacheState>();
    return state;
  }

  Status release_cache(CacheState& state, const std::string& name, const WorkTree& work,
                       std::uint64_t generation) {
    std::lock_guard cache_lock(state.mu);
    state.users--;
    auto record = metadata_->get_cache(name);
    if (record && *record && (*record)->generation == generation) {
      // First release since this copy was taken: it becomes the latest.
      // Committed beside the latest, then swapped with it in one atomic
      // exchange, so a crash leaves the old or the new snapshot, never none.
      std::string latest = latest_cache_path(name);
      std::string staged = next_trash_path(root_ + "/cache");
      CacheRecord updated = **record;
      updated.generation++;
      updated.last_used_us = now_us();
      Status s = backend_->commit(work, staged);
      if (!s) {
        (void)backend_->discard(work.dir);
        return std::unexpected(std::move(s.error()).with_context("saving the new snapshot of cache " + name));
      }
      retire(work.dir);
      s = path_exists(latest) ? exchange_paths(staged, latest) : rename_path(staged, latest);
      if (s) s = metadata_->put_cache(name, updated);
      // `staged` now holds the previous snapshot (or, after a failure, the new one).
      if (s) {
        retire(staged);
      } else if (auto removed = backend_->discard(staged); !removed) {
        s = removed;
      }
      if (!s)
        return std::unexpected(std::move(s.error()).with_context("saving the new snapshot of cache " + name));
      return {};
    }
    // Someone released a newer copy first (or the cache was deleted): drop this one.
    return backend_->discard(work.dir);
  }

  const std::string root_;
  const std::string state_dir_;
  std::unique_ptr<SnapshotBackend> backend_;
  std::unique_ptr<Metadata> metadata_;
  RecoveryReport report_;

  // Opened with StoreOpenMode::kReadOnlyUntilWrite: the metadata is
  // read-only until writable() (the first change) reopens it.
  std::atomic<bool> read_only_{false};
  std::mutex upgrade_mu_;  // held by writable()
  std::mutex pending_mu_;  // guards pending_hits_ and read_only_'s change
  static constexpr std::size_t kMaxPendingHits = 100'000;
  std::vector<PendingHit> pending_hits_;  // cache hits recorded while read-only

  std::mutex mu_;  // guards in_progress_, caches_, and result existence vs. deletes
  std::unordered_map<std::string, std::string> in_progress_;  // id -> writable dir ("" while preparing)
  std::unordered_map<std::string, std::shared_ptr<CacheState>> caches_;
  std::atomic<std::uint64_t> sequence_{0};  // unique temporary names

  std::mutex sizer_mu_;  // guards sizer_queue_ and stopping_
  std::condition_variable sizer_cv_;
  std::deque<std::string> sizer_queue_;  // results whose size is still to be measured
  bool stopping_ = false;
  std::thread sizer_;

  static constexpr std::string_view kBootNote = "boot";
  static constexpr std::string_view kSyncedThroughNote = "synced-through";
  const std::string boot_id_;
  const std::chrono::milliseconds sync_delay_;
  const bool sync_at_close_;
  std::mutex sync_mu_;  // guards the fields below
  std::condition_variable sync_cv_;
  std::int64_t recorded_through_ = 0;  // newest created_us recorded
  std::int64_t synced_through_ = 0;    // newest created_us known on disk
  bool sync_now_ = false;              // sync() waits: skip the delay
  bool sync_stopping_ = false;
  std::optional<Error> sync_error_;  // the last sync's failure, until one succeeds
  std::thread syncer_;
  // Removes what builds and cache releases left (writable stores only).
  // Declared last: destroyed first, while the backend it calls still exists.
  std::unique_ptr<Attic> attic_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_snapshot_store(const std::string& root,
                                                   std::unique_ptr<SnapshotBackend> backend,
                                                   const StoreOptions& options) {
  auto store = std::make_unique<SnapshotStore>(root, std::move(backend), options);
  if (auto s = store->open(options.open_mode); !s)
    return std::unexpected(std::move(s.error()).with_context("opening store " + root));
  return std::unique_ptr<Store>(std::move(store));
}

std::unexpected<Error> wrong_filesystem_error(std::string_view store_kind, const std::string& root,
                                              std::int64_t magic, std::string_view wanted) {
  return make_error(
      ErrorKind::kFailedPrecondition,
      fmt::format("{}:{}: {} is on {}, not {}; make a {} filesystem there or choose another store",
                  store_kind, root, root, filesystem_name(magic), wanted, wanted));
}

}  // namespace kiln::store
