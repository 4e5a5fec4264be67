#include "worker/fetcher/internal/image_unpack.h"

#include <dirent.h>
#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "worker/fetcher/internal/layer_unpacker.h"

namespace kiln::fetcher::internal {
namespace {

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

}  // namespace

Result<ImageConfig> unpack_image(ImageFiles& files, const ImagePlan& plan, const std::string& image,
                                 const std::string& rootfs, const Progress& progress,
                                 const CancelToken* cancel) {
  KILN_ASSIGN_OR_RETURN(std::string real_rootfs, prepare_rootfs(rootfs));
  LayerPosition position;
  position.count = plan.layers.size();
  position.image = image;
  for (std::size_t i = 0; i < plan.layers.size(); ++i) {
    position.number = i + 1;
    if (cancel != nullptr && cancel->cancelled())
      return make_error(ErrorKind::kCancelled, "image " + image + ": cancelled while unpacking");
    KILN_RETURN_IF_ERROR(unpack_layer(files, plan.layers[i], position, real_rootfs, progress));
  }
  return plan.config;
}

}  // namespace kiln::fetcher::internal
