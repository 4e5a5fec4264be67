#include "worker/fetcher/fetcher.h"

#include <fmt/format.h>

#include <cstdlib>

#include "common/path.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/internal/image_unpack.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::fetcher {
namespace {

constexpr std::string_view kSupportedForms =
    "kiln fetches registry references ([HOST[:PORT]/]PATH[:TAG][@sha256:HEX], as docker pull takes), "
    "oci:DIR[:TAG] (an OCI image layout directory, absolute DIR, TAG defaults to latest), "
    "docker-archive:FILE (a `docker save` tarball) and oci-archive:FILE[:TAG] (an OCI layout in a tar); "
    "the docker engine and other transports are not supported yet";

// OCI tag grammar: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
bool is_tag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s.front())) return false;
  for (char c : s)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

Result<std::string> absolute_path(std::string_view text, std::string_view path, std::string_view what) {
  if (path.empty() || path.front() != '/')
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("image reference \"{}\": the {} must be an absolute path (got \"{}\")",
                                  text, what, path));
  auto normal = path::normalize_absolute(path);
  if (!normal)
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("image reference \"{}\": {} \"{}\" contains \"..\"; write the path without it", text,
                    what, path));
  return std::move(*normal);
}

class OciLayoutFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs, std::string_view image,
                            const FetchOptions& options) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    if (reference.source != ImageSource::kOciLayout)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("image {}: this fetcher reads oci:DIR[:TAG] references only", image));
    auto files = internal::open_image_directory(reference.path);
    KILN_ASSIGN_OR_RETURN(internal::ImagePlan plan, internal::plan_oci_layout(*files, reference));
    return internal::unpack_image(*files, plan, to_string(reference), rootfs, progress, options.cancel);
  }
};

class ImageArchiveFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs, std::string_view image,
                            const FetchOptions& options) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    if (reference.source != ImageSource::kDockerArchive && reference.source != ImageSource::kOciArchive)
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("image {}: this fetcher reads docker-archive: and oci-archive: references only",
                      image));
    KILN_ASSIGN_OR_RETURN(auto files, internal::open_image_tarball(reference.path));
    internal::ImagePlan plan;
    if (reference.source == ImageSource::kDockerArchive) {
      KILN_ASSIGN_OR_RETURN(plan, internal::plan_docker_archive(*files, reference));
    } else {
      KILN_ASSIGN_OR_RETURN(plan, internal::plan_oci_layout(*files, reference));
    }
    return internal::unpack_image(*files, plan, to_string(reference), rootfs, progress, options.cancel);
  }
};

// Chooses the fetcher by the reference's scheme.
class SchemeFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs, std::string_view image,
                            const FetchOptions& options) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    switch (reference.source) {
      case ImageSource::kOciLayout: return oci_layout_->fetch(progress, rootfs, image, options);
      case ImageSource::kDockerArchive:
      case ImageSource::kOciArchive: return archive_->fetch(progress, rootfs, image, options);
      case ImageSource::kRegistry: return registry_->fetch(progress, rootfs, image, options);
    }
    return make_error(ErrorKind::kInternal, "unhandled image source");
  }
  Result<std::optional<ResolvedImage>> resolve(const Progress& progress, std::string_view image,
                                               const FetchOptions& options) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    if (reference.source == ImageSource::kRegistry) return registry_->resolve(progress, image, options);
    return std::optional<ResolvedImage>();
  }
  explicit SchemeFetcher(RegistryOptions registry) : registry_(make_registry_fetcher(std::move(registry))) {}

 private:
  std::unique_ptr<Fetcher> oci_layout_ = make_oci_layout_fetcher();
  std::unique_ptr<Fetcher> archive_ = make_image_archive_fetcher();
  std::unique_ptr<Fetcher> registry_;
};

}  // namespace

Result<ImageReference> parse_image_reference(std::string_view text) {
  ImageReference ref;
  ref.text = std::string(text);
  std::string_view rest;
  auto split_tag = [&](std::string_view what) -> Status {
    std::string_view location = rest;
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.substr(colon + 1).find('/') == std::string_view::npos) {
      std::string_view tag = rest.substr(colon + 1);
      if (!is_tag(tag))
        return make_error(
            ErrorKind::kInvalidArgument,
            fmt::format("image reference \"{}\": \"{}\" is not a valid tag (letters, digits, '_', "
                        "'.', '-'; at most 128)",
                        text, tag));
      ref.tag = std::string(tag);
      ref.tag_given = true;
      location = rest.substr(0, colon);
    } else {
      ref.tag = "latest";
    }
    KILN_ASSIGN_OR_RETURN(ref.path, absolute_path(text, location, what));
    return {};
  };
  if (text.starts_with("oci:")) {
    ref.source = ImageSource::kOciLayout;
    rest = text.substr(4);
    KILN_RETURN_IF_ERROR(split_tag("directory"));
    return ref;
  }
  if (text.starts_with("oci-archive:")) {
    ref.source = ImageSource::kOciArchive;
    rest = text.substr(12);
    KILN_RETURN_IF_ERROR(split_tag("file"));
    return ref;
  }
  if (text.starts_with("docker-archive:")) {
    ref.source = ImageSource::kDockerArchive;
    KILN_ASSIGN_OR_RETURN(ref.path, absolute_path(text, text.substr(15), "file"));
    return ref;
  }
  for (std::string_view transport : {"docker-daemon:", "containers-storage:", "dir:", "docker-engine:"})
    if (text.starts_with(transport))
      return make_error(ErrorKind::kUnsupported,
                        fmt::format("image reference \"{}\" is not supported: {}", text, kSupportedForms));
  // Everything else is a registry reference; docker:// is skopeo's spelling of one.
  std::string_view name = text.starts_with("docker://") ? text.substr(9) : text;
  KILN_ASSIGN_OR_RETURN(RegistryReference registry, parse_registry_reference(name));
  ref.source = ImageSource::kRegistry;
  ref.path = registry.registry + "/" + registry.repository;
  ref.tag = registry.tag;
  ref.tag_given = registry.tag_given;
  ref.digest = registry.digest;
  return ref;
}

Result<PullPolicy> parse_pull_policy(std::string_view text) {
  if (text == "missing") return PullPolicy::kMissing;
  if (text == "always") return PullPolicy::kAlways;
  if (text == "never") return PullPolicy::kNever;
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("--pull {:?}: expected always, missing or never", text));
}

std::string to_string(const ImageReference& ref) {
  switch (ref.source) {
    case ImageSource::kOciLayout: return "oci:" + ref.path + ":" + ref.tag;
    case ImageSource::kOciArchive: return "oci-archive:" + ref.path + ":" + ref.tag;
    case ImageSource::kDockerArchive: return "docker-archive:" + ref.path;
    case ImageSource::kRegistry:
      return ref.path + (ref.tag.empty() ? "" : ":" + ref.tag) + (ref.digest.empty() ? "" : "@" + ref.digest);
  }
  return ref.text;
}

std::unique_ptr<Fetcher> make_oci_layout_fetcher() {
  return std::make_unique<OciLayoutFetcher>();
}
std::unique_ptr<Fetcher> make_image_archive_fetcher() {
  return std::make_unique<ImageArchiveFetcher>();
}
std::unique_ptr<Fetcher> make_fetcher(RegistryOptions registry) {
  return std::make_unique<SchemeFetcher>(std::move(registry));
}

}  // namespace kiln::fetcher
