// open_store: from a store string ("btrfs:/var/cache/kiln") to a Store.
#include <fmt/format.h>

#include "common/path.h"
#include "worker/store/snapshot_backend.h"
#include "worker/store/snapshot_store.h"
#include "worker/store/store.h"

namespace kiln::store {

Result<RsyncMode> parse_rsync_mode(std::string_view text) {
  if (text == "copy") return RsyncMode::kCopy;
  if (text == "hardlink") return RsyncMode::kHardlink;
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("invalid --rsync-mode \"{}\": use copy or hardlink", text));
}

Result<std::unique_ptr<Store>> open_store(std::string_view spec, const StoreOptions& options) {
  auto usage = [&](std::string_view why) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("invalid store \"{}\": {}; use overlayfs:/path, btrfs:/path, xfs:/path or "
                                  "rsync:/path",
                                  spec, why));
  };
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return usage("no backend given");
  std::string_view kind = spec.substr(0, colon);
  auto root = path::normalize_absolute(spec.substr(colon + 1));
  if (!root || *root == "/") return usage("the path must be an absolute directory other than /");
  std::unique_ptr<SnapshotBackend> backend;
  if (kind == "overlayfs") {
    if (options.overlay_max_layers < 1 || options.overlay_max_layers > 200)
      return usage("overlay_max_layers must be between 1 and 200");
    backend = make_overlayfs_backend(*root, options.overlay_max_layers);
  } else if (kind == "btrfs") {
    backend = make_btrfs_backend();
  } else if (kind == "xfs") {
    backend = make_xfs_backend();
  } else if (kind == "rsync") {
    backend = make_rsync_backend(options.rsync_mode);
  } else {
    return usage(fmt::format("unknown backend \"{}\"", kind));
  }
  return open_snapshot_store(*root, std::move(backend));
}

}  // namespace kiln::store
