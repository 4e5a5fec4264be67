// Internal to worker/fetcher: reads an image's metadata — an OCI layout's
// index.json, image indexes, manifests and config, or a `docker save`
// manifest.json — and produces the plan of what to unpack: the layers in
// order (where each blob is, how it is compressed, which digests it must
// have) and the image configuration.
//
//   KILN_ASSIGN_OR_RETURN(ImagePlan plan, plan_oci_layout(*files, reference));
//   for (const LayerDescriptor& layer : plan.layers) ... unpack ...
//
// Contract: every metadata blob read is checked against its digest; a digest
// that is not sha256 is kUnsupported; malformed JSON or a missing field is
// kInvalidArgument naming the file; a missing tag is kNotFound listing the
// tags there are. Thread safety: functions, safe on distinct ImageFiles.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_files.h"

namespace kiln::fetcher::internal {

enum class Compression {
  kUnknown,  // not said by a media type: sniffed from the first bytes
  kNone,
  kGzip,
  kZstd,
};

std::string_view compression_name(Compression c);

// Compression of a layer media type; kUnsupported for media types that are
// not layers kiln can unpack (encrypted layers, unknown types).
Result<Compression> compression_for_media_type(std::string_view media_type);

struct LayerDescriptor {
  std::string path;        // within the ImageFiles
  std::string media_type;  // empty when the format has none (docker-archive)
  Compression compression = Compression::kUnknown;
  std::string digest;   // "sha256:HEX" of the blob as stored, or empty if unknown
  std::string diff_id;  // "sha256:HEX" of the uncompressed tar, or empty if unknown
  std::int64_t size = -1;
};

struct ImagePlan {
  ImageConfig config;  // config.manifest_digest is set
  std::vector<LayerDescriptor> layers;
};

// Host platform used to choose from a multi-platform index ("amd64", "arm64").
std::string_view host_architecture();

// oci:DIR[:TAG] and oci-archive:FILE[:TAG]: `files` holds an OCI image layout.
Result<ImagePlan> plan_oci_layout(ImageFiles& files, const ImageReference& reference);

// docker-archive:FILE: a `docker save` tarball (manifest.json), or an OCI
// layout inside a tarball when there is no manifest.json.
Result<ImagePlan> plan_docker_archive(ImageFiles& files, const ImageReference& reference);

// The variant of this machine's architecture ("v8" on arm64, "" elsewhere).
std::string_view host_variant();

// The media types a registry is asked for, in an Accept header's syntax:
// OCI index and manifest, docker manifest list and schema 2.
std::string_view manifest_accept_header();

// Whether a manifest (by media type, else by its content) is an index /
// manifest list rather than an image manifest; "" when it is neither a
// JSON object nor of a known type.
struct ManifestKind {
  std::string media_type;  // as said, or deduced from the content
  bool is_index = false;
};
Result<ManifestKind> manifest_kind(std::string_view json, std::string_view media_type,
                                   std::string_view where);

// The entry of an image index for linux/this machine's architecture (and
// variant when both say one); kNotFound listing the platforms there are.
struct ManifestChoice {
  std::string digest;
  std::string media_type;
  std::int64_t size = -1;
  std::string platform;  // "linux/arm64/v8"
};
Result<ManifestChoice> choose_platform_manifest(std::string_view index_json, std::string_view image);

// An image manifest already in `files` (blobs/sha256/HEX, verified against
// `digest`), with its config there too: the plan. Layer blobs need not be
// present yet.
Result<ImagePlan> plan_image_manifest(ImageFiles& files, std::string_view digest, std::string_view media_type,
                                      const std::string& image);

// The fields kiln uses of an image configuration blob (OCI or docker).
Result<ImageConfig> parse_image_config(std::string_view json, std::string_view where);

}  // namespace kiln::fetcher::internal
