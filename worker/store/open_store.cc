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

namespace {

// A docker repository name component: what PREFIX may be.
bool valid_docker_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 64) return false;
  if (!((prefix[0] >= 'a' && prefix[0] <= 'z') || (prefix[0] >= '0' && prefix[0] <= '9'))) return false;
  for (char c : prefix) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Store>> open_store(std::string_view spec, const StoreOptions& options) {
  auto usage = [&](std::string_view why) {
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("invalid store \"{}\": {}; use overlayfs:/path, btrfs:/path, xfs:/path, "
                                  "rsync:/path or docker[:PREFIX]",
                                  spec, why));
  };
  if (spec == "docker" || spec.starts_with("docker:")) {
    std::string prefix = spec == "docker" ? "kiln" : std::string(spec.substr(7));
    if (!valid_docker_prefix(prefix))
      return usage("PREFIX must be a docker repository name: lowercase letters, digits, '.', '_' or '-'");
    auto home = path::normalize_absolute(options.home);
    if (!home || *home == "/")
      return usage("the docker store needs an absolute home directory for its state (kiln's home)");
    std::string root = *home + "/docker-" + prefix;
    return open_snapshot_store(root, make_docker_backend(root, prefix, options.docker_host), options);
  }
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
  return open_snapshot_store(*root, std::move(backend), options);
}

}  // namespace kiln::store
