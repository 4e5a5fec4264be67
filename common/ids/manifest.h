// Context manifests: what a `copy` op reads from the build context, reduced
// to the facts that decide its result, so that a step id can name it.
//
// A manifest of a source path S lists every entry at and below S (S itself
// included) as a directory, a file (content SHA-256 and executable bit) or a
// symlink (its target; symlinks are recorded, never followed), with paths
// relative to the context root, sorted by their bytes. Names listed in
// `exclude` drop matching entries below S, with everything under them.
// docs/step-ids.md gives the exact encoding.
//
// Two sources of manifests, one interface (ContextSource):
//   - DirectoryContext walks a context directory lazily, only the sources a
//     spec copies, hashing files on a few threads;
//   - ContextManifest holds every entry of a whole context (what the scheduler
//     keeps for an uploaded tar), serialises to and parses from a binary-safe
//     csexp, and selects sources from it with exactly the result (and digest)
//     a directory walk would give.
//
//   KILN_ASSIGN_OR_RETURN(DirectoryContext dir, DirectoryContext::open("/src/app"));
//   KILN_ASSIGN_OR_RETURN(Manifest m, dir.manifest("./src", {".git"}));
//   std::string digest = m.digest();   // 64 lowercase hex characters
//
//   KILN_ASSIGN_OR_RETURN(ContextManifest all, ContextManifest::from_directory("/src/app"));
//   std::string bytes = all.serialize();
//   KILN_ASSIGN_OR_RETURN(ContextManifest back, ContextManifest::parse(bytes));
//   // back.select("src", {".git"}) == dir.manifest("src", {".git"})
//
// Errors (kInvalidArgument unless the OS failed, then kIo/kNotFound) name the
// source path and say what to do: ".." in a source path, a missing source, a
// path through a symlink (saying whether it leaves the context) or through a
// file, and files that are neither regular files, directories nor symlinks.
// Thread safety: Manifest and ContextManifest are values (const use from many
// threads is fine); a DirectoryContext is used by one thread at a time and
// starts its own short-lived hashing threads.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/ids/csexp.h"
#include "common/sha256.h"

namespace kiln::ids {

// One filesystem object in a context.
struct ManifestEntry {
  enum class Type {
    kDirectory,
    kFile,
    kSymlink,
    kSpecial,  // fifo, socket or device: only in a ContextManifest; selecting it fails
  };
  Type type = Type::kDirectory;
  std::string path;         // relative to the context root, normalised; "" is the root
  Digest content{};         // kFile: SHA-256 of the content
  bool executable = false;  // kFile: any of the three x bits is set
  std::string target;       // kSymlink: the link's target, as stored

  bool operator==(const ManifestEntry&) const = default;
};

// Appends the entry's csexp: (3:dir PATH), (4:file PATH HEX x|-),
// (7:symlink PATH TARGET) or (7:special PATH).
void encode_manifest_entry(CsexpWriter& out, const ManifestEntry& entry);

// The entries a copy of one source path reads, in byte order of their paths.
struct Manifest {
  std::string source;  // the normalised source path ("" for the context root)
  std::vector<ManifestEntry> entries;

  // (16:kiln-manifest-v1 ENTRY...)
  std::string encode() const;
  // Lowercase hex SHA-256 of encode(): what a copy's step id records.
  std::string digest() const;

  bool operator==(const Manifest&) const = default;
};

// Normalises a source path as written in a spec: "./a//b/" -> "a/b"; a leading
// '/' means the context root ("/" and "." -> ""). Rejects ".." and NUL bytes.
Result<std::string> normalize_source_path(std::string_view source);

// Where copies from the build context read from. A step id computation asks
// for one manifest per copied source.
class ContextSource {
 public:
  virtual ~ContextSource() = default;
  // The manifest of `source` (as written in a spec; normalised here) with
  // entries below it whose name is in `exclude` dropped.
  virtual Result<Manifest> manifest(std::string_view source, std::span<const std::string> exclude) = 0;
};

// A context directory on this machine, walked on demand.
class DirectoryContext final : public ContextSource {
 public:
  // `hash_threads` == 0 means std::thread::hardware_concurrency(). Fails
  // unless `root` is a directory.
  static Result<DirectoryContext> open(std::string root, unsigned hash_threads = 0);

  // Files already hashed by this context are not hashed again while their
  // device, inode, size, mtime and ctime are unchanged (specs often copy a
  // file and later a directory holding it); files changed in the last two
  // seconds are always re-read, since coarse timestamps could hide a change.
  Result<Manifest> manifest(std::string_view source, std::span<const std::string> exclude) override;

  const std::string& root() const { return root_; }

  ~DirectoryContext();
  DirectoryContext(DirectoryContext&&) noexcept;
  DirectoryContext& operator=(DirectoryContext&&) noexcept;

 private:
  struct DigestCache;
  DirectoryContext(std::string root, unsigned hash_threads);
  std::string root_;
  unsigned hash_threads_;
  std::unique_ptr<DigestCache> digests_;
};

// Every entry of a whole context, sorted by path, root ("" directory) first.
class ContextManifest final : public ContextSource {
 public:
  // Walks all of `root`. Special files are recorded (not refused), so that
  // only a copy that selects one fails, as with a DirectoryContext.
  static Result<ContextManifest> from_directory(const std::string& root, unsigned hash_threads = 0);

  // Builds a manifest from entries gathered elsewhere (an uploaded tar): sorts
  // them, adds directories that are only implied by deeper paths (the root
  // included), then checks them as parse() does (normalised unique paths,
  // parents are directories).
  static Result<ContextManifest> from_entries(std::vector<ManifestEntry> entries);

  // Reads serialize()'s format back, checking every rule it promises (version
  // tag, entry shapes, normalised unique sorted paths, parents are directories).
  static Result<ContextManifest> parse(std::string_view bytes);

  // (15:kiln-context-v1 ENTRY...), entries encoded as in a Manifest.
  std::string serialize() const;

  // Same result and errors as DirectoryContext::manifest on the directory this
  // was made from.
  Result<Manifest> select(std::string_view source, std::span<const std::string> exclude) const;

  Result<Manifest> manifest(std::string_view source, std::span<const std::string> exclude) override {
    return select(source, exclude);
  }

  const std::vector<ManifestEntry>& entries() const { return entries_; }

 private:
  explicit ContextManifest(std::vector<ManifestEntry> entries) : entries_(std::move(entries)) {}
  // Sorted, unique, root first, parents are directories: or an error.
  static Result<ContextManifest> checked(std::vector<ManifestEntry> entries);
  const ManifestEntry* find(std::string_view path) const;
  std::vector<ManifestEntry> entries_;
};

}  // namespace kiln::ids
