#include "worker/fetcher/image_cache.h"

#include "common/fs.h"
#include "worker/fetcher/internal/blob_cache.h"

namespace kiln::fetcher {

Result<ImageCacheUsage> image_cache_usage(const std::string& dir) {
  if (!path_exists(dir)) return ImageCacheUsage{};
  KILN_ASSIGN_OR_RETURN(internal::BlobCache cache, internal::BlobCache::open(dir));
  return with_context(cache.usage(), "measuring the image cache " + dir);
}

Result<ImageCachePruneReport> prune_image_cache(const std::string& dir,
                                                const ImageCachePruneOptions& options) {
  if (!path_exists(dir)) return ImageCachePruneReport{};
  KILN_ASSIGN_OR_RETURN(internal::BlobCache cache, internal::BlobCache::open(dir));
  return with_context(cache.prune(options), "pruning the image cache " + dir);
}

}  // namespace kiln::fetcher
