#include "worker/fetcher/internal/image_manifest.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "common/path.h"
#include "common/sha256.h"

namespace kiln::fetcher::internal {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxMetadataBytes = 16 << 20;
constexpr int kMaxIndexDepth = 4;
constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

// Media types of manifests and indexes (OCI and the docker equivalents).
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

struct Descriptor {
  std::string media_type;
  std::string digest;
  std::int64_t size = -1;
  std::string ref_name;
  std::string os;
  std::string architecture;
  std::string variant;
};

std::string string_field(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

Result<json> parse_json(std::string_view text, const std::string& where) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    return make_error(ErrorKind::kInvalidArgument, where + " is not valid JSON; the image is damaged");
  return parsed;
}

// "sha256:HEX" -> "blobs/sha256/HEX", refusing other algorithms and bad hex.
Result<std::string> blob_path(const std::string& digest, const std::string& where) {
  auto colon = digest.find(':');
  if (colon == std::string::npos)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: \"{}\" is not a digest (ALGORITHM:HEX)", where, digest));
  std::string algorithm = digest.substr(0, colon);
  std::string hex = digest.substr(colon + 1);
  if (algorithm != "sha256")
    return make_error(
        ErrorKind::kUnsupported,
        fmt::format("{}: digest {} uses {}; kiln verifies sha256 digests only", where, digest, algorithm));
  if (!is_sha256_hex(hex))
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{}: \"{}\" is not a sha256 digest (64 lowercase hex digits)", where, digest));
  return "blobs/sha256/" + hex;
}

Result<Descriptor> parse_descriptor(const json& object, const std::string& where) {
  if (!object.is_object())
    return make_error(ErrorKind::kInvalidArgument, where + ": a descriptor is not a JSON object");
  Descriptor d;
  d.media_type = string_field(object, "mediaType");
  d.digest = string_field(object, "digest");
  if (d.digest.empty())
    return make_error(ErrorKind::kInvalidArgument, where + ": a descriptor has no \"digest\"");
  if (auto it = object.find("size"); it != object.end() && it->is_number_integer())
    d.size = it->get<std::int64_t>();
  if (auto it = object.find("annotations"); it != object.end())
    d.ref_name = string_field(*it, std::string(kRefNameAnnotation).c_str());
  if (auto it = object.find("platform"); it != object.end()) {
    d.os = string_field(*it, "os");
    d.architecture = string_field(*it, "architecture");
    d.variant = string_field(*it, "variant");
  }
  return d;
}

Status check_digest(std::string_view content, const std::string& digest, const std::string& where) {
  std::string actual = "sha256:" + sha256_hex(content);
  if (actual != digest)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{} has digest {} but {} was expected; the image is damaged or was changed "
                                  "while being read (rebuild or re-copy it)",
                                  where, actual, digest));
  return {};
}

// Reads a small blob named by a descriptor and checks its digest.
Result<std::string> read_verified_blob(ImageFiles& files, const Descriptor& d, const std::string& where) {
  KILN_ASSIGN_OR_RETURN(std::string path, blob_path(d.digest, where));
  auto content = files.read_file(path, kMaxMetadataBytes);
  if (!content) {
    if (content.error().kind() == ErrorKind::kNotFound)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("{}: blob {} is missing ({}); the image is incomplete", where, d.digest,
                                    files.describe(path)));
    return std::unexpected(std::move(content).error());
  }
  KILN_RETURN_IF_ERROR(check_digest(*content, d.digest, files.describe(path)));
  return std::move(*content);
}

Result<json> read_json_file(ImageFiles& files, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, files.read_file(path, kMaxMetadataBytes));
  return parse_json(text, files.describe(path));
}

std::string describe_platforms(const std::vector<Descriptor>& entries) {
  std::string out;
  for (const auto& e : entries) {
    if (!out.empty()) out += ", ";
    out += e.os.empty() && e.architecture.empty()
               ? "unspecified"
               : e.os + "/" + e.architecture + (e.variant.empty() ? "" : "/" + e.variant);
  }
  return out;
}

Result<std::vector<Descriptor>> parse_manifest_list(const json& index, const std::string& where) {
  auto it = index.find("manifests");
  if (!index.is_object() || it == index.end() || !it->is_array())
    return make_error(ErrorKind::kInvalidArgument, where + " has no \"manifests\" list");
  std::vector<Descriptor> out;
  for (const auto& entry : *it) {
    KILN_ASSIGN_OR_RETURN(Descriptor d, parse_descriptor(entry, where));
    out.push_back(std::move(d));
  }
  return out;
}

Result<ImagePlan> plan_from_manifest(ImageFiles& files, const Descriptor& descriptor,
                                     const std::string& image, int depth);

// The config's rootfs.diff_ids (empty when absent). Each must be a sha256
// digest: a malformed one must not quietly turn a layer's check off.
Result<std::vector<std::string>> parse_diff_ids(const json& config, const std::string& where) {
  std::vector<std::string> out;
  if (!config.is_object()) return out;
  auto rootfs = config.find("rootfs");
  if (rootfs == config.end() || !rootfs->is_object()) return out;
  auto ids = rootfs->find("diff_ids");
  if (ids == rootfs->end() || ids->is_null()) return out;
  if (!ids->is_array())
    return make_error(ErrorKind::kInvalidArgument, where + ": rootfs.diff_ids is not a list");
  for (const auto& id : *ids) {
    std::string digest = id.is_string() ? id.get<std::string>() : id.dump();
    KILN_RETURN_IF_ERROR(blob_path(digest, where + ": rootfs.diff_ids"));
    out.push_back(std::move(digest));
  }
  return out;
}

// An image index inside the layout: choose the entry for this machine.
Result<ImagePlan> plan_from_index(ImageFiles& files, const json& index, const std::string& image,
                                  const std::string& where, int depth) {
  KILN_ASSIGN_OR_RETURN(auto entries, parse_manifest_list(index, where));
  const Descriptor* chosen = nullptr;
  for (const auto& e : entries)
    if (e.os == "linux" && e.architecture == host_architecture()) {
      chosen = &e;
      break;
    }
  if (chosen == nullptr && entries.size() == 1) chosen = &entries.front();
  if (chosen == nullptr)
    return make_error(ErrorKind::kNotFound,
                      fmt::format("image {} has no linux/{} variant (it has: {}); use an image built for "
                                  "this machine",
                                  image, host_architecture(), describe_platforms(entries)));
  return plan_from_manifest(files, *chosen, image, depth + 1);
}

Result<ImagePlan> plan_from_manifest(ImageFiles& files, const Descriptor& descriptor,
                                     const std::string& image, int depth) {
  if (depth > kMaxIndexDepth)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("image {}: image indexes nest more than {} deep", image, kMaxIndexDepth));
  std::string where = fmt::format("image {}: manifest {}", image, descriptor.digest);
  KILN_ASSIGN_OR_RETURN(std::string text, read_verified_blob(files, descriptor, where));
  KILN_ASSIGN_OR_RETURN(json manifest, parse_json(text, where));
  std::string media_type = descriptor.media_type;
  if (media_type.empty()) media_type = string_field(manifest, "mediaType");
  if (media_type.empty()) media_type = manifest.contains("manifests") ? kOciIndex : kOciManifest;
  if (media_type == kOciIndex || media_type == kDockerManifestList)
    return plan_from_index(files, manifest, image, where, depth);
  if (media_type != kOciManifest && media_type != kDockerManifest)
    return make_error(
        ErrorKind::kUnsupported,
        fmt::format("{} has media type {}; kiln reads OCI and docker v2 image manifests", where, media_type));

  ImagePlan plan;
  auto config_it = manifest.find("config");
  if (!manifest.is_object() || config_it == manifest.end())
    return make_error(ErrorKind::kInvalidArgument, where + " has no \"config\"");
  KILN_ASSIGN_OR_RETURN(Descriptor config_descriptor, parse_descriptor(*config_it, where));
  std::string config_where = fmt::format("image {}: config {}", image, config_descriptor.digest);
  KILN_ASSIGN_OR_RETURN(std::string config_text, read_verified_blob(files, config_descriptor, config_where));
  KILN_ASSIGN_OR_RETURN(plan.config, parse_image_config(config_text, config_where));
  plan.config.manifest_digest = descriptor.digest;
  KILN_ASSIGN_OR_RETURN(json config, parse_json(config_text, config_where));

  auto layers_it = manifest.find("layers");
  if (layers_it == manifest.end() || !layers_it->is_array())
    return make_error(ErrorKind::kInvalidArgument, where + " has no \"layers\" list");
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, parse_diff_ids(config, config_where));
  if (!diff_ids.empty() && diff_ids.size() != layers_it->size())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("image {}: the manifest lists {} layers but the config {} diff_ids; the "
                                  "image is damaged",
                                  image, layers_it->size(), diff_ids.size()));
  std::size_t i = 0;
  for (const auto& layer_json : *layers_it) {
    KILN_ASSIGN_OR_RETURN(Descriptor d, parse_descriptor(layer_json, where));
    LayerDescriptor layer;
    std::string layer_where = fmt::format("image {}: layer {}", image, d.digest);
    KILN_ASSIGN_OR_RETURN(layer.path, blob_path(d.digest, layer_where));
    layer.media_type = d.media_type;
    KILN_ASSIGN_OR_RETURN(layer.compression,
                          with_context(compression_for_media_type(d.media_type), layer_where));
    layer.digest = d.digest;
    layer.size = d.size;
    if (!diff_ids.empty()) layer.diff_id = diff_ids[i];
    plan.layers.push_back(std::move(layer));
    ++i;
  }
  return plan;
}

// Applies the tag rule: the entry whose ref.name is the tag; with no tag
// written and a single entry, that entry.
Result<Descriptor> choose_tagged_entry(const std::vector<Descriptor>& entries,
                                       const ImageReference& reference, const std::string& image) {
  for (const auto& e : entries)
    if (e.ref_name == reference.tag) return e;
  if (!reference.tag_given && entries.size() == 1) return entries.front();
  std::string tags;
  for (const auto& e : entries)
    if (!e.ref_name.empty()) tags += (tags.empty() ? "" : ", ") + e.ref_name;
  return make_error(
      ErrorKind::kNotFound,
      fmt::format("image {} has no tag \"{}\" ({}); name one of its tags after the last ':'", image,
                  reference.tag, tags.empty() ? "it has no tagged images" : "its tags are: " + tags));
}

// Docker writes "<hex>.json" (older) or "blobs/sha256/<hex>" (25+) for configs
// and layers: in both cases the name is the content's digest.
std::string digest_from_docker_path(const std::string& path) {
  auto parts = path::components(path);
  if (parts.size() == 3 && parts[0] == "blobs" && parts[1] == "sha256" && is_sha256_hex(parts[2]))
    return "sha256:" + std::string(parts[2]);
  if (parts.size() == 1 && parts[0].size() == 64 + 5 && parts[0].ends_with(".json") &&
      is_sha256_hex(parts[0].substr(0, 64)))
    return "sha256:" + std::string(parts[0].substr(0, 64));
  return "";
}

Result<ImagePlan> plan_docker_manifest(ImageFiles& files, const json& manifest, const std::string& image) {
  std::string where = files.describe("manifest.json");
  if (!manifest.is_array() || manifest.empty())
    return make_error(ErrorKind::kInvalidArgument, where + " lists no images");
  if (manifest.size() > 1) {
    std::string tags;
    for (const auto& entry : manifest)
      if (auto it = entry.find("RepoTags"); it != entry.end() && it->is_array())
        for (const auto& t : *it)
          if (t.is_string()) tags += (tags.empty() ? "" : ", ") + t.get<std::string>();
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("{} holds {} images ({}); kiln reads archives of one image: save just the "
                                  "one you want (docker save IMAGE -o FILE)",
                                  image, manifest.size(), tags.empty() ? "untagged" : tags));
  }
  const json& entry = manifest.front();
  std::string config_name = string_field(entry, "Config");
  if (config_name.empty()) return make_error(ErrorKind::kInvalidArgument, where + " has no \"Config\"");
  KILN_ASSIGN_OR_RETURN(std::string config_path, with_context(path::normalize_relative(config_name), where));
  KILN_ASSIGN_OR_RETURN(std::string config_text, files.read_file(config_path, kMaxMetadataBytes));
  std::string config_digest = "sha256:" + sha256_hex(config_text);
  if (std::string expected = digest_from_docker_path(config_path); !expected.empty())
    KILN_RETURN_IF_ERROR(check_digest(config_text, expected, files.describe(config_path)));

  ImagePlan plan;
  KILN_ASSIGN_OR_RETURN(plan.config, parse_image_config(config_text, files.describe(config_path)));
  // A docker image's id is its config's digest: the closest thing to a manifest digest.
  plan.config.manifest_digest = config_digest;
  KILN_ASSIGN_OR_RETURN(json config, parse_json(config_text, files.describe(config_path)));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids,
                        parse_diff_ids(config, files.describe(config_path)));

  auto layers_it = entry.find("Layers");
  if (layers_it == entry.end() || !layers_it->is_array())
    return make_error(ErrorKind::kInvalidArgument, where + " has no \"Layers\" list");
  if (!diff_ids.empty() && diff_ids.size() != layers_it->size())
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("image {}: manifest.json lists {} layers but the config {} diff_ids; the "
                                  "archive is damaged",
                                  image, layers_it->size(), diff_ids.size()));
  std::size_t i = 0;
  for (const auto& name : *layers_it) {
    if (!name.is_string())
      return make_error(ErrorKind::kInvalidArgument, where + ": a layer name is not a string");
    LayerDescriptor layer;
    KILN_ASSIGN_OR_RETURN(layer.path, with_context(path::normalize_relative(name.get<std::string>()), where));
    if (layer.path.empty() || layer.path == ".")
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("{}: layer {} names no file ({:?}); the archive is damaged", where, i + 1,
                                    name.get<std::string>()));
    layer.digest = digest_from_docker_path(layer.path);
    if (!diff_ids.empty()) layer.diff_id = diff_ids[i];
    plan.layers.push_back(std::move(layer));
    ++i;
  }
  return plan;
}

template <typename F>
Result<ImagePlan> catching_json_errors(const std::string& image, F&& body) {
  // nlohmann::json throws on a few type mismatches the code above does not
  // pre-check; none may escape the module.
  try {
    return body();
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("image {}: unexpected JSON structure: {}", image, e.what()));
  }
}

}  // namespace

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kUnknown: return "unknown";
    case Compression::kNone: return "uncompressed";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "unknown";
}

Result<Compression> compression_for_media_type(std::string_view media_type) {
  static constexpr std::pair<std::string_view, Compression> kKnown[] = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
  };
  if (media_type.empty()) return Compression::kUnknown;
  for (const auto& [type, compression] : kKnown)
    if (type == media_type) return compression;
  return make_error(ErrorKind::kUnsupported,
                    fmt::format("layer media type {} is not supported; kiln unpacks uncompressed, gzip and "
                                "zstd tar layers",
                                media_type));
}

std::string_view host_architecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#else
  return "unknown";
#endif
}

Result<ImageConfig> parse_image_config(std::string_view text, std::string_view where_view) {
  std::string where(where_view);
  KILN_ASSIGN_OR_RETURN(json root, parse_json(text, where));
  if (!root.is_object()) return make_error(ErrorKind::kInvalidArgument, where + " is not a JSON object");
  ImageConfig out;
  auto it = root.find("config");
  if (it == root.end() || it->is_null()) return out;  // an image with no runtime config at all
  const json& config = *it;
  if (!config.is_object())
    return make_error(ErrorKind::kInvalidArgument, where + ": \"config\" is not a JSON object");
  auto strings = [&](const char* key, std::vector<std::string>& into) -> Status {
    auto field = config.find(key);
    if (field == config.end() || field->is_null()) return {};
    if (!field->is_array())
      return make_error(ErrorKind::kInvalidArgument, fmt::format("{}: \"{}\" is not a list", where, key));
    for (const auto& s : *field) {
      if (!s.is_string())
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("{}: \"{}\" holds something other than strings", where, key));
      into.push_back(s.get<std::string>());
    }
    return {};
  };
  std::vector<std::string> env;
  KILN_RETURN_IF_ERROR(strings("Env", env));
  for (const auto& kv : env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      out.env.emplace_back(kv, "");
    else
      out.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  KILN_RETURN_IF_ERROR(strings("Entrypoint", out.entrypoint));
  KILN_RETURN_IF_ERROR(strings("Cmd", out.cmd));
  out.working_dir = string_field(config, "WorkingDir");
  out.user = string_field(config, "User");
  return out;
}

Result<ImagePlan> plan_oci_layout(ImageFiles& files, const ImageReference& reference) {
  std::string image = to_string(reference);
  return catching_json_errors(image, [&]() -> Result<ImagePlan> {
    auto layout = files.read_file("oci-layout", 1 << 16);
    if (!layout) {
      if (layout.error().kind() == ErrorKind::kNotFound)
        return make_error(ErrorKind::kNotFound,
                          fmt::format("{} is not an OCI image layout ({} is missing); make one with "
                                      "scripts/make-base-image DIR or `skopeo copy SRC oci:DIR:TAG`",
                                      image, files.describe("oci-layout")));
      return std::unexpected(std::move(layout).error());
    }
    KILN_ASSIGN_OR_RETURN(json layout_json, parse_json(*layout, files.describe("oci-layout")));
    std::string version = string_field(layout_json, "imageLayoutVersion");
    if (!version.starts_with("1."))
      return make_error(ErrorKind::kUnsupported,
                        fmt::format("{}: OCI image layout version \"{}\" is not supported (1.x is)",
                                    files.describe("oci-layout"), version));
    KILN_ASSIGN_OR_RETURN(json index, read_json_file(files, "index.json"));
    KILN_ASSIGN_OR_RETURN(auto entries, parse_manifest_list(index, files.describe("index.json")));
    KILN_ASSIGN_OR_RETURN(Descriptor chosen, choose_tagged_entry(entries, reference, image));
    return plan_from_manifest(files, chosen, image, 0);
  });
}

Result<ImagePlan> plan_docker_archive(ImageFiles& files, const ImageReference& reference) {
  std::string image = to_string(reference);
  return catching_json_errors(image, [&]() -> Result<ImagePlan> {
    auto manifest = read_json_file(files, "manifest.json");
    if (manifest) return plan_docker_manifest(files, *manifest, image);
    if (manifest.error().kind() != ErrorKind::kNotFound) return std::unexpected(std::move(manifest).error());
    auto plan = plan_oci_layout(files, reference);
    if (!plan && plan.error().kind() == ErrorKind::kNotFound &&
        plan.error().message().find("oci-layout") != std::string::npos)
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("{} is neither a `docker save` tarball (no manifest.json) nor an OCI "
                      "image layout in a tar (no oci-layout); create it with `docker save IMAGE "
                      "-o FILE` or `skopeo copy SRC docker-archive:FILE`",
                      reference.path));
    return plan;
  });
}

std::string_view host_variant() {
#if defined(__aarch64__)
  return "v8";
#else
  return "";
#endif
}

std::string_view manifest_accept_header() {
  return "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
         "application/vnd.docker.distribution.manifest.list.v2+json, "
         "application/vnd.docker.distribution.manifest.v2+json";
}

Result<ManifestKind> manifest_kind(std::string_view text, std::string_view said,
                                   std::string_view where_view) {
  std::string where(where_view);
  KILN_ASSIGN_OR_RETURN(json manifest, parse_json(text, where));
  if (!manifest.is_object()) return make_error(ErrorKind::kInvalidArgument, where + " is not a JSON object");
  ManifestKind kind;
  // A registry's Content-Type may carry parameters or be generic JSON: the
  // document's own mediaType, then its shape, decide.
  kind.media_type = std::string(said.substr(0, said.find(';')));
  if (kind.media_type != kOciIndex && kind.media_type != kDockerManifestList &&
      kind.media_type != kOciManifest && kind.media_type != kDockerManifest)
    kind.media_type = string_field(manifest, "mediaType");
  if (kind.media_type.empty()) kind.media_type = manifest.contains("manifests") ? kOciIndex : kOciManifest;
  if (kind.media_type == "application/vnd.docker.distribution.manifest.v1+json" ||
      kind.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws")
    return make_error(ErrorKind::kUnsupported,
                      where +
                          " is a docker schema 1 manifest; kiln reads OCI and docker schema 2 images "
                          "(push the image again with a current docker or skopeo)");
  kind.is_index = kind.media_type == kOciIndex || kind.media_type == kDockerManifestList;
  if (!kind.is_index && kind.media_type != kOciManifest && kind.media_type != kDockerManifest)
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("{} has media type {}; kiln reads OCI and docker v2 image manifests", where,
                                  kind.media_type));
  return kind;
}

Result<ManifestChoice> choose_platform_manifest(std::string_view index_text, std::string_view image_view) {
  std::string image(image_view);
  std::string where = fmt::format("image {}: index", image);
  try {
    KILN_ASSIGN_OR_RETURN(json index, parse_json(index_text, where));
    KILN_ASSIGN_OR_RETURN(auto entries, parse_manifest_list(index, where));
    const Descriptor* chosen = nullptr;
    for (const auto& e : entries) {
      if (e.os != "linux" || e.architecture != host_architecture()) continue;
      if (!e.variant.empty() && !host_variant().empty() && e.variant != host_variant()) continue;
      chosen = &e;
      break;
    }
    if (chosen == nullptr)
      return make_error(
          ErrorKind::kNotFound,
          fmt::format("image {} has no linux/{} image (it has: {}); use an image built for this machine",
                      image, host_architecture(), entries.empty() ? "none" : describe_platforms(entries)));
    KILN_RETURN_IF_ERROR(blob_path(chosen->digest, where));
    ManifestChoice out;
    out.digest = chosen->digest;
    out.media_type = chosen->media_type;
    out.size = chosen->size;
    out.platform =
        chosen->os + "/" + chosen->architecture + (chosen->variant.empty() ? "" : "/" + chosen->variant);
    return out;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("{}: unexpected JSON structure: {}", where, e.what()));
  }
}

Result<ImagePlan> plan_image_manifest(ImageFiles& files, std::string_view digest, std::string_view media_type,
                                      const std::string& image) {
  return catching_json_errors(image, [&]() -> Result<ImagePlan> {
    Descriptor d;
    d.digest = std::string(digest);
    d.media_type = std::string(media_type);
    return plan_from_manifest(files, d, image, 0);
  });
}

}  // namespace kiln::fetcher::internal
