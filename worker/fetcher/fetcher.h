// Image fetchers: turn a base image reference (`(from "oci:/images/busybox:latest")`)
// into a root filesystem for the first build step (OBuilder's FETCHER
// signature; DESIGN.md, "The local builder"; docs/images.md).
//
//   auto fetcher = kiln::fetcher::make_fetcher();
//   auto config = fetcher->fetch([](ProgressKind, std::string_view line) { log.note(line); },
//                                tmp_dir + "/rootfs", "oci:/var/lib/kiln/base:latest",
//                                {.cancel = &cancel});
//   if (!config) return std::unexpected(config.error());
//   for (auto& [key, value] : config->env) ...
//
// A reference names where the image comes from by its scheme:
//   oci:DIR[:TAG]            an OCI image layout directory (absolute DIR; TAG
//                            defaults to `latest`, matched against the
//                            org.opencontainers.image.ref.name annotation)
//   docker-archive:FILE      a `docker save` tarball (or an OCI layout in a tar)
//   oci-archive:FILE[:TAG]   an OCI image layout packed in a tarball
//   anything else            a registry reference in Docker's conventions
//                            (`alpine:3.19`, `HOST:PORT/team/base@sha256:…`,
//                            registry_reference.h), pulled over the OCI
//                            distribution API into a blob cache (FetcherOptions)
// The docker engine is a later source: one more ImageSource value and one more
// Fetcher implementation, chosen by make_fetcher() from the scheme. Other
// transports (`docker-daemon:`, `containers-storage:`, `dir:`) are kUnsupported.
//
// Contract: `rootfs` must be an existing, empty directory; on success it holds
// the image's filesystem (owners, modes, times, xattrs kept where the
// filesystem allows). On failure its content is unspecified and the caller
// discards it (the store's build() does). Every blob is checked against its
// sha256 digest while it is read. Layer entries that would land outside
// `rootfs` are refused. Fetchers hold no state: one object may fetch into
// different directories from several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/store/workspace.h"

namespace kiln::fetcher {

// Where an image comes from.
enum class ImageSource {
  kOciLayout,      // oci:DIR[:TAG]
  kDockerArchive,  // docker-archive:FILE
  kOciArchive,     // oci-archive:FILE[:TAG]
  kRegistry,       // [HOST[:PORT]/]PATH[:TAG][@DIGEST] (registry_reference.h)
};

struct ImageReference {
  ImageSource source = ImageSource::kOciLayout;
  std::string path;        // absolute, normalised DIR or FILE; REGISTRY/REPOSITORY for kRegistry
  std::string tag;         // "latest" when not given; empty for docker-archive
  std::string digest;      // kRegistry: "sha256:HEX" when written
  bool tag_given = false;  // whether the reference spelled a tag out
  std::string text;        // the reference as written, for messages
};

// Parses a reference. Errors: kUnsupported for transports kiln cannot fetch
// (docker-daemon:, containers-storage:, dir:), naming what is supported;
// kInvalidArgument for a malformed reference (relative path, "..", bad tag,
// uppercase repository).
Result<ImageReference> parse_image_reference(std::string_view text);

// The reference in canonical form ("oci:/images/base:latest").
std::string to_string(const ImageReference& ref);

// What the builder needs from the image's configuration. Fields the image
// does not set are empty.
struct ImageConfig {
  std::vector<std::pair<std::string, std::string>> env;  // "K=V" split at the first '=', in order
  std::string working_dir;
  std::string user;  // as written in the image ("1000:1000", "nobody", ...)
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string manifest_digest;  // "sha256:..." of the image manifest (or docker config) used
  // Registry images: REGISTRY/REPOSITORY@sha256:… of what the tag resolved to
  // (an index for multi-platform images); empty for local sources.
  std::string resolved;
};

// What a progress line reports. kLayer: a layer about to be unpacked, one line
// per layer ("unpacking layer 2/3 sha256:abcd… 11.7 MiB"), which says what the
// image is made of. kBytesRead: how far the fetch is within a layer, every
// 16 MiB ("  layer 2/3: 16.0 MiB of 114.7 MiB"), of interest only while it
// happens (the builder shows it live and does not save it with the step's log).
enum class ProgressKind { kLayer, kBytesRead };

// Receives one human-readable line at a time, without a newline. Called from
// the fetching thread (registry pulls: also from their download threads, one
// call at a time). May be empty (no notes).
using Progress = std::function<void(ProgressKind kind, std::string_view line)>;

// When the registry is asked which manifest a tag names (docs/images.md,
// "Tags"). A reference by digest never needs asking once its blobs are cached.
enum class PullPolicy {
  kMissing,  // use the tag's last resolution in the cache; ask only when there is none
  kAlways,   // ask the registry every time an image is fetched
  kNever,    // never contact a registry: everything must be in the cache
};

// Parses "always", "missing" or "never" (kInvalidArgument naming --pull otherwise).
Result<PullPolicy> parse_pull_policy(std::string_view text);

// How registry references are pulled.
struct RegistryOptions {
  // The blob cache: CACHE/blobs/sha256/HEX plus the tags' resolutions. Empty:
  // registry references are refused (kFailedPrecondition).
  std::string cache_dir;
  std::vector<std::string> insecure_registries;  // HOST:PORT spoken to over plain HTTP
  std::string ca_file;                           // PEM CAs trusted besides the system's
  PullPolicy pull = PullPolicy::kMissing;
  // The docker config with credentials (`auths`); empty: $DOCKER_CONFIG/config.json,
  // else $HOME/.docker/config.json.
  std::string docker_config;
  int parallel_downloads = 3;
  // Mirrors asked before a registry, in order: registry ("docker.io") ->
  // mirror URLs (https://HOST[:PORT] or http://HOST[:PORT];
  // registry_reference.h). `--registry-mirror URL` fills docker.io's.
  std::map<std::string, std::vector<std::string>> mirrors;
};

// What one fetch asks beyond the reference (a build's).
struct FetchOptions {
  // Fired: the fetch stops between blob downloads and layers and within a
  // download, with kCancelled; no partial blob is ever cached as complete.
  // May be null.
  CancelToken* cancel = nullptr;
  // Overrides RegistryOptions::pull for this fetch (`kiln submit --pull`).
  std::optional<PullPolicy> pull;
  // What resolve() of the same reference returned moments ago for this
  // step (ResolvedImage::resolved): a registry fetch then takes the tag as
  // that resolve() recorded it in the image cache instead of asking the
  // registry a second time, whatever the pull policy. Ignored when empty or
  // when the cache's record of the tag says otherwise.
  std::string resolved;
};

// What a reference names now (Fetcher::resolve).
struct ResolvedImage {
  std::string manifest_digest;  // the image manifest fetch() would unpack (ImageConfig::manifest_digest)
  std::string resolved;         // as ImageConfig::resolved
};

class Fetcher {
 public:
  virtual ~Fetcher() = default;

  // Which image `image` names now, as fetch() would find it (a tag asked for
  // or not as the pull policy says, the platform chosen from an index),
  // without downloading layers or unpacking anything; so that a builder that
  // unpacked that manifest before can reuse it. nullopt: this fetcher cannot
  // tell without fetching (local sources). Errors as fetch()'s.
  virtual Result<std::optional<ResolvedImage>> resolve(const Progress& progress, std::string_view image,
                                                       const FetchOptions& options) {
    (void)progress;
    (void)image;
    (void)options;
    return std::optional<ResolvedImage>();
  }

  // Initialises the empty directory `rootfs` with the filesystem of `image`
  // and returns the image's configuration. See the file comment for the
  // contract. Errors name the image, the blob or layer entry, and what to do.
  virtual Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs,
                                    std::string_view image, const FetchOptions& options) = 0;
  // Fetches into a store's workspace (worker/store/workspace.h): what the
  // builder calls. The default fills `ws.rootfs` (an existing empty
  // directory, as for fetch()); the docker fetcher leaves a container of the
  // image named `ws.container` for the store to commit.
  virtual Result<ImageConfig> fetch_into(const Progress& progress, const store::Workspace& ws,
                                         std::string_view image, const FetchOptions& options) {
    return fetch(progress, ws.rootfs, image, options);
  }
};

// Fetches oci:DIR[:TAG] only.
std::unique_ptr<Fetcher> make_oci_layout_fetcher();
// Fetches docker-archive:FILE and oci-archive:FILE[:TAG] only.
std::unique_ptr<Fetcher> make_image_archive_fetcher();
// Fetches registry references only (registry_fetcher.cc).
std::unique_ptr<Fetcher> make_registry_fetcher(RegistryOptions options);

// The fetcher the builder uses: parses the reference and hands it to the
// fetcher for its scheme. Without options, registry references are refused.
std::unique_ptr<Fetcher> make_fetcher(RegistryOptions registry = {});

}  // namespace kiln::fetcher
