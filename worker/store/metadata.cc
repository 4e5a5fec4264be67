#include "worker/store/metadata.h"

#include <fcntl.h>
#include <unistd.h>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/unique_fd.h"
#include "worker/store/metadata_records.h"

namespace kiln::store {

namespace {

// Key prefixes (docs/store.md has the whole layout).
constexpr std::string_view kResultPrefix = "r/";  // r/<id> -> ResultRecord
constexpr std::string_view kChildPrefix = "c/";   // c/<parent>/<child> -> ""
constexpr std::string_view kLeafPrefix = "l/";    // l/<be64 last used><id> -> ""
constexpr std::string_view kCachePrefix = "k/";   // k/<name> -> CacheRecord
constexpr std::string_view kHitsKey = "s/hits";
constexpr std::string_view kMissesKey = "s/misses";
constexpr std::string_view kNotePrefix = "n/";  // n/<name> -> a value of the store's own

std::string result_key(std::string_view id) {
  return std::string(kResultPrefix) + std::string(id);
}
std::string child_key(std::string_view parent, std::string_view child) {
  return fmt::format("{}{}/{}", kChildPrefix, parent, child);
}
std::string cache_key(std::string_view name) {
  return std::string(kCachePrefix) + std::string(name);
}

// Big-endian with the sign bit flipped, so byte order is numeric order and
// the oldest leaf is the first key under the prefix.
std::string leaf_key(std::int64_t last_used_us, std::string_view id) {
  std::string key(kLeafPrefix);
  auto v = static_cast<std::uint64_t>(last_used_us) ^ (std::uint64_t{1} << 63);
  for (int shift = 56; shift >= 0; shift -= 8) key += static_cast<char>((v >> shift) & 0xff);
  key += id;
  return key;
}

std::int64_t leaf_key_time(std::string_view key) {
  std::uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(key[kLeafPrefix.size() + i]);
  return static_cast<std::int64_t>(v ^ (std::uint64_t{1} << 63));
}

std::unexpected<Error> db_error(std::string_view what, const rocksdb::Status& s) {
  return make_error(ErrorKind::kIo, fmt::format("store metadata: {}: {}", what, s.ToString()));
}

std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

}  // namespace

struct Metadata::Impl {
  std::string dir;
  // Held shared by every read and write, exclusively while make_writable()
  // replaces the read-only database with a writable one.
  mutable std::shared_mutex db_mu;
  std::unique_ptr<rocksdb::DB> db;  // null only after a failed make_writable()
  bool read_only = false;
  UniqueFd read_lock;   // read-only: RocksDB's LOCK file, read-locked (fcntl) while open
  std::mutex write_mu;  // serialises read-modify-write changes
  std::atomic<std::uint64_t> count{0};
  // Deleted LRU keys stay as tombstones until compaction, and they pile up
  // exactly where the oldest leaves were; seeking from the prefix would skip
  // all of them on every lookup. `leaf_floor` is a key no live leaf key is
  // below, so lookups seek there instead. Writers lower it (before their
  // batch is written) when they add an older leaf key.
  std::mutex floor_mu;
  std::string leaf_floor;

  void note_leaf_added(const std::string& key) {
    std::lock_guard lock(floor_mu);
    if (!leaf_floor.empty() && key < leaf_floor) leaf_floor = key;
  }
  rocksdb::WriteOptions write_options;
  rocksdb::ReadOptions read_options;

  Status usable() const {
    if (db) return {};
    return make_error(ErrorKind::kIo,
                      fmt::format("store metadata {}: the database was closed when reopening it for "
                                  "writing failed; restart the command",
                                  dir));
  }

  Result<std::optional<std::string>> get(std::string_view key) const {
    std::shared_lock lock(db_mu);
    KILN_RETURN_IF_ERROR(usable());
    std::string value;
    rocksdb::Status s = db->Get(read_options, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return db_error(fmt::format("reading {}", key), s);
    return std::optional<std::string>(std::move(value));
  }

  Result<std::optional<ResultRecord>> get_result(std::string_view id) const {
    KILN_ASSIGN_OR_RETURN(auto value, get(result_key(id)));
    if (!value) return std::optional<ResultRecord>();
    KILN_ASSIGN_OR_RETURN(auto record, decode_result(id, *value));
    return std::optional<ResultRecord>(std::move(record));
  }

  Status write(rocksdb::WriteBatch& batch, std::string_view what) {
    std::shared_lock lock(db_mu);
    KILN_RETURN_IF_ERROR(usable());
    if (read_only)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("store metadata: {}: the database is open read-only", what));
    rocksdb::Status s = db->Write(write_options, &batch);
    if (!s.ok()) return db_error(what, s);
    return {};
  }

  // Calls fn(key, value) for every key under `prefix`, in key order, until it returns false.
  template <typename Fn>
  Status scan(std::string_view prefix, Fn&& fn, std::string_view start = {}) const {
    // The upper bound stops RocksDB at the end of the prefix instead of
    // reading into the next one.
    std::string upper(prefix);
    upper.back() = static_cast<char>(upper.back() + 1);
    rocksdb::Slice upper_slice(upper);
    std::shared_lock lock(db_mu);
    KILN_RETURN_IF_ERROR(usable());
    rocksdb::ReadOptions options = read_options;
    options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(options));
    std::string_view from = start.empty() ? prefix : start;
    for (it->Seek(rocksdb::Slice(from.data(), from.size())); it->Valid(); it->Next()) {
      std::string_view key = view(it->key());
      if (!key.starts_with(prefix)) break;
      if (!fn(key, view(it->value()))) break;
    }
    if (!it->status().ok()) return db_error(fmt::format("scanning {}", prefix), it->status());
    return {};
  }

  Status count_results() {
    std::uint64_t n = 0;
    KILN_RETURN_IF_ERROR(scan(kResultPrefix, [&](std::string_view, std::string_view) {
      ++n;
      return true;
    }));
    count = n;
    return {};
  }
};

std::int64_t metadata_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Metadata::Metadata(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Metadata::~Metadata() = default;

constexpr std::size_t kMaxLogsKeptAtOpen = 8;

namespace {

rocksdb::Options metadata_options() {
  rocksdb::Options options;
  options.create_if_missing = true;
  // The store's metadata is small; keep RocksDB's own footprint small too.
  options.max_background_jobs = 1;
  options.keep_log_file_num = 2;
  options.max_log_file_size = 1 << 20;
  options.write_buffer_size = 8 << 20;
  // `kiln build` opens the store for each command: an open must be cheap.
  // Table files are opened on the calling thread (the default starts 16
  // threads for a handful of files), their statistics are not read at open,
  // and RocksDB's info log keeps warnings only (it is rotated at every open).
  options.max_file_opening_threads = 1;
  options.skip_stats_update_on_db_open = true;
  options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // The write-ahead log of the last run stays a log at open (by default it
  // is written out as a tiny table file, synced, and every few opens
  // compacted): a cached build then only appends its cache hits to it. The
  // log is kept until the memtable is flushed, so nothing is less durable.
  options.avoid_flush_during_recovery = true;
  // Each open starts a new manifest; it stays a few kilobytes.
  options.manifest_preallocation_size = 64 << 10;
  // The LRU index is a queue (old keys deleted, new ones added): compact
  // files dense with deletions so tombstones do not slow seeks for long.
  options.table_properties_collector_factories.emplace_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/1024, /*deletion_trigger=*/256));
  return options;
}

std::unexpected<Error> open_error(const std::string& dir, const rocksdb::Status& s) {
  return make_error(ErrorKind::kIo,
                    fmt::format("opening the store metadata database {}: {} (is another worker using "
                                "this store? a store can be opened by one process at a time)",
                                dir, s.ToString()));
}

// RocksDB's "While lock file: DIR/LOCK: Resource temporarily unavailable".
bool is_lock_conflict(const rocksdb::Status& s) {
  return s.IsIOError() && s.ToString().find("lock file") != std::string::npos;
}

// A read-only open must not write either: RocksDB would rotate its info
// log (LOG) at every open. Errors still come back as statuses.
class NoLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

Result<std::unique_ptr<rocksdb::DB>> open_writable_db(const std::string& dir, rocksdb::Status* status) {
  rocksdb::DB* raw = nullptr;
  *status = rocksdb::DB::Open(metadata_options(), dir, &raw);
  if (!status->ok()) return open_error(dir, *status);
  std::unique_ptr<rocksdb::DB> db(raw);
  // Logs kept at open (avoid_flush_during_recovery) are replayed by every
  // open: once there are more than a few, write them out as a table.
  rocksdb::VectorLogPtr logs;
  if (db->GetSortedWalFiles(logs).ok() && logs.size() > kMaxLogsKeptAtOpen) {
    if (rocksdb::Status f = db->Flush(rocksdb::FlushOptions()); !f.ok())
      spdlog::warn("store metadata {}: flushing {} logs: {}", dir, logs.size(), f.ToString());
  }
  return db;
}

}  // namespace

Result<std::unique_ptr<Metadata>> Metadata::open(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  rocksdb::Status status;
  KILN_ASSIGN_OR_RETURN(impl->db, open_writable_db(dir, &status));
  KILN_RETURN_IF_ERROR(impl->count_results());
  return std::unique_ptr<Metadata>(new Metadata(std::move(impl)));
}

Result<std::unique_ptr<Metadata>> Metadata::open_read_only(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->read_only = true;
  // Read-locked before RocksDB reads anything: a writer that holds the lock
  // is refused here, and one that comes later is refused by RocksDB.
  const std::string lock_path = dir + "/LOCK";
  impl->read_lock = UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!impl->read_lock) {
    if (errno == ENOENT)
      return make_error(ErrorKind::kNotFound, fmt::format("store metadata {}: no database yet", dir));
    return errno_error("opening " + lock_path);
  }
  struct flock lock {};
  lock.l_type = F_RDLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(impl->read_lock.get(), F_SETLK, &lock) != 0) {
    if (errno == EAGAIN || errno == EACCES)
      return make_error(
          ErrorKind::kBusy,
          fmt::format("store metadata {}: another process has the store open for writing", dir));
    return errno_error("locking " + lock_path);
  }
  rocksdb::Options options = metadata_options();
  options.create_if_missing = false;
  options.info_log = std::make_shared<NoLogger>();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, dir, &raw);
  if (!s.ok()) {
    if (s.IsPathNotFound() || s.IsNotFound())
      return make_error(ErrorKind::kNotFound, fmt::format("store metadata {}: {}", dir, s.ToString()));
    return open_error(dir, s);
  }
  impl->db.reset(raw);
  KILN_RETURN_IF_ERROR(impl->count_results());
  return std::unique_ptr<Metadata>(new Metadata(std::move(impl)));
}

bool Metadata::read_only() const {
  std::shared_lock lock(impl_->db_mu);
  return impl_->read_only;
}

Status Metadata::make_writable() {
  std::unique_lock lock(impl_->db_mu);
  if (!impl_->read_only && impl_->db) return {};
  // Closing the lock file's descriptor drops this process's fcntl locks on
  // it, which RocksDB's writable open then takes for itself.
  impl_->db.reset();
  impl_->read_lock.reset();
  const auto deadline = std::chrono::steady_clock::now() + kWritablePatience;
  for (;;) {
    rocksdb::Status status;
    auto db = open_writable_db(impl_->dir, &status);
    if (db) {
      impl_->db = std::move(*db);
      impl_->read_only = false;
      break;
    }
    // Other commands reading the store hold it for a few milliseconds.
    if (!is_lock_conflict(status) || std::chrono::steady_clock::now() >= deadline) {
      return make_error(ErrorKind::kBusy,
                        fmt::format("{} (waited {} s for other processes using the store to finish)",
                                    db.error().message(), kWritablePatience.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  lock.unlock();
  return impl_->count_results();
}

Result<std::optional<ResultRecord>> Metadata::get_result(const std::string& id) const {
  return impl_->get_result(id);
}

Status Metadata::add_result(const std::string& id, ResultRecord record) {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(auto existing, impl_->get_result(id));
  if (existing)
    return make_error(ErrorKind::kAlreadyExists, fmt::format("result {} is already recorded", id));
  rocksdb::WriteBatch batch;
  record.children = 0;
  if (!record.parent.empty()) {
    KILN_ASSIGN_OR_RETURN(auto parent, impl_->get_result(record.parent));
    if (!parent) {
      return make_error(
          ErrorKind::kNotFound,
          fmt::format("recording result {}: its parent {} is not in the store", id, record.parent));
    }
    if (parent->children == 0) batch.Delete(leaf_key(parent->last_used_us, record.parent));
    parent->children++;
    parent->last_used_us = std::max(parent->last_used_us, record.created_us);
    batch.Put(result_key(record.parent), encode(*parent));
    // (The parent is no leaf now: nothing to add to the LRU index for it.)
    batch.Put(child_key(record.parent, id), "");
  }
  batch.Put(result_key(id), encode(record));
  batch.Put(leaf_key(record.last_used_us, id), "");
  impl_->note_leaf_added(leaf_key(record.last_used_us, id));
  KILN_RETURN_IF_ERROR(impl_->write(batch, "recording result " + id));
  impl_->count++;
  return {};
}

Status Metadata::mark_used(const std::string& id, std::int64_t now_us) {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(auto record, impl_->get_result(id));
  if (!record) return make_error(ErrorKind::kNotFound, fmt::format("result {} is not in the store", id));
  rocksdb::WriteBatch batch;
  if (record->children == 0) {
    batch.Delete(leaf_key(record->last_used_us, id));
    batch.Put(leaf_key(now_us, id), "");
    impl_->note_leaf_added(leaf_key(now_us, id));
  }
  record->last_used_us = now_us;
  batch.Put(result_key(id), encode(*record));
  return impl_->write(batch, "marking result " + id + " used");
}

Status Metadata::set_size(const std::string& id, std::uint64_t size_bytes) {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(auto record, impl_->get_result(id));
  if (!record) return {};
  record->size_bytes = size_bytes;
  rocksdb::WriteBatch batch;
  batch.Put(result_key(id), encode(*record));
  return impl_->write(batch, "recording the size of result " + id);
}

Status Metadata::remove_result(const std::string& id) {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(auto record, impl_->get_result(id));
  if (!record) return {};
  rocksdb::WriteBatch batch;
  batch.Delete(result_key(id));
  if (record->children == 0) batch.Delete(leaf_key(record->last_used_us, id));
  if (!record->parent.empty()) {
    batch.Delete(child_key(record->parent, id));
    KILN_ASSIGN_OR_RETURN(auto parent, impl_->get_result(record->parent));
    if (parent && parent->children > 0) {
      parent->children--;
      if (parent->children == 0) {
        batch.Put(leaf_key(parent->last_used_us, record->parent), "");
        impl_->note_leaf_added(leaf_key(parent->last_used_us, record->parent));
      }
      batch.Put(result_key(record->parent), encode(*parent));
    }
  }
  // Children outlive their parent on backends whose results are
  // self-contained; they become roots.
  std::vector<std::string> kids;
  std::string prefix = child_key(id, "");
  KILN_RETURN_IF_ERROR(impl_->scan(prefix, [&](std::string_view key, std::string_view) {
    kids.emplace_back(key.substr(prefix.size()));
    return true;
  }));
  for (const auto& kid : kids) {
    batch.Delete(child_key(id, kid));
    KILN_ASSIGN_OR_RETURN(auto child, impl_->get_result(kid));
    if (child) {
      child->parent.clear();
      batch.Put(result_key(kid), encode(*child));
    }
  }
  KILN_RETURN_IF_ERROR(impl_->write(batch, "removing result " + id));
  impl_->count--;
  return {};
}

Result<std::vector<std::string>> Metadata::lru_leaves(std::int64_t before_us, std::size_t limit) const {
  std::vector<std::string> out;
  if (limit == 0) return out;
  std::lock_guard lock(impl_->floor_mu);
  std::string first;
  KILN_RETURN_IF_ERROR(impl_->scan(
      kLeafPrefix,
      [&](std::string_view key, std::string_view) {
        if (first.empty()) first = key;
        if (key.size() < kLeafPrefix.size() + 8 || leaf_key_time(key) >= before_us) return false;
        out.emplace_back(key.substr(kLeafPrefix.size() + 8));
        return out.size() < limit;
      },
      impl_->leaf_floor));
  // Nothing live lies below the first key found (writers that add older keys
  // lower the floor first, and wait for this lock).
  if (!first.empty()) impl_->leaf_floor = first;
  return out;
}

Result<std::vector<std::string>> Metadata::children(const std::string& id) const {
  std::vector<std::string> out;
  std::string prefix = child_key(id, "");
  KILN_RETURN_IF_ERROR(impl_->scan(prefix, [&](std::string_view key, std::string_view) {
    out.emplace_back(key.substr(prefix.size()));
    return true;
  }));
  return out;
}

Result<std::vector<std::pair<std::string, ResultRecord>>> Metadata::all_results() const {
  std::vector<std::pair<std::string, ResultRecord>> out;
  std::optional<Error> failure;
  KILN_RETURN_IF_ERROR(impl_->scan(kResultPrefix, [&](std::string_view key, std::string_view value) {
    std::string_view id = key.substr(kResultPrefix.size());
    auto record = decode_result(id, value);
    if (!record) {
      failure = record.error();
      return false;
    }
    out.emplace_back(std::string(id), std::move(*record));
    return true;
  }));
  if (failure) return std::unexpected(*failure);
  return out;
}

std::uint64_t Metadata::result_count() const {
  return impl_->count;
}

Result<std::optional<CacheRecord>> Metadata::get_cache(const std::string& name) const {
  KILN_ASSIGN_OR_RETURN(auto value, impl_->get(cache_key(name)));
  if (!value) return std::optional<CacheRecord>();
  KILN_ASSIGN_OR_RETURN(auto record, decode_cache(name, *value));
  return std::optional<CacheRecord>(record);
}

Status Metadata::put_cache(const std::string& name, const CacheRecord& record) {
  rocksdb::WriteBatch batch;
  batch.Put(cache_key(name), encode(record));
  return impl_->write(batch, "recording cache " + name);
}

Status Metadata::remove_cache(const std::string& name) {
  rocksdb::WriteBatch batch;
  batch.Delete(cache_key(name));
  return impl_->write(batch, "removing cache " + name);
}

Result<std::vector<std::pair<std::string, CacheRecord>>> Metadata::all_caches() const {
  std::vector<std::pair<std::string, CacheRecord>> out;
  std::optional<Error> failure;
  KILN_RETURN_IF_ERROR(impl_->scan(kCachePrefix, [&](std::string_view key, std::string_view value) {
    std::string_view name = key.substr(kCachePrefix.size());
    auto record = decode_cache(name, value);
    if (!record) {
      failure = record.error();
      return false;
    }
    out.emplace_back(std::string(name), *record);
    return true;
  }));
  if (failure) return std::unexpected(*failure);
  return out;
}

Status Metadata::add_lookups(std::uint64_t hits, std::uint64_t misses) {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(LookupCounters now, lookup_counters());
  rocksdb::WriteBatch batch;
  batch.Put(kHitsKey, encode_counter(now.hits + hits));
  batch.Put(kMissesKey, encode_counter(now.misses + misses));
  return impl_->write(batch, "counting cache lookups");
}

Result<std::optional<std::string>> Metadata::get_note(std::string_view name) const {
  return impl_->get(std::string(kNotePrefix) + std::string(name));
}

Status Metadata::put_note(std::string_view name, std::string_view value) {
  rocksdb::WriteBatch batch;
  batch.Put(std::string(kNotePrefix) + std::string(name), rocksdb::Slice(value.data(), value.size()));
  return impl_->write(batch, fmt::format("recording the store's {}", name));
}

Result<LookupCounters> Metadata::lookup_counters() const {
  LookupCounters out;
  KILN_ASSIGN_OR_RETURN(auto hits, impl_->get(kHitsKey));
  KILN_ASSIGN_OR_RETURN(auto misses, impl_->get(kMissesKey));
  if (hits) out.hits = decode_counter(*hits);
  if (misses) out.misses = decode_counter(*misses);
  return out;
}

Result<int> Metadata::repair_indexes() {
  std::lock_guard lock(impl_->write_mu);
  KILN_ASSIGN_OR_RETURN(auto all, all_results());
  std::map<std::string, ResultRecord> records(std::make_move_iterator(all.begin()),
                                              std::make_move_iterator(all.end()));
  rocksdb::WriteBatch batch;
  int fixes = 0;
  // Parent fields naming missing results: the result becomes a root.
  std::map<std::string, std::uint32_t> expected_children;
  std::set<std::string> expected_links, expected_leaves;
  for (auto& [id, r] : records) {
    if (!r.parent.empty() && !records.contains(r.parent)) {
      r.parent.clear();
      batch.Put(result_key(id), encode(r));
      ++fixes;
    }
    if (!r.parent.empty()) {
      expected_children[r.parent]++;
      expected_links.insert(child_key(r.parent, id));
    }
  }
  for (auto& [id, r] : records) {
    std::uint32_t want = expected_children.contains(id) ? expected_children[id] : 0;
    if (r.children != want) {
      r.children = want;
      batch.Put(result_key(id), encode(r));
      ++fixes;
    }
    if (want == 0) expected_leaves.insert(leaf_key(r.last_used_us, id));
  }
  auto reconcile = [&](std::string_view prefix, std::set<std::string>& expected) -> Status {
    KILN_RETURN_IF_ERROR(impl_->scan(prefix, [&](std::string_view key, std::string_view) {
      if (!expected.erase(std::string(key))) {
        batch.Delete(rocksdb::Slice(key.data(), key.size()));
        ++fixes;
      }
      return true;
    }));
    for (const auto& key : expected) {
      batch.Put(key, "");
      ++fixes;
    }
    return {};
  };
  KILN_RETURN_IF_ERROR(reconcile(kChildPrefix, expected_links));
  KILN_RETURN_IF_ERROR(reconcile(kLeafPrefix, expected_leaves));
  {
    std::lock_guard floor_lock(impl_->floor_mu);
    impl_->leaf_floor.clear();  // repaired leaf keys may lie anywhere
  }
  if (fixes > 0) KILN_RETURN_IF_ERROR(impl_->write(batch, "repairing the metadata indexes"));
  impl_->count = records.size();
  return fixes;
}

}  // namespace kiln::store
