// Uploaded build contexts: tars named by the SHA-256 of their bytes, stored
// once however many jobs use them, received in chunks and served in chunks.
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

class ContextStore {
 public:
  ContextStore(std::string dir, std::uint64_t max_bytes);

  Status init();
  // `digest` is "sha256:HEX".
  bool has(const std::string& digest) const;
  Result<ContextPutResult> put(const std::string& digest, std::uint64_t total_size, std::uint64_t offset,
                               std::string_view data);
  Result<ContextRead> read(const std::string& digest, std::uint64_t offset, std::size_t max_bytes) const;

  // Where a complete context is stored (HEX from hex_of).
  std::string path_of(const std::string& hex) const { return dir_ + "/" + hex + ".tar"; }

  // "sha256:<64 hex>" or kInvalidArgument.
  static Result<std::string> hex_of(const std::string& digest);

 private:
  std::string dir_;
  std::uint64_t max_bytes_;
};

}  // namespace kiln::scheduler
