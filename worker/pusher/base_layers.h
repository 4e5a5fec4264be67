// Internal to worker/pusher: the base image of a result, found again from
// its `image.json` (worker/builder/builder.cc writes it) — the base's config
// blob and its layer blobs on this machine, so that a push reuses them by
// digest instead of uploading the base's rootfs as a new layer.
//
//   KILN_ASSIGN_OR_RETURN(std::optional<BaseImage> base, find_base_layers(from_dir, cache_dir));
//
// Found for registry bases (blobs in the blob cache `cache_dir`) and oci:DIR
// layouts; nullopt, with `why` set, for other sources or when a blob is no
// longer there (the caller then flattens the base). Layer media types are
// given in their OCI spelling (docker's rootfs.diff.tar.gzip is the same
// bytes as OCI's tar+gzip). Thread safety: a function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/fetcher/internal/blob_cache.h"

namespace kiln::pusher {

struct BaseLayer {
  std::string digest;
  std::string diff_id;
  std::string media_type;
  std::uint64_t size = 0;
  std::string host_path;  // the blob on this machine
};

struct BaseImage {
  std::string config_json;  // the base's config blob, as stored
  std::vector<BaseLayer> layers;
  std::string registry;  // registry bases: where it came from (for a cross-repository mount)
  std::string repository;
  // Registry bases: the image cache's leases on the manifest, config and
  // layers, held as long as this value lives (no prune removes them mid-push).
  std::vector<fetcher::internal::BlobLease> leases;
};

struct ImageJson {
  std::string reference;  // what was fetched (aliases replaced)
  std::string manifest_digest;
  std::vector<std::string> env;  // K=V
  std::string working_dir, user;
  std::vector<std::string> entrypoint, cmd;
};

Result<ImageJson> read_image_json(const std::string& path);

Result<std::optional<BaseImage>> find_base_layers(const ImageJson& image, const std::string& cache_dir,
                                                  std::string& why);

}  // namespace kiln::pusher
