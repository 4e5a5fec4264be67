// The registry fetcher: resolves a registry reference to an image manifest,
// downloads what the blob cache lacks, and unpacks from the cache with the
// same plan and layer code as a local OCI layout (docs/images.md,
// "Registries").
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/format.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/blob_cache.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/internal/image_unpack.h"
#include "worker/fetcher/internal/layer_unpacker.h"
#include "worker/fetcher/internal/mirrored_registry.h"
#include "worker/fetcher/internal/registry_client.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::fetcher {
namespace {

using internal::BlobCache;
using internal::MirroredRegistry;
using internal::RegistryClient;

std::string short_digest(const std::string& digest) {
  return digest.size() > 19 ? digest.substr(0, 19) + "…" : digest;
}

// Serialises progress lines from the download threads.
class SharedProgress {
 public:
  explicit SharedProgress(const Progress& progress) : progress_(progress) {}
  void operator()(ProgressKind kind, std::string_view line) {
    if (!progress_) return;
    std::lock_guard lock(mutex_);
    progress_(kind, line);
  }

 private:
  const Progress& progress_;
  std::mutex mutex_;
};

struct BlobToPull {
  std::string digest;
  std::int64_t size = -1;
  std::string label;  // "layer 2/3", "config"
};

// One fetch: the reference, the cache, and the client (made on first need,
// so that a fully cached image never touches the network).
class Pull {
 public:
  Pull(const RegistryOptions& options, const FetchOptions& fetch, RegistryReference ref, BlobCache cache,
       const Progress& progress)
      : options_(options),
        pull_(fetch.pull.value_or(options.pull)),
        resolved_before_(fetch.resolved),
        cancel_(fetch.cancel),
        ref_(std::move(ref)),
        cache_(std::move(cache)),
        progress_(progress) {
    image_ = to_string(ref_);
  }

  // The image manifest the reference names (for an index, the platform's).
  struct Chosen {
    internal::TagRecord top;
    std::string manifest_digest;
    std::string media_type;
    std::string manifest_text;
  };

  Result<ResolvedImage> identify() {
    KILN_ASSIGN_OR_RETURN(Chosen chosen, choose());
    return ResolvedImage{chosen.manifest_digest, resolved_name(chosen.top.digest)};
  }

  Result<ImageConfig> run(const std::string& rootfs) {
    KILN_ASSIGN_OR_RETURN(Chosen chosen, choose());
    const std::string& manifest_digest = chosen.manifest_digest;
    // The config first: the plan reads it.
    KILN_ASSIGN_OR_RETURN(BlobToPull config, config_descriptor(chosen.manifest_text, manifest_digest));
    KILN_RETURN_IF_ERROR(pull_blobs({config}));
    auto files = cache_.files();
    KILN_ASSIGN_OR_RETURN(internal::ImagePlan plan,
                          internal::plan_image_manifest(*files, manifest_digest, chosen.media_type, image_));
    std::vector<BlobToPull> layers;
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
      layers.push_back({plan.layers[i].digest, plan.layers[i].size,
                        fmt::format("layer {}/{}", i + 1, plan.layers.size())});
    KILN_RETURN_IF_ERROR(pull_blobs(layers));
    Progress note = [this](ProgressKind line_kind, std::string_view line) { progress_(line_kind, line); };
    KILN_ASSIGN_OR_RETURN(ImageConfig config_out,
                          internal::unpack_image(*files, plan, image_, rootfs, note, cancel_));
    config_out.resolved = resolved_name(chosen.top.digest);
    return config_out;
  }

 private:
  std::string resolved_name(const std::string& top_digest) const {
    return ref_.registry + "/" + ref_.repository + "@" + top_digest;
  }

  Result<Chosen> choose() {
    KILN_ASSIGN_OR_RETURN(internal::TagRecord top, resolve());
    KILN_ASSIGN_OR_RETURN(std::string top_text, cached_manifest(top.digest));
    KILN_ASSIGN_OR_RETURN(
        internal::ManifestKind kind,
        internal::manifest_kind(top_text, top.media_type, "image " + image_ + ": manifest " + top.digest));
    std::string manifest_digest = top.digest;
    std::string media_type = kind.media_type;
    std::string manifest_text = top_text;
    if (kind.is_index) {
      KILN_ASSIGN_OR_RETURN(internal::ManifestChoice choice,
                            internal::choose_platform_manifest(top_text, image_));
      progress_(ProgressKind::kLayer, fmt::format("{} is an index: using its {} image {}", image_,
                                                  choice.platform, short_digest(choice.digest)));
      KILN_RETURN_IF_ERROR(ensure_manifest(choice.digest));
      KILN_ASSIGN_OR_RETURN(manifest_text, cached_manifest(choice.digest));
      KILN_ASSIGN_OR_RETURN(internal::ManifestKind child,
                            internal::manifest_kind(manifest_text, choice.media_type,
                                                    "image " + image_ + ": manifest " + choice.digest));
      if (child.is_index)
        return make_error(ErrorKind::kUnsupported,
                          fmt::format("image {}: the index entry for {} is itself an index; kiln does not "
                                      "follow nested indexes from registries",
                                      image_, choice.platform));
      manifest_digest = choice.digest;
      media_type = child.media_type;
    }
    return Chosen{std::move(top), std::move(manifest_digest), std::move(media_type),
                  std::move(manifest_text)};
  }

  Result<MirroredRegistry*> client() {
    if (!client_) {
      if (pull_ == PullPolicy::kNever)
        return make_error(ErrorKind::kNotFound,
                          fmt::format("image {} is not in the image cache and --pull never forbids asking "
                                      "registry {}; pull it once with --pull missing",
                                      image_, ref_.registry));
      internal::RegistryClientOptions options;
      options.insecure_registries = options_.insecure_registries;
      options.ca_file = options_.ca_file;
      options.docker_config = options_.docker_config;
      options.cancel = cancel_;
      std::vector<RegistryMirror> mirrors;
      if (auto it = options_.mirrors.find(ref_.registry); it != options_.mirrors.end()) {
        for (const std::string& url : it->second) {
          KILN_ASSIGN_OR_RETURN(RegistryMirror mirror, parse_registry_mirror(url));
          mirrors.push_back(std::move(mirror));
        }
      }
      KILN_ASSIGN_OR_RETURN(client_,
                            MirroredRegistry::create(options, ref_, mirrors, [this](std::string_view line) {
                              progress_(ProgressKind::kLayer, line);
                            }));
    }
    return client_.get();
  }

  // The tag's (or digest's) manifest: its digest, in the cache afterwards.
  Result<internal::TagRecord> resolve() {
    if (!ref_.digest.empty()) {
      KILN_RETURN_IF_ERROR(ensure_manifest(ref_.digest));
      return internal::TagRecord{ref_.digest, ""};
    }
    std::string tag_key = ref_.registry + "/" + ref_.repository + ":" + ref_.tag;
    KILN_ASSIGN_OR_RETURN(auto record, cache_.read_tag(tag_key));
    bool cached = false;
    if (record && !resolved_before_.empty() && resolved_name(record->digest) == resolved_before_) {
      // resolve() asked the registry for this step a moment ago.
      KILN_ASSIGN_OR_RETURN(cached, hold(record->digest));
      if (cached) {
        progress_(ProgressKind::kLayer,
                  fmt::format("{} is {} (resolved just before)", image_, record->digest));
        return *record;
      }
    }
    if (pull_ != PullPolicy::kAlways && record) {
      KILN_ASSIGN_OR_RETURN(cached, hold(record->digest));
    }
    if (cached) {
      progress_(ProgressKind::kLayer,
                fmt::format("{} resolved earlier to {} (--pull always asks the registry again)", image_,
                            record->digest));
      return *record;
    }
    if (pull_ == PullPolicy::kNever)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("image {}: the tag was never resolved on this machine and --pull never "
                                    "forbids asking registry {}; pull it once with --pull missing",
                                    image_, ref_.registry));
    KILN_ASSIGN_OR_RETURN(MirroredRegistry * registry, client());
    progress_(ProgressKind::kLayer, fmt::format("resolving {} at {}", image_, registry->describe()));
    KILN_ASSIGN_OR_RETURN(RegistryClient::Manifest manifest,
                          registry->get_manifest(ref_.repository, ref_.tag));
    KILN_ASSIGN_OR_RETURN(bool have, hold(manifest.digest));
    if (!have) KILN_RETURN_IF_ERROR(put(manifest.digest, manifest.content));
    internal::TagRecord resolved{manifest.digest, manifest.media_type};
    KILN_RETURN_IF_ERROR(cache_.write_tag(tag_key, resolved));
    progress_(ProgressKind::kLayer, fmt::format("{} is {}", image_, manifest.digest));
    return resolved;
  }

  Status ensure_manifest(const std::string& digest) {
    KILN_ASSIGN_OR_RETURN(bool have, hold(digest));
    if (have) return {};
    KILN_ASSIGN_OR_RETURN(MirroredRegistry * registry, client());
    KILN_ASSIGN_OR_RETURN(RegistryClient::Manifest manifest, registry->get_manifest(ref_.repository, digest));
    return put(digest, manifest.content);
  }

  // Leases `digest` for the rest of the pull when the cache has it, so that
  // no prune removes it before it is unpacked; false when it is not cached.
  Result<bool> hold(const std::string& digest) {
    KILN_ASSIGN_OR_RETURN(auto lease, cache_.lease(digest));
    if (!lease) return false;
    keep(std::move(*lease));
    return true;
  }
  void keep(internal::BlobLease lease) {
    std::lock_guard lock(leases_mutex_);
    leases_.push_back(std::move(lease));
  }
  Status put(const std::string& digest, const std::string& content) {
    KILN_ASSIGN_OR_RETURN(internal::BlobLease lease,
                          cache_.put(digest, content, "registry " + ref_.registry));
    keep(std::move(lease));
    return {};
  }

  // A cached manifest, its digest checked again (the cache is a directory anyone root can edit).
  Result<std::string> cached_manifest(const std::string& digest) {
    KILN_ASSIGN_OR_RETURN(std::string text, read_file(cache_.path_of(digest), 4 << 20));
    if ("sha256:" + sha256_hex(text) != digest)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("image cache: {} does not match its digest; delete it and pull again",
                                    cache_.path_of(digest)));
    return text;
  }

  Result<BlobToPull> config_descriptor(const std::string& manifest_text, const std::string& digest) {
    auto json = nlohmann::json::parse(manifest_text, nullptr, false);
    std::string where = fmt::format("image {}: manifest {}", image_, digest);
    if (!json.is_object() || !json.contains("config") || !json["config"].is_object())
      return make_error(ErrorKind::kInvalidArgument, where + " has no \"config\"");
    const auto& config = json["config"];
    BlobToPull out;
    out.label = "config";
    if (config.contains("digest") && config["digest"].is_string())
      out.digest = config["digest"].get<std::string>();
    if (config.contains("size") && config["size"].is_number_integer())
      out.size = config["size"].get<std::int64_t>();
    if (!out.digest.starts_with("sha256:") || !is_sha256_hex(out.digest.substr(7)))
      return make_error(ErrorKind::kUnsupported,
                        fmt::format("{}: config digest {:?} is not sha256:HEX", where, out.digest));
    return out;
  }

  // Downloads the blobs the cache lacks, several at once.
  Status pull_blobs(const std::vector<BlobToPull>& blobs) {
    std::vector<const BlobToPull*> missing;
    std::set<std::string> seen;
    for (const auto& blob : blobs) {
      if (!seen.insert(blob.digest).second) continue;
      KILN_ASSIGN_OR_RETURN(bool cached, hold(blob.digest));
      if (cached) {
        if (blob.label != "config")
          progress_(ProgressKind::kLayer,
                    fmt::format("{} {} is cached", blob.label, short_digest(blob.digest)));
        continue;
      }
      missing.push_back(&blob);
    }
    if (missing.empty()) return {};
    KILN_ASSIGN_OR_RETURN(MirroredRegistry * registry, client());
    std::atomic<std::size_t> next{0};
    std::mutex error_mutex;
    std::optional<Error> first_error;
    auto work = [&] {
      while (true) {
        {
          std::lock_guard lock(error_mutex);
          if (first_error) return;
        }
        std::size_t i = next.fetch_add(1);
        if (i >= missing.size()) return;
        if (cancelled()) {
          std::lock_guard lock(error_mutex);
          if (!first_error)
            first_error = Error(ErrorKind::kCancelled, "image " + image_ + ": pull cancelled");
          return;
        }
        if (auto s = pull_blob(*registry, *missing[i]); !s) {
          std::lock_guard lock(error_mutex);
          if (!first_error) first_error = std::move(s).error();
        }
      }
    };
    std::size_t threads = std::min<std::size_t>(missing.size(), std::max(1, options_.parallel_downloads));
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& thread : pool) thread.join();
    if (first_error) return std::unexpected(std::move(*first_error));
    return {};
  }

  Status pull_blob(MirroredRegistry& registry, const BlobToPull& blob) {
    std::string size_text = blob.size >= 0 ? human_bytes(static_cast<std::uint64_t>(blob.size)) : "?";
    progress_(ProgressKind::kBytesRead,
              fmt::format("pulling {} {} {}", blob.label, short_digest(blob.digest), size_text));
    auto start = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(auto writer, cache_.begin(blob.digest, blob.size));
    std::uint64_t next_note = internal::kProgressEveryBytes;
    std::function<void(std::uint64_t)> on_bytes = [&](std::uint64_t bytes) {
      if (bytes < next_note) return;
      while (next_note <= bytes) next_note += internal::kProgressEveryBytes;
      progress_(ProgressKind::kBytesRead,
                fmt::format("  {}: {} of {}", blob.label, human_bytes(bytes), size_text));
    };
    KILN_RETURN_IF_ERROR(with_context(registry.get_blob(ref_.repository, blob.digest, *writer, on_bytes),
                                      fmt::format("image {}: pulling {}", image_, blob.label)));
    KILN_RETURN_IF_ERROR(with_context(writer->commit("registry " + ref_.registry),
                                      fmt::format("image {}: pulling {}", image_, blob.label)));
    keep(writer->lease());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double rate = seconds > 0 ? static_cast<double>(writer->written()) / seconds : 0;
    progress_(ProgressKind::kLayer, fmt::format("pulled {} {} {} in {:.1f} s ({}/s)", blob.label,
                                                short_digest(blob.digest), human_bytes(writer->written()),
                                                seconds, human_bytes(static_cast<std::uint64_t>(rate))));
    return {};
  }

  bool cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  const RegistryOptions& options_;
  PullPolicy pull_;
  std::string resolved_before_;  // FetchOptions::resolved
  const CancelToken* cancel_;    // may be null
  RegistryReference ref_;
  BlobCache cache_;
  SharedProgress progress_;
  std::string image_;
  std::unique_ptr<MirroredRegistry> client_;
  std::mutex leases_mutex_;
  std::vector<internal::BlobLease> leases_;  // every blob this pull uses, until it ends
};

class RegistryFetcher : public Fetcher {
 public:
  explicit RegistryFetcher(RegistryOptions options) : options_(std::move(options)) {}

  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs, std::string_view image,
                            const FetchOptions& fetch_options) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    if (reference.source != ImageSource::kRegistry)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("image {}: this fetcher reads registry references only", image));
    if (options_.cache_dir.empty())
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("image {}: this builder has no image cache, so it cannot pull from "
                                    "registries",
                                    image));
    std::string_view name = image.starts_with("docker://") ? image.substr(9) : image;
    KILN_ASSIGN_OR_RETURN(RegistryReference ref, parse_registry_reference(name));
    KILN_ASSIGN_OR_RETURN(BlobCache cache, BlobCache::open(options_.cache_dir));
    std::string canonical = to_string(ref);
    Pull pull(options_, fetch_options, std::move(ref), std::move(cache), progress);
    return with_context(pull.run(rootfs), "pulling " + canonical);
  }

  Result<std::optional<ResolvedImage>> resolve(const Progress& progress, std::string_view image,
                                               const FetchOptions& fetch_options) override {
    if (options_.cache_dir.empty()) return std::optional<ResolvedImage>();
    std::string_view name = image.starts_with("docker://") ? image.substr(9) : image;
    KILN_ASSIGN_OR_RETURN(RegistryReference ref, parse_registry_reference(name));
    KILN_ASSIGN_OR_RETURN(BlobCache cache, BlobCache::open(options_.cache_dir));
    std::string canonical = to_string(ref);
    Pull pull(options_, fetch_options, std::move(ref), std::move(cache), progress);
    KILN_ASSIGN_OR_RETURN(ResolvedImage resolved, with_context(pull.identify(), "pulling " + canonical));
    return std::optional<ResolvedImage>(std::move(resolved));
  }

 private:
  RegistryOptions options_;
};

}  // namespace

std::unique_ptr<Fetcher> make_registry_fetcher(RegistryOptions options) {
  return std::make_unique<RegistryFetcher>(std::move(options));
}

}  // namespace kiln::fetcher
