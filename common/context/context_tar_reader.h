// Reading a build context tar entry by entry, with every rule about what a
// context may hold checked here and nowhere else. The scheduler (the manifest
// it computes step ids from, context_tar_manifest) and the worker (what it
// unpacks, unpack_context_tar) both read through this, so a tar one accepts
// the other accepts, and both see the same tree.
//
//   KILN_ASSIGN_OR_RETURN(ContextTarReader reader, ContextTarReader::open(path));
//   for (;;) {
//     KILN_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, reader.next());
//     if (!entry) break;              // the end: the whole tar passed
//     if (entry->kind == TarEntry::Kind::kFile)
//       KILN_RETURN_IF_ERROR(reader.read_content([&](std::string_view bytes) -> Status { ... }));
//   }
//
// The rules (each refusal is kInvalidArgument, from refused_entry: it names
// the entry as stored and says why):
//   - the tar is an uncompressed tar (ustar, pax or GNU), as `kiln submit`
//     writes and the protocol documents (docs/protocol.md);
//   - a name is normalised ("./a//b/" is "a/b"); absolute names, ".." and NUL
//     bytes are refused; "." or "./" as a directory is the root and skipped,
//     anything else in place of the root is refused;
//   - directories, regular files, symlinks and hard links only: devices,
//     fifos and sockets are refused, and so are sparse files;
//   - a symlink's target is kept as stored, but an empty or absolute target
//     is refused, and so is a symlink that leads outside the context once
//     every entry is in place (links followed one by one, as the kernel
//     would; checked when next() reaches the end);
//   - a hard link must name a file (or hard link) listed before it; it is
//     that file: same content, same permission bits;
//   - each path is listed once, and never below a symlink or a file (nothing
//     is ever written through a link); directories that only deeper paths
//     imply are fine, but an entry may not then replace one with a non-directory;
//   - permission bits keep rwx only (setuid, setgid and sticky are dropped);
//     a file is executable when any of its three x bits is set. Owners,
//     times, xattrs and ACLs are ignored.
//
// Errors other than refusals: kInvalidArgument "context PATH is not a
// readable tar" (not a tar, compressed, missing), "the context tar PATH is
// damaged" (a bad header) and "cannot read NAME from the context tar" (bad data).
// Thread safety: a reader is used by one thread at a time (it switches the
// calling thread's locale to C.UTF-8 during each call, see internal/utf8_locale.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace kiln::context {

// One entry of a context tar, after the rules above.
struct TarEntry {
  enum class Kind { kDirectory, kFile, kSymlink, kHardLink };
  Kind kind = Kind::kDirectory;
  std::string name;        // as stored in the tar (what messages quote)
  std::string path;        // normalised, relative to the context root; never "" (the root is skipped)
  mode_t permissions = 0;  // rwx bits only; a hard link's are its target's
  // kSymlink: the target as stored (relative, never followed);
  // kHardLink: the normalised path of the file it links to.
  std::string target;

  bool executable() const { return (permissions & 0111) != 0; }
};

// The error of every refusal: "the build context holds NAME, which WHY; kiln
// refuses to unpack it (fix the context and resubmit)".
std::unexpected<Error> refused_entry(std::string_view name, std::string_view why);

class ContextTarReader {
 public:
  // Opens `tar_path` (kInvalidArgument "... is not a readable tar" when it is
  // missing, compressed or no tar at all).
  static Result<ContextTarReader> open(const std::string& tar_path);

  // The next entry, checked, or std::nullopt at the end once the checks on
  // the whole tar (symlinks stay inside) have passed. After an error the
  // reader is unusable.
  Result<std::optional<TarEntry>> next();

  // Streams the content of the kFile entry next() just returned, in order,
  // to `sink` (which may stop the read by failing). Call at most once per
  // entry; entries whose content is not read are skipped by next().
  Status read_content(const std::function<Status(std::string_view bytes)>& sink);

  ~ContextTarReader();
  ContextTarReader(ContextTarReader&&) noexcept;
  ContextTarReader& operator=(ContextTarReader&&) noexcept;

 private:
  struct State;
  explicit ContextTarReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace kiln::context
