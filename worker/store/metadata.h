// The snapshot store's metadata: one RocksDB database per store (under its
// state_dir) recording, for each result, its parent, children count, created
// and last-used times, size on disk and build duration; an index of leaves
// (results without children) ordered by last use, so the least recently used
// leaf is one seek; the named caches and their generations; and cache
// hit/miss counters that survive restarts. Key layout: docs/store.md.
//
//   KILN_ASSIGN_OR_RETURN(auto db, Metadata::open(state_dir + "/metadata"));
//   KILN_RETURN_IF_ERROR(db->add_result("b", {.parent = "a", .created_us = now, ...}));
//   KILN_ASSIGN_OR_RETURN(auto victims, db->lru_leaves(/*before_us=*/now, /*limit=*/10));
//
// Contract: every change that touches more than one key is one atomic
// WriteBatch, so a crash leaves either the old or the new state. Thread
// safety: all methods may be called concurrently (make_writable() too);
// read-modify-write changes are serialised by an internal mutex. Errors: kIo with RocksDB's message;
// kNotFound / kFailedPrecondition where stated.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace kiln::store {

struct ResultRecord {
  std::string parent;             // the base this result was built from; "" for none
  std::string layered_on;         // the result whose files this one's storage needs ("" if self-contained)
  std::uint32_t children = 0;     // results whose parent is this one
  std::int64_t created_us = 0;    // microseconds since the Unix epoch
  std::int64_t last_used_us = 0;  // idem; updated by mark_used and by building on it
  std::uint64_t size_bytes = 0;   // allocated on disk by this result's own files
  std::int64_t build_ms = 0;      // how long the build step took
  bool operator==(const ResultRecord&) const = default;
};

struct CacheRecord {
  std::uint64_t generation = 0;  // bumped each time a release becomes the latest snapshot
  std::int64_t created_us = 0;
  std::int64_t last_used_us = 0;
  bool operator==(const CacheRecord&) const = default;
};

struct LookupCounters {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
};

// Now, in the records' unit: microseconds since the Unix epoch.
std::int64_t metadata_now_us();

class Metadata {
 public:
  // Opens (creating if needed) the database in directory `dir`.
  static Result<std::unique_ptr<Metadata>> open(const std::string& dir);

  // Opens an existing database read-only: nothing is written (RocksDB's
  // writable open starts a new manifest and OPTIONS file and syncs them),
  // and every change fails kFailedPrecondition until make_writable().
  // RocksDB's LOCK file is read-locked (fcntl) while this is open, so a
  // writable open in another process is refused meanwhile, and this open
  // fails kBusy while such a writer has the database. Several read-only
  // opens may share it. kNotFound when there is no database in `dir`.
  // One open per database per process: fcntl locks belong to the process,
  // so closing a second open in the same process would drop this one's.
  static Result<std::unique_ptr<Metadata>> open_read_only(const std::string& dir);

  // Reopens a read-only database for writing, in place; a no-op when it is
  // writable. Other calls wait meanwhile. Retries while other processes
  // have it open read-only (for up to kWritablePatience), then fails kBusy;
  // after a failure every call fails kIo.
  Status make_writable();
  static constexpr std::chrono::seconds kWritablePatience{5};
  bool read_only() const;
  ~Metadata();
  Metadata(const Metadata&) = delete;
  Metadata& operator=(const Metadata&) = delete;

  Result<std::optional<ResultRecord>> get_result(const std::string& id) const;

  // Records a new result. In one batch: the record, the parent's child link
  // and children count (and its last-used time, set to the child's
  // created_us), the LRU index (the new result is a leaf; the parent no
  // longer is). Fails kAlreadyExists for a known id, kNotFound for an
  // unknown parent. `record.children` is ignored (starts at 0).
  Status add_result(const std::string& id, ResultRecord record);

  // Sets last_used_us and moves the result in the LRU index. kNotFound if absent.
  Status mark_used(const std::string& id, std::int64_t now_us);

  // Sets a result's size (measured after it was recorded). Absent is fine.
  Status set_size(const std::string& id, std::uint64_t size_bytes);

  // Removes a result. In one batch: the record, its LRU entry, its link from
  // its parent (whose count drops; a parent left without children becomes
  // an LRU leaf), and its children's parent fields (they become roots).
  // Absent is fine.
  Status remove_result(const std::string& id);

  // Up to `limit` leaves last used strictly before `before_us`, oldest first.
  Result<std::vector<std::string>> lru_leaves(std::int64_t before_us, std::size_t limit) const;

  // Ids whose parent is `id`.
  Result<std::vector<std::string>> children(const std::string& id) const;

  // Every result (a full scan; used at open for reconciliation).
  Result<std::vector<std::pair<std::string, ResultRecord>>> all_results() const;

  // Number of results (kept in memory, counted at open).
  std::uint64_t result_count() const;

  Result<std::optional<CacheRecord>> get_cache(const std::string& name) const;
  Status put_cache(const std::string& name, const CacheRecord& record);
  Status remove_cache(const std::string& name);
  Result<std::vector<std::pair<std::string, CacheRecord>>> all_caches() const;

  // Small named values of the store's own (the boot it was last opened
  // writable in, how far its results are known to be on disk).
  Result<std::optional<std::string>> get_note(std::string_view name) const;
  Status put_note(std::string_view name, std::string_view value);

  // Adds to the persistent cache hit / miss counters.
  Status add_lookups(std::uint64_t hits, std::uint64_t misses);
  Result<LookupCounters> lookup_counters() const;

  // Recomputes the derived keys (children counts, child links, LRU index)
  // from the result records, drops child links and parent fields that name
  // missing results, and writes the differences in one batch. Returns how
  // many keys it had to fix (0 for a consistent database).
  Result<int> repair_indexes();

 private:
  struct Impl;
  explicit Metadata(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::store
