// Uploaded build contexts, and jobs' output tars (`kiln submit --output`):
// tars named by the SHA-256 of their bytes, stored once however many jobs
// use them, received in chunks and served in chunks. One class, two
// instances: STATE/contexts (from clients) and STATE/outputs (from workers,
// expired by age and total size with expire()).
//
//   ContextStore contexts("/var/lib/kiln-scheduler/contexts", 1ull << 30);
//   KILN_ASSIGN_OR_RETURN(auto ack, contexts.put(digest, total, offset, data));
//   if (contexts.has(digest)) ...
//   KILN_ASSIGN_OR_RETURN(auto chunk, contexts.read(digest, offset, 1 << 20));
//
// Layout: DIR/<hex>.tar complete and verified; DIR/partial/<hex> an upload
// in progress (kept across restarts: a client resumes from `received`).
// A partial upload is verified when its last byte arrives and renamed into
// place (atomic), or removed on a digest mismatch.
// Concurrent uploads of one digest (two workers producing the same output)
// share the partial file: a chunk at another offset is answered with where
// to resume, and any bytes with that digest are the same bytes.
// Thread safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln::scheduler {

struct ContextPutResult {
  std::uint64_t received = 0;
  bool complete = false;
};

struct ContextRead {
  std::uint64_t total_size = 0;
  std::string data;
};

// How the store's errors name what it holds.
struct BlobNames {
  std::string noun = "context";
  std::string limit_flag = "--max-context-bytes";
  std::string too_big_hint = "leave build outputs out of the context";
};

struct ExpireResult {
  std::size_t removed = 0;
  std::uint64_t removed_bytes = 0;
  std::uint64_t kept_bytes = 0;
};

class ContextStore {
 public:
  // `max_bytes`: the largest one tar (checked against an upload's total size).
  ContextStore(std::string dir, std::uint64_t max_bytes, BlobNames names = {});

  Status init();
  // `digest` is "sha256:HEX".
  bool has(const std::string& digest) const;
  Result<ContextPutResult> put(const std::string& digest, std::uint64_t total_size, std::uint64_t offset,
                               std::string_view data);
  Result<ContextRead> read(const std::string& digest, std::uint64_t offset, std::size_t max_bytes) const;

  // Removes complete tars and partial uploads last written before
  // `older_than_ms` (wall clock, ms since the epoch), then the oldest
  // complete tars while all of them hold more than `max_total_bytes`.
  ExpireResult expire(std::int64_t older_than_ms, std::uint64_t max_total_bytes);

  // Where a complete context is stored (HEX from hex_of).
  std::string path_of(const std::string& hex) const { return dir_ + "/" + hex + ".tar"; }

  // "sha256:<64 hex>" or kInvalidArgument.
  static Result<std::string> hex_of(const std::string& digest);

 private:
  std::string dir_;
  std::uint64_t max_bytes_;
  BlobNames names_;
};

}  // namespace kiln::scheduler
