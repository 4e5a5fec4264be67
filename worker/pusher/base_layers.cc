#include "worker/pusher/base_layers.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/sha256.h"
#include "worker/fetcher/fetcher.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::pusher {
namespace {

std::vector<std::string> strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& item : *it)
    if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

std::string oci_layer_type(const std::string& media_type) {
  if (media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip")
    return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (media_type.empty()) return "application/vnd.oci.image.layer.v1.tar";
  return media_type;
}

Result<std::string> read_blob(const std::string& root, const std::string& digest, std::size_t max) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(root + "/blobs/sha256/" + digest.substr(7), max));
  if ("sha256:" + sha256_hex(text) != digest)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}/blobs/sha256/{} does not match its digest", root, digest.substr(7)));
  return text;
}

}  // namespace

Result<ImageJson> read_image_json(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(path, 4 << 20));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    return make_error(
        ErrorKind::kFailedPrecondition,
        fmt::format("{} is not valid JSON; delete the base image's result (kiln delete ID)", path));
  ImageJson out;
  out.reference = j.value("reference", "");
  out.manifest_digest = j.value("manifest_digest", "");
  out.env = strings(j, "env");
  out.working_dir = j.value("working_dir", "");
  out.user = j.value("user", "");
  out.entrypoint = strings(j, "entrypoint");
  out.cmd = strings(j, "cmd");
  return out;
}

Result<std::optional<BaseImage>> find_base_layers(const ImageJson& image, const std::string& cache_dir,
                                                  std::string& why) {
  auto ref = fetcher::parse_image_reference(image.reference);
  if (!ref) {
    why = ref.error().message();
    return std::nullopt;
  }
  BaseImage base;
  std::string root;
  if (ref->source == fetcher::ImageSource::kOciLayout) {
    root = ref->path;
  } else if (ref->source == fetcher::ImageSource::kRegistry && !cache_dir.empty()) {
    root = cache_dir;
    std::string_view name = image.reference;
    if (name.starts_with("docker://")) name.remove_prefix(9);
    KILN_ASSIGN_OR_RETURN(fetcher::RegistryReference registry_ref, fetcher::parse_registry_reference(name));
    base.registry = registry_ref.registry;
    base.repository = registry_ref.repository;
  } else {
    why = fmt::format("{} is not a registry image or an OCI layout", image.reference);
    return std::nullopt;
  }
  // In the image cache, every blob the push reads is leased first: a prune
  // running meanwhile leaves it alone, and one that ran just before is seen.
  std::optional<fetcher::internal::BlobCache> cache;
  if (root == cache_dir) {
    KILN_ASSIGN_OR_RETURN(cache, fetcher::internal::BlobCache::open(cache_dir));
  }
  auto hold = [&](const std::string& digest) -> Result<bool> {
    if (!cache) return true;
    KILN_ASSIGN_OR_RETURN(auto lease, cache->lease(digest));
    if (!lease) return false;
    base.leases.push_back(std::move(*lease));
    return true;
  };
  if (!image.manifest_digest.starts_with("sha256:") || !is_sha256_hex(image.manifest_digest.substr(7))) {
    why = fmt::format("its manifest digest {:?} is not sha256:HEX", image.manifest_digest);
    return std::nullopt;
  }
  KILN_ASSIGN_OR_RETURN(bool manifest_held, hold(image.manifest_digest));
  if (!manifest_held || !path_exists(root + "/blobs/sha256/" + image.manifest_digest.substr(7))) {
    why = fmt::format("its manifest {} is no longer in {}", image.manifest_digest, root);
    return std::nullopt;
  }
  KILN_ASSIGN_OR_RETURN(std::string manifest_text, read_blob(root, image.manifest_digest, 4 << 20));
  auto manifest = nlohmann::json::parse(manifest_text, nullptr, false);
  if (!manifest.is_object() || !manifest.contains("config") || !manifest["config"].is_object()) {
    why = fmt::format("its manifest {} is not an image manifest", image.manifest_digest);
    return std::nullopt;
  }
  std::string config_digest = manifest["config"].value("digest", "");
  if (!config_digest.starts_with("sha256:") || !is_sha256_hex(config_digest.substr(7))) {
    why = fmt::format("its config digest {:?} is not sha256:HEX", config_digest);
    return std::nullopt;
  }
  KILN_ASSIGN_OR_RETURN(bool config_held, hold(config_digest));
  if (!config_held || !path_exists(root + "/blobs/sha256/" + config_digest.substr(7))) {
    why = fmt::format("its config {} is no longer in {}", config_digest, root);
    return std::nullopt;
  }
  KILN_ASSIGN_OR_RETURN(base.config_json, read_blob(root, config_digest, 16 << 20));
  auto files = fetcher::internal::open_image_directory(root);
  KILN_ASSIGN_OR_RETURN(
      fetcher::internal::ImagePlan plan,
      fetcher::internal::plan_image_manifest(*files, image.manifest_digest, "", image.reference));
  for (const auto& layer : plan.layers) {
    BaseLayer out;
    out.digest = layer.digest;
    out.diff_id = layer.diff_id;
    out.media_type = oci_layer_type(layer.media_type);
    out.host_path = root + "/" + layer.path;
    bool held = false;
    if (!out.digest.empty()) {
      KILN_ASSIGN_OR_RETURN(held, hold(out.digest));
    }
    if (layer.size < 0 || !held || out.diff_id.empty() || !path_exists(out.host_path)) {
      why = fmt::format("its layer {} is no longer in {}", layer.digest, root);
      return std::nullopt;
    }
    out.size = static_cast<std::uint64_t>(layer.size);
    base.layers.push_back(std::move(out));
  }
  return base;
}

}  // namespace kiln::pusher
