// The registry fetcher's image cache seen from outside the fetcher: how much
// disk it holds and pruning it (docs/images.md, "The cache"). The worker's
// maintenance and `kiln prune`/`kiln df` use these; pulls fill the cache.
//
//   KILN_ASSIGN_OR_RETURN(ImageCacheUsage used, image_cache_usage(home + "/image-cache"));
//   KILN_ASSIGN_OR_RETURN(ImageCachePruneReport r,
//       prune_image_cache(home + "/image-cache", {.max_bytes = 4ull << 30}));
//
// Contract: blobs are removed least recently used first (a pull that uses a
// blob, cached or downloaded, marks it used now), never one a pull or unpack
// in progress holds — in this process or another (a shared flock each pull
// keeps on the blobs it uses; prune takes an exclusive one or skips the
// blob). A cache directory that does not exist holds nothing. Errors: kIo.
// Thread safety: functions; may run while pulls run.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "common/error.h"

namespace kiln::fetcher {

struct ImageCacheUsage {
  std::uint64_t bytes = 0;  // of every complete blob (downloads in progress not counted)
  std::size_t blobs = 0;
};

struct ImageCachePruneOptions {
  // Blobs are removed while the cache holds more than this many bytes.
  std::uint64_t max_bytes = 0;
  // Only blobs last used before this (a caller keeps recent ones).
  std::chrono::system_clock::time_point used_before = std::chrono::system_clock::time_point::max();
  // Asked after each removal: true stops pruning (the disk has room again). May be empty.
  std::function<bool()> enough;
};

struct ImageCachePruneReport {
  std::size_t removed = 0;
  std::uint64_t bytes = 0;       // removed
  std::size_t kept_in_use = 0;   // blobs old enough to go that a pull holds
  std::uint64_t bytes_left = 0;  // what the cache holds afterwards
};

Result<ImageCacheUsage> image_cache_usage(const std::string& dir);
Result<ImageCachePruneReport> prune_image_cache(const std::string& dir,
                                                const ImageCachePruneOptions& options);

}  // namespace kiln::fetcher
