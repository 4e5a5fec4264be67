#include "worker/fetcher/fetcher.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "common/path.h"
#include "worker/fetcher/internal/image_files.h"
#include "worker/fetcher/internal/image_manifest.h"
#include "worker/fetcher/internal/layer_unpacker.h"

namespace kiln::fetcher {
namespace {

constexpr std::string_view kSupportedForms =
    "kiln fetches oci:DIR[:TAG] (an OCI image layout directory, absolute DIR, TAG defaults to latest), "
    "docker-archive:FILE (a `docker save` tarball) and oci-archive:FILE[:TAG] (an OCI layout in a tar); "
    "registries and the docker engine are not supported yet. For a local base image run "
    "scripts/make-base-image DIR and use (from \"oci:DIR:latest\")";

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

// Checks that `rootfs` is an empty directory and returns its real path
// (symlinks in it resolved, so unpacking can follow only the image's own).
Result<std::string> prepare_rootfs(const std::string& rootfs) {
  char real[PATH_MAX];
  if (::realpath(rootfs.c_str(), real) == nullptr)
    return errno_error("cannot use " + rootfs + " as the rootfs");
  struct stat st {};
  if (::stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error(ErrorKind::kFailedPrecondition, "the rootfs " + rootfs + " is not a directory");
  DIR* dir = ::opendir(real);
  if (dir == nullptr) return errno_error("cannot list " + rootfs);
  bool empty = true;
  while (dirent* d = ::readdir(dir)) {
    std::string_view name(d->d_name);
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  if (!empty)
    return make_error(
        ErrorKind::kFailedPrecondition,
        "the rootfs " + rootfs + " is not empty; an image is unpacked into an empty directory only");
  return std::string(real);
}

Result<ImageConfig> unpack_plan(internal::ImageFiles& files, const internal::ImagePlan& plan,
                                const ImageReference& reference, const std::string& rootfs,
                                const Progress& progress) {
  KILN_ASSIGN_OR_RETURN(std::string real_rootfs, prepare_rootfs(rootfs));
  internal::LayerPosition position;
  position.count = plan.layers.size();
  position.image = to_string(reference);
  for (std::size_t i = 0; i < plan.layers.size(); ++i) {
    position.number = i + 1;
    KILN_RETURN_IF_ERROR(internal::unpack_layer(files, plan.layers[i], position, real_rootfs, progress));
  }
  return plan.config;
}

class OciLayoutFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs,
                            std::string_view image) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    if (reference.source != ImageSource::kOciLayout)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("image {}: this fetcher reads oci:DIR[:TAG] references only", image));
    auto files = internal::open_image_directory(reference.path);
    KILN_ASSIGN_OR_RETURN(internal::ImagePlan plan, internal::plan_oci_layout(*files, reference));
    return unpack_plan(*files, plan, reference, rootfs, progress);
  }
};

class ImageArchiveFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs,
                            std::string_view image) override {
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
    return unpack_plan(*files, plan, reference, rootfs, progress);
  }
};

// Chooses the fetcher by the reference's scheme.
class SchemeFetcher : public Fetcher {
 public:
  Result<ImageConfig> fetch(const Progress& progress, const std::string& rootfs,
                            std::string_view image) override {
    KILN_ASSIGN_OR_RETURN(ImageReference reference, parse_image_reference(image));
    switch (reference.source) {
      case ImageSource::kOciLayout: return oci_layout_->fetch(progress, rootfs, image);
      case ImageSource::kDockerArchive:
      case ImageSource::kOciArchive: return archive_->fetch(progress, rootfs, image);
    }
    return make_error(ErrorKind::kInternal, "unhandled image source");
  }

 private:
  std::unique_ptr<Fetcher> oci_layout_ = make_oci_layout_fetcher();
  std::unique_ptr<Fetcher> archive_ = make_image_archive_fetcher();
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
  return make_error(ErrorKind::kUnsupported,
                    fmt::format("image reference \"{}\" is not supported: {}", text, kSupportedForms));
}

std::string to_string(const ImageReference& ref) {
  switch (ref.source) {
    case ImageSource::kOciLayout: return "oci:" + ref.path + ":" + ref.tag;
    case ImageSource::kOciArchive: return "oci-archive:" + ref.path + ":" + ref.tag;
    case ImageSource::kDockerArchive: return "docker-archive:" + ref.path;
  }
  return ref.text;
}

std::unique_ptr<Fetcher> make_oci_layout_fetcher() {
  return std::make_unique<OciLayoutFetcher>();
}
std::unique_ptr<Fetcher> make_image_archive_fetcher() {
  return std::make_unique<ImageArchiveFetcher>();
}
std::unique_ptr<Fetcher> make_fetcher() {
  return std::make_unique<SchemeFetcher>();
}

}  // namespace kiln::fetcher
