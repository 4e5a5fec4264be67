// The build context `kiln submit` uploads: a directory packed as a
// deterministic tar, named by the SHA-256 of the tar's bytes, so the same
// tree always gives the same digest and the scheduler stores it once.
//
//   KILN_ASSIGN_OR_RETURN(ContextTar tar, write_context_tar("examples/context", "/tmp/ctx.tar"));
//   // tar.digest == "sha256:<64 hex>", tar.size == bytes in /tmp/ctx.tar
//
// The tar (POSIX pax, ustar headers unless a name needs an extension) lists
// every directory, regular file and symlink below `dir` (not `dir` itself),
// with paths relative to it, sorted by their bytes (so a directory precedes
// its content). Each entry keeps its permission bits (the executable bit
// matters to step ids) and a symlink its target, never followed; mtime is 0,
// owner and group 0 with no names, hard links are stored as separate files.
// Entries named `.git` or `.kiln`, at any depth, are left out with everything
// under them (version control and kiln's own state). Sockets, fifos and
// devices are skipped; `skipped` lists them so the caller can say so.
//
// Errors: kNotFound / kInvalidArgument when `dir` is missing or not a
// directory, kIo (naming the path) when a file cannot be read or the output
// written, kFailedPrecondition when a file changes size while being packed.
// A failed call removes `out_path`.
// Thread safety: no shared state; concurrent calls with distinct outputs are fine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace kiln::cli {

struct ContextTar {
  std::string digest;                // "sha256:" + lowercase hex of the tar's bytes
  std::uint64_t size = 0;            // bytes of the tar
  std::uint64_t entries = 0;         // entries written
  std::vector<std::string> skipped;  // relative paths of special files left out
};

// Writes the tar of `dir` to `out_path` (created or truncated).
Result<ContextTar> write_context_tar(const std::string& dir, const std::string& out_path);

}  // namespace kiln::cli
