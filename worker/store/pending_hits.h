// Cache hits recorded while a store's metadata was open read-only (a fully
// cached `kiln build` writes nothing to RocksDB), kept in a small file in
// the store's state directory until the next writable open applies them.
//
//   append_pending_hits(state_dir + "/pending-hits", {{id, now_us}});   // read-only store, at close
//   KILN_ASSIGN_OR_RETURN(auto hits, take_pending_hits(state_dir + "/pending-hits"));  // writable open
//   for (const auto& hit : hits) ... mark the result used at hit.used_us, count the hit ...
//
// Format: one line per hit, "<id> <microseconds since the epoch>\n".
// append_pending_hits writes all of its lines with one write() on an
// O_APPEND descriptor, so concurrent read-only commands do not interleave,
// and drops them when the file would grow past kMaxPendingHitsBytes (a
// store only ever opened read-only keeps a bounded file);
// it does not sync: a hit lost in a crash only leaves a result's last-used
// time older (LRU pruning's input), never a wrong result. take_pending_hits
// reads at most kMaxPendingHitsBytes (a file grown larger, e.g. by a store
// never opened for writing, keeps only its first hits), skips malformed
// lines, and removes the file. Errors: kIo with the path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace kiln::store {

struct PendingHit {
  std::string id;
  std::int64_t used_us = 0;
  bool operator==(const PendingHit&) const = default;
};

inline constexpr std::size_t kMaxPendingHitsBytes = 4 << 20;

Status append_pending_hits(const std::string& path, const std::vector<PendingHit>& hits);

// The hits in `path` (none when it does not exist).
Result<std::vector<PendingHit>> read_pending_hits(const std::string& path);

// The same, then removes the file.
Result<std::vector<PendingHit>> take_pending_hits(const std::string& path);

}  // namespace kiln::store
