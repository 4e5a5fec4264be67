// Internal to worker/fetcher: the registry fetcher's content-addressed blob
// cache, one per worker (HOME/image-cache), shared by every build and image:
// a layer two images share is downloaded once. Its blobs sit where an OCI
// image layout keeps them (DIR/blobs/sha256/HEX), so files() reads them with
// the same manifest and layer code as a local layout; DIR/tags records what
// each tag resolved to; DIR/tmp holds downloads in progress.
//
//   KILN_ASSIGN_OR_RETURN(BlobCache cache, BlobCache::open("/var/lib/kiln/image-cache"));
//   if (!cache.contains(digest)) {
//     KILN_ASSIGN_OR_RETURN(auto writer, cache.begin(digest, size));
//     ... writer->write(chunk) ...
//     KILN_RETURN_IF_ERROR(writer->commit());  // verified, fsynced, renamed into place
//   }
//
// Contract: a blob is visible under its digest only once all of it has been
// written, its size and sha256 checked, and fsynced: a download cut short or
// corrupt never is. Writers use unique temporary names, so several threads or
// processes may download the same blob at once (the last rename wins; the
// content is the same). A pull holds a BlobLease on every blob it uses, from
// finding or downloading it until its unpack ends: prune() never removes a
// leased blob (a shared flock on the blob's inode; prune needs an exclusive
// one) and removes the others least recently leased first (leasing sets the
// blob's mtime to now).
// Thread safety: a BlobCache is immutable after open() and may be shared; a
// Writer belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "worker/fetcher/image_cache.h"
#include "worker/fetcher/internal/image_files.h"

namespace kiln::fetcher::internal {

// What a tag resolved to when last asked.
struct TagRecord {
  std::string digest;      // of the manifest or index the tag named
  std::string media_type;  // as the registry said
};

// A blob in use: prune() leaves it while this lives. Move-only.
class BlobLease {
 public:
  explicit BlobLease(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // holds LOCK_SH on the blob's inode
};

class BlobWriter {
 public:
  BlobWriter(std::string temp_path, std::string final_path, std::string digest, std::int64_t expected_size,
             UniqueFd fd);
  ~BlobWriter();  // removes the temporary file unless committed
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Appends bytes; kInvalidArgument once more than the expected size arrived.
  Status write(std::string_view data);
  // Starts over (a retried download): empties the file and the hash.
  Status reset();
  // Checks size and digest, fsyncs, renames into place. On a mismatch the
  // temporary file is removed and the error (kInvalidArgument) names both
  // digests and `source`. The blob is leased from begin() on: lease() hands
  // that lease over (once, after commit).
  Status commit(std::string_view source);
  BlobLease lease();
  // The checks of commit() alone: whether what was written so far is the
  // blob (a mirror's answer is checked before the registry is left out).
  Status verify(std::string_view source);
  std::uint64_t written() const { return written_; }

 private:
  std::string temp_path_;
  std::string final_path_;
  std::string digest_;
  std::int64_t expected_size_;
  UniqueFd fd_;
  Sha256 hash_;
  std::optional<std::string> actual_;  // "sha256:HEX" once the hash is finished
  std::uint64_t written_ = 0;
  bool committed_ = false;
};

class BlobCache {
 public:
  // Opens (creating) the cache at `dir`, and removes temporary files left by
  // downloads older than an hour (a crashed process's).
  static Result<BlobCache> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool contains(std::string_view digest) const;
  // DIR/blobs/sha256/HEX (digest must be sha256:HEX, checked by callers).
  std::string path_of(std::string_view digest) const;
  // A writer for the blob `digest` (sha256:HEX) of `expected_size` bytes (-1: unknown).
  Result<std::unique_ptr<BlobWriter>> begin(std::string_view digest, std::int64_t expected_size) const;
  // Stores a small blob held in memory (a manifest), verified like a download;
  // returns its lease.
  Result<BlobLease> put(std::string_view digest, std::string_view content, std::string_view source) const;
  // Leases the blob `digest` when the cache holds it (nullopt otherwise, also
  // when a prune removed it just now) and marks it used now.
  Result<std::optional<BlobLease>> lease(std::string_view digest) const;

  // The complete blobs' bytes and count.
  Result<ImageCacheUsage> usage() const;
  // Removes unleased blobs, least recently used first (image_cache.h).
  Result<ImageCachePruneReport> prune(const ImageCachePruneOptions& options) const;

  // The tag's last resolution (`reference` is canonical REGISTRY/REPO:TAG).
  Result<std::optional<TagRecord>> read_tag(const std::string& reference) const;
  Status write_tag(const std::string& reference, const TagRecord& record) const;

  // The cache read as an OCI layout's blobs (for plan_image_manifest and unpacking).
  std::unique_ptr<ImageFiles> files() const;

 private:
  explicit BlobCache(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace kiln::fetcher::internal
